"""`agp serve` over HTTP on localhost (issue 14): decisions per second and p50/p99 latency.

    python bench/serve.py              # the table of docs/serve.md
    python bench/serve.py --quick      # a smoke run
    python bench/serve.py --clients 4 --batch 50

It starts `agp serve` as a real process (access log off, as a benchmark of the service and not
of a terminal), and drives it from client processes, one keep-alive connection each, all on this
machine: on 2 cores the clients take CPU from the service, so the figures are a floor.
Rows: one client deciding one request at a time (latency), N clients at once (throughput), the
batch endpoint, calls in a task (the task runtime, memory store), and `agp eval` started once per
decision, the alternative the service replaces.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policies" / "customer-support"
BOT = "spiffe://acme.com/agents/support-bot"


def request_body() -> dict[str, Any]:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    return {"agent": {"id": BOT}, "tool": "crm.lookup", "args": {"customer": "c-42"},
            "target": {"host": "crm.internal", "external": False},
            "task": {"id": "t-bench", "kind": "support_ticket", "params": {"customer": "c-42"},
                     "started_at": started},
            "chain": [{"principal": "user:alice", "kind": "human"},
                      {"principal": BOT, "kind": "agent"}]}


def start_service() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "agp.cli", "serve", "-p", str(POLICY),
                             "--port", "0", "--no-access-log"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on " in line:
            return proc, line.split("listening on ", 1)[1].split()[0]
    raise SystemExit("agp serve did not start")


def drive(args: tuple[str, str, bytes, int, int]) -> list[float]:
    """One client: `count` POSTs of `body` to `path` after `warmup` unmeasured ones."""
    url, path, body, count, warmup = args
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    headers = {"Content-Type": "application/json"}
    out = []
    for i in range(warmup + count):
        t0 = time.perf_counter()
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - t0
        if response.status != 200:
            raise SystemExit(f"{path}: {response.status} {data[:200]!r}")
        if i >= warmup:
            out.append(elapsed)
    conn.close()
    return out


def run(url: str, path: str, body: object, clients: int, count: int,
        per_request: int = 1) -> dict[str, float]:
    """Decisions per second and per-request latency of `clients` clients at once."""
    raw = json.dumps(body).encode()
    jobs = [(url, path, raw, count, max(count // 10, 20))] * clients
    with multiprocessing.Pool(clients) as pool:
        t0 = time.perf_counter()
        results = pool.map(drive, jobs)
        wall = time.perf_counter() - t0
    latencies = sorted(x for r in results for x in r)
    # Wall time includes each client's warm-up; the rate is taken over the measured requests
    # only, per client, and summed: a client's rate is its requests over its own busy time.
    rate = sum(len(r) * per_request / sum(r) for r in results)
    return {"rate": rate, "p50": latencies[len(latencies) // 2] * 1e3,
            "p99": latencies[int(len(latencies) * 0.99)] * 1e3, "wall": wall}


def eval_per_call(runs: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({**request_body(), "now": time.strftime("%Y-%m-%dT%H:%M:%SZ")}, f)
    agp = shutil.which("agp") or "agp"
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([agp, "eval", "-p", str(POLICY), f.name], check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    os.unlink(f.name)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100)
    options = parser.parse_args()
    n = 300 if options.quick else 3000
    proc, url = start_service()
    rows = []
    try:
        body = request_body()
        one = run(url, "/v1/decide", body, 1, n)
        rows.append(("`/v1/decide`, 1 client", one))
        rows.append((f"`/v1/decide`, {options.clients} clients",
                     run(url, "/v1/decide", body, options.clients, n // options.clients * 4)))
        batch = {"requests": [body] * options.batch}
        batches = max(n // options.batch * 4, 20)
        rows.append((f"`/v1/decide/batch` of {options.batch}, 1 client",
                     run(url, "/v1/decide/batch", batch, 1, batches, options.batch)))
        rows.append((f"`/v1/decide/batch` of {options.batch}, 2 clients",
                     run(url, "/v1/decide/batch", batch, 2, batches // 2, options.batch)))
        conn = http.client.HTTPConnection(*url.removeprefix("http://").rsplit(":", 1))
        conn.request("POST", "/v1/tasks", json.dumps({
            "task": {"kind": "support_ticket", "params": {"customer": "c-42"}}, "agent": BOT}))
        task = json.loads(conn.getresponse().read())["id"]
        call = {"agent": BOT, "tool": "crm.lookup", "args": {"customer": "c-42"},
                "target": {"host": "crm.internal", "external": False}}
        rows.append(("`/v1/tasks/{id}/calls`, 1 client (memory store)",
                     run(url, f"/v1/tasks/{task}/calls", call, 1, min(n, 2000))))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    per_call = eval_per_call(3 if options.quick else 10)
    print(f"agp serve on {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; clients on the same machine\n")
    print("| workload | decisions/s | p50 per request | p99 per request |")
    print("|---|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['rate']:,.0f} | {r['p50']:.2f} ms | {r['p99']:.2f} ms |")
    print(f"| `agp eval` started per decision | {1e3 / per_call:,.0f} | {per_call:.0f} ms | |")


if __name__ == "__main__":
    main()
