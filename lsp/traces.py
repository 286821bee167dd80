"""The policy sets' traces, replayed in the server's process and kept, for the code lenses.

A set's traces are its `*.jsonl` files, as `agp test -p SET SET` finds them. Each is replayed
with the engine's replay (`agp.runtime.replay_trace`) and what it gave (a `Tally`) is kept per
(policy hash, trace file, the file's mtime and size): an edit that leaves the policy as it was
replays nothing, a changed trace replays alone, and a new policy replays every trace once.
Replays run on worker threads; a run for an older policy of the same set stops at the next file
when a newer one starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agp.engine import Engine
from agp.policy import Policy
from agp.runtime import replay_trace, trace_files

Stamp = tuple[str, int, int]  # policy hash, trace mtime (ns), trace size


@dataclass(frozen=True)
class Tally:
    """What replaying some traces gave: per rule, the expectations it decided and how many of
    those failed; in all, the expectations met and the failures (`agp test`'s last line)."""

    rules: dict[str, tuple[int, int]] = field(default_factory=dict)
    passed: int = 0
    failed: int = 0

    @staticmethod
    def of(engine: Engine, path: Path) -> Tally:
        """Replay one trace file, counting as `agp test` counts: a malformed line is a failure."""
        rules: dict[str, tuple[int, int]] = {}
        passed = failed = 0
        for outcome in replay_trace(engine, path):
            if outcome.problem is not None or (outcome.expect is not None and not outcome.passed):
                failed += 1
            elif outcome.expect is not None:
                passed += 1
            if outcome.expect is None or outcome.decision is None:
                continue
            for rule in set(outcome.decision.rules):
                n, failing = rules.get(rule, (0, 0))
                rules[rule] = (n + 1, failing + (not outcome.passed))
        return Tally(rules, passed, failed)

    @staticmethod
    def total(tallies: Iterable[Tally]) -> Tally:
        rules: dict[str, tuple[int, int]] = {}
        passed = failed = 0
        for t in tallies:
            for rule, (n, failing) in t.rules.items():
                m, f = rules.get(rule, (0, 0))
                rules[rule] = (m + n, f + failing)
            passed, failed = passed + t.passed, failed + t.failed
        return Tally(rules, passed, failed)


@dataclass(frozen=True)
class Known:
    """What is known about a set's traces for one policy: the tallies kept, the traces not yet
    replayed for it."""

    tallies: list[Tally]
    missing: list[Path]

    @property
    def tally(self) -> Tally:
        return Tally.total(self.tallies)


class TraceRuns:
    """The tallies of every trace, and which policy each set's latest run is for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[Path, tuple[Stamp, Tally]] = {}
        self.latest: dict[Path, str] = {}  # set root -> the policy hash its newest run is for

    def known(self, policy: Policy, root: Path) -> Known:
        tallies, missing = [], []
        for path in trace_files([root], empty_ok=True)[0]:
            stamp = _stamp(policy, path)
            with self._lock:
                kept = self._kept.get(path)
            if kept is not None and kept[0] == stamp:
                tallies.append(kept[1])
            else:
                missing.append(path)
        return Known(tallies, missing)

    def replay(self, policy: Policy, root: Path, stop: Callable[[], bool] = lambda: False) -> Known:
        """Replay the traces not yet replayed for `policy`, until `stop()` says a newer run took
        over; return what is then known."""
        engine = None
        for path in self.known(policy, root).missing:
            if stop():
                break
            engine = engine or Engine(policy)
            stamp = _stamp(policy, path)  # before reading: a change while replaying is seen
            tally = Tally.of(engine, path)
            with self._lock:
                self._kept[path] = (stamp, tally)
        return self.known(policy, root)


def _stamp(policy: Policy, path: Path) -> Stamp:
    try:
        stat = path.stat()
    except OSError:
        return (policy.hash, -1, -1)  # gone: replaying reports it as `agp test` would
    return (policy.hash, stat.st_mtime_ns, stat.st_size)
