"""A small MCP server (the SDK's MCPServer) for the mcp-guard tests.

Every tools/call it receives is appended, as JSON, to the file named by AGP_TEST_RECEIVED, so
that a test can assert that nothing the policy did not allow ever reached it.
"""

from __future__ import annotations

import json
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("agp-test-upstream")


def _record(tool: str, args: dict[str, object]) -> None:
    path = os.environ.get("AGP_TEST_RECEIVED")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"tool": tool, "args": args}) + "\n")


@server.tool(description="Look a customer up.\nReturns their record.")
def lookup(customer: str) -> str:
    _record("lookup", {"customer": customer})
    return f"customer {customer}: ok"


@server.tool(description="Refund an amount to a customer.")
def refund(customer: str, amount: float) -> str:
    _record("refund", {"customer": customer, "amount": amount})
    return f"refunded {amount:g} to {customer}"


@server.tool(description="Delete a customer.")
def delete(customer: str) -> str:
    _record("delete", {"customer": customer})
    return f"deleted {customer}"


@server.resource("note://hello")
def hello() -> str:
    return "hello from upstream"


@server.prompt()
def greet(name: str) -> str:
    return f"Greet {name} politely."


if __name__ == "__main__":
    server.run()
