"""Decision cost with a long session: a task whose history holds 1,000 calls, decided through the
task runtime (read the task, decide, append), for a rule that reads the history and one that
does not, on the memory store and on Redis (a local redis-server the script starts itself).

    python bench/session.py                # 1,000-call history, 1,000 timed calls per case
    python bench/session.py --history 5000 --calls 5000 --no-redis

The session-free cost the others compare to is the same call through the task runtime in a
task whose session is empty (each timed call in a task of its own, started beforehand);
"stateless" is `engine.decide` of a request without a task, for reference. Each timed call is
appended, so a long history grows from --history to --history + --calls during the run; the
figure is the mean per call (CPU time of this process: the Redis server's own time is not in
it, the round trips are).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import agp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

POLICY = """
tool pay { args { amount: number } }
tool lookup { }
task job { }
permit pays on pay
forbid pay_rate on pay
  when count(h in task.history if h.tool == "pay": h.decision == "allow" and h.age < 1h) >= 100000
permit lookups on lookup when args.n >= 0
"""
T0 = datetime(2026, 11, 28, 10, tzinfo=timezone.utc)


def bench(engine: agp.Engine, tool: str, history: int, calls: int, tid: str) -> float:
    """µs per call in one task whose history holds `history` calls when the timing starts."""
    tasks = engine.tasks()
    tasks.start({"id": tid, "kind": "job"}, agent="bot", at=T0)
    step = timedelta(milliseconds=1)
    for i in range(history):
        tasks.decide("bot", tool, task=tid, args={"amount": 1, "n": i}, now=T0 + step * (i + 1))
    times = [T0 + step * (history + i + 1) for i in range(calls)]
    start = time.process_time()
    for i, now in enumerate(times):
        tasks.decide("bot", tool, task=tid, args={"amount": 1, "n": i}, now=now)
    return (time.process_time() - start) / calls * 1e6


def fresh(engine: agp.Engine, tool: str, calls: int, prefix: str) -> float:
    """µs per call in a task whose session is empty: one call in each of `calls` tasks."""
    tasks = engine.tasks()
    ids = [f"{prefix}-{i}" for i in range(calls)]
    for tid in ids:
        tasks.start({"id": tid, "kind": "job"}, agent="bot", at=T0)
    now = T0 + timedelta(seconds=1)
    start = time.process_time()
    for i, tid in enumerate(ids):
        tasks.decide("bot", tool, task=tid, args={"amount": 1, "n": i}, now=now)
    return (time.process_time() - start) / calls * 1e6


def stateless(engine: agp.Engine, calls: int) -> float:
    request = {"agent": {"id": "bot"}, "tool": "lookup", "args": {"n": 1},
               "now": "2026-11-28T10:00:00Z"}
    start = time.process_time()
    for _ in range(calls):
        engine.decide(request)
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--no-redis", action="store_true")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.agp"
        policy.write_text(POLICY)
        stores: list[tuple[str, str | None]] = [("memory", None)]
        server = None
        if not opts.no_redis:
            from support import RedisServer

            server = RedisServer(Path(tmp)).start()
            stores.append(("redis", server.url))
        try:
            base = agp.load(policy)
            print(f"stateless decide (no task): {stateless(base, opts.calls):43.1f} µs/call")
            for name, url in stores:
                engine = agp.load(policy, store=url)
                empty = fresh(engine, "lookup", opts.calls, name)
                print(f"{name:6} empty session, {'rule does not read the history':33}"
                      f"{empty:8.1f} µs/call")
                for tool, what in (("lookup", "rule does not read the history"),
                                   ("pay", "rule counts the history")):
                    us = bench(engine, tool, opts.history, opts.calls, f"{name}-{tool}")
                    print(f"{name:6} {opts.history:,}-call history, {what:31}"
                          f"{us:8.1f} µs/call ({us / empty:.2f}x the empty session)")
                engine.store.close()
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
