"""The latency `agp mcp-guard` adds to a `tools/call` round trip over stdio (docs/mcp.md).

    python bench/mcp_guard.py                  # 2,000 calls each way
    python bench/mcp_guard.py --calls 500      # quicker
    python bench/mcp_guard.py --store redis://127.0.0.1:6379/0   # the task kept in Redis

The MCP SDK's own client (`ClientSession` over `stdio_client`) calls one tool of one upstream
server (this file run with `--upstream`, an SDK `MCPServer`) twice over: directly, and through
`agp mcp-guard` in a task (so each call is decided with its session and appended to it). Both
connections are open at once and the calls alternate between them, so that whatever else the
machine does weighs on both alike. Printed: p50 and p99 of each, and the difference.

Target (issue 13): under 1 ms added at p50.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

POLICY = """\
agent bot "spiffe://bench/agents/bot"
tool bench.lookup { args { customer: string } }
task bench { params { customer: string } tools bench.* }
permit lookups on bench.lookup by bot when args.customer == task.params.customer
"""
AGENT = "spiffe://bench/agents/bot"


def upstream() -> None:
    """The upstream server: one tool, answering at once."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("agp-bench-upstream")

    @server.tool(description="Look a customer up.")
    def lookup(customer: str) -> str:
        return f"customer {customer}: ok"

    server.run()


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if q < 100 \
        else max(samples)


async def measure(calls: int, store: str | None) -> tuple[list[float], list[float]]:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    policy = Path(tempfile.mkdtemp()) / "bench.agp"
    policy.write_text(POLICY)
    server = [sys.executable, __file__, "--upstream"]
    guard = [sys.executable, "-m", "agp.cli", "mcp-guard", "-p", str(policy), "--agent", AGENT,
             "--prefix", "bench", "--task-kind", "bench", "--task-params",
             '{"customer": "c-1"}', *(["--store", store] if store else []), "--", *server]
    direct_times: list[float] = []
    guarded_times: list[float] = []
    async with stdio_client(StdioServerParameters(command=server[0], args=server[1:])) as d, \
            stdio_client(StdioServerParameters(command=guard[0], args=guard[1:])) as g:
        async with ClientSession(*d) as direct, ClientSession(*g) as guarded:
            await direct.initialize()
            await guarded.initialize()
            for _ in range(min(200, calls)):  # warm up both paths (imports, caches, JIT-free)
                await direct.call_tool("lookup", {"customer": "c-1"})
                await guarded.call_tool("lookup", {"customer": "c-1"})
            for _ in range(calls):
                for session, times in ((direct, direct_times), (guarded, guarded_times)):
                    start = time.perf_counter()
                    result = await session.call_tool("lookup", {"customer": "c-1"})
                    times.append(time.perf_counter() - start)
                    if result.is_error:
                        raise SystemExit(f"the call failed: {result.content}")
    return direct_times, guarded_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--store", help="keep the guard's task in this store (redis://...)")
    parser.add_argument("--upstream", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.upstream:
        upstream()
        return
    import anyio

    direct, guarded = anyio.run(measure, options.calls, options.store)
    print(f"tools/call round trip over stdio, {options.calls} calls each, MCP SDK client"
          + (f", task in {options.store}" if options.store else ", task in memory"))
    print("                    p50        p99")
    for name, samples in (("direct", direct), ("through the guard", guarded)):
        print(f"{name:<18} {percentile(samples, 50) * 1e3:7.3f} ms {percentile(samples, 99) * 1e3:7.3f} ms")
    print(f"{'added':<18} {(percentile(guarded, 50) - percentile(direct, 50)) * 1e3:7.3f} ms "
          f"{(percentile(guarded, 99) - percentile(direct, 99)) * 1e3:7.3f} ms")


if __name__ == "__main__":
    main()
