"""Replay throughput and memory: events per second on a generated trace, and peak memory as the
trace grows (it must stay flat: traces are streamed).

    python bench/replay.py                  # 10,000 and 100,000 events, both evaluators
    python bench/replay.py --events 1000000 --evaluator compiled
    python bench/replay.py --tasks 100      # long sessions: 100 tasks, ~1,000 calls each
    python bench/replay.py --events 100000 --evaluator compiled --cli 1 2
                                            # also `agp test --jobs 1`, then `--jobs 2`

Each size runs in a fresh process, so that one run's peak does not hide another's. The trace
cycles through task lifecycles (start, delegation, calls, end) of the LANGUAGE.md §2-3 policy;
task ids are unique, so the runtime's own state grows with the number of tasks, a few hundred
bytes each; the reader holds one line at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "tests" / "data" / "spec"
BOT = "spiffe://acme.com/agents/support-bot"
BILLING = "spiffe://acme.com/agents/billing/eu-1"


def generate(path: Path, events: int, tasks: int | None = None) -> None:
    """A trace of `events` events: per task 1 start, 1 delegate, calls, 1 end, 1 request.

    Without `tasks`, each task makes 6 calls (so the number of tasks grows with the trace);
    with it, the trace has that many tasks and the calls per task grow instead."""
    refunds = 3 if tasks is None else max(1, events // tasks - 7)
    t = datetime(2026, 11, 28, 10, tzinfo=timezone.utc)
    written = 0
    n = 0
    with path.open("w") as f:
        def emit(event: dict) -> None:
            nonlocal written
            if written < events:
                f.write(json.dumps(event) + "\n")
                written += 1

        while written < events:
            n += 1
            tid = f"t-{n}"

            def ts(seconds: int, t: datetime = t) -> str:
                return (t + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

            customer = f"c-{n % 97}"
            emit({"ts": ts(0), "event": "task.start",
                  "task": {"id": tid, "kind": "support_ticket", "params": {"customer": customer}},
                  "agent": BOT, "chain": [{"principal": "user:alice", "kind": "human"}]})
            emit({"ts": ts(5), "event": "call", "task": tid, "agent": BOT, "tool": "crm.lookup",
                  "args": {"customer": customer},
                  "target": {"host": "crm.internal", "external": False}, "expect": "allow"})
            emit({"ts": ts(60), "event": "delegate", "task": tid, "from": BOT, "to": BILLING,
                  "scope": {"tools": ["payments.refund"], "ttl": "5m"}})
            for i in range(refunds):
                amount = (40, 90, 150)[i % 3]
                emit({"ts": ts(120 + (i * 59) // refunds), "event": "call", "task": tid, "agent": BILLING,
                      "tool": "payments.refund", "args": {"amount": amount,
                                                          "customer": customer}})
            emit({"ts": ts(180), "event": "call", "task": tid, "agent": BILLING,
                  "tool": "crm.lookup", "args": {"customer": customer},
                  "expect": {"decision": "deny", "rules": ["delegation.scope"]}})
            emit({"ts": ts(240), "event": "task.end", "task": tid})
            emit({"ts": ts(241), "event": "call", "task": tid, "agent": BOT,
                  "tool": "crm.lookup", "args": {"customer": customer},
                  "expect": {"decision": "deny", "rules": ["task.ended"]}})
            emit({"ts": ts(242), "event": "request", "request": {
                "agent": {"id": BOT}, "tool": "http.get", "now": ts(242)}})
            t += timedelta(seconds=300)


def measure(events: int, compiled: bool, trace: Path) -> dict:
    """Run in this process: replay the trace once, report throughput and memory."""
    import agp
    from agp.runtime import Replay, read_trace
    from agp.runtime.trace import rare_full_collections

    engine = agp.load(str(POLICY), compiled=compiled)
    kind = "compiled" if compiled else "reference"
    # Warm up caches (lark, pydantic) on a small prefix, outside the measurement.
    for _ in zip(range(200), Replay(engine).run(read_trace(trace)), strict=False):
        pass
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    decided = failed = 0
    for outcome in Replay(engine).run(read_trace(trace)):
        decided += 1
        failed += not outcome.passed
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # tracemalloc slows everything down: time a second run without it. CPU time too: on a
    # shared machine it moves less than the wall clock.
    # As `agp test` replays (rare full collections of the cyclic garbage collector).
    start, cpu = time.perf_counter(), time.process_time()
    with rare_full_collections():
        for _ in Replay(engine).run(read_trace(trace)):
            pass
    fast, cpu = time.perf_counter() - start, time.process_time() - cpu
    tasks = sum(1 for line in trace.open() if '"task.start"' in line)
    return {"events": events, "engine": kind, "compiled": compiled, "decided": decided,
            "failed": failed, "seconds": round(fast, 3), "cpu_seconds": round(cpu, 3),
            "events_per_s": round(events / fast), "events_per_cpu_s": round(events / cpu),
            "decisions_per_s": round(decided / fast), "tasks": tasks,
            "peak_per_task_bytes": round(peak / tasks) if tasks else None,
            "seconds_traced": round(elapsed, 3),
            "peak_traced_mib": round(peak / 2**20, 2),
            "max_rss_mib": round(max(rss_before, resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss) / 1024, 1),
            "trace_mib": round(trace.stat().st_size / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--tasks", type=int, default=None,
                        help="a fixed number of tasks (the calls per task grow instead)")
    parser.add_argument("--evaluator", choices=("both", "compiled", "reference"),
                        default="both")
    parser.add_argument("--cli", type=int, nargs="*", default=[], metavar="JOBS",
                        help="also time `agp test --jobs JOBS` on the trace, end to end")
    parser.add_argument("--child", nargs=3, metavar=("EVENTS", "COMPILED", "TRACE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        events, compiled, trace = args.child
        print(json.dumps(measure(int(events), compiled == "1", Path(trace))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for events in args.events:
            trace = Path(tmp) / f"bench-{events}.jsonl"
            generate(trace, events, args.tasks)
            for compiled in {"both": ("1", "0"), "compiled": ("1",),
                             "reference": ("0",)}[args.evaluator]:
                out = subprocess.run([sys.executable, __file__, "--child", str(events), compiled,
                                      str(trace)], capture_output=True, text=True,
                                     env={**os.environ, "PYTHONHASHSEED": "0"})
                if out.returncode != 0:
                    print(f"events={events} compiled={compiled}: failed\n{out.stderr[-2000:]}")
                    continue
                print(out.stdout.strip(), flush=True)
            for jobs in args.cli:
                print(json.dumps(agp_test(trace, events, jobs)), flush=True)


def agp_test(trace: Path, events: int, jobs: int) -> dict:
    """`agp test` of the trace, start-up included: wall clock, and the CPU time of the command's
    own process (with --jobs, the workers' is not counted: they are the fork server's)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", "from agp.cli import main; main()", "test", "-p",
                          str(POLICY), str(trace), "--jobs", str(jobs)],
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"events": events, "agp_test_jobs": jobs, "exit": out.returncode,
            "summary": out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "",
            "seconds": round(wall, 3), "events_per_s": round(events / wall),
            "command_cpu_seconds": round(cpu, 3)}


if __name__ == "__main__":
    main()
