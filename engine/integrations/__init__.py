"""Where agents meet agp: the MCP gate, imports from OpenTelemetry and MCP, framework adapters.

- `agp.integrations.jsonrpc`: strict JSON-RPC framing (one parsed, re-serialised message a line).
- `agp.integrations.mcp_guard`: `agp mcp-guard`, a policy gate in front of an MCP server.
- `agp.integrations.otel`: OTLP JSON GenAI spans -> a trace (`agp import otel`).
- `agp.integrations.mcp_tools`: an MCP `tools/list` result -> `tool` declarations.
- `agp.integrations.guard`: `@agp.guard`, a decorator for plain Python tool functions.

The MCP modules import the `mcp` SDK; nothing here is imported by `agp` itself, so deciding
requests never pays for them.
"""
