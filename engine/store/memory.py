"""The in-process store: the default, one per engine.

Each task is one immutable `TaskRecord`, replaced whole on every write under one short lock, so
that a read is a dictionary lookup and never waits. Deciding happens outside the lock: the
runtime appends with compare-and-set on the version it read, exactly as with Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from agp.model import HistoryItem, HistoryView, Hop, SessionSummary, Task
from agp.store import TaskRecord

# Expired grants and revocations are dropped every this many recorded grants, so that the
# ledger of a long-running process stays as large as the grants that are still valid.
_SWEEP_EVERY = 1024
# Chains kept shared by the tasks that start through them (emptied when full).
_START_CACHE = 4096

# What every new task starts with, shared: a record's lists and views are never changed in
# place (a write replaces the record), so a task costs only what is its own.
_NOTHING_SEEN: list[str] = []
_NO_HISTORY = HistoryView((), 0, SessionSummary.EMPTY)


class MemoryStore:
    """Task state and revocations in this process's memory; safe from many threads at once."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskRecord] = {}
        # The list each task's views look into, from the task's first call on.
        self._items: dict[str, list[HistoryItem]] = {}
        # (agent, id(root)) -> (root, {agent: root}): the chains of tasks started alike, shared.
        self._starts: dict[tuple[str, int], tuple[tuple[Hop, ...], dict[str, tuple[Hop, ...]]]] \
            = {}
        self._lock = threading.Lock()
        self._seq = 0  # the order of grants and task revocations, as the store records them
        self._grants: dict[str, tuple[int, int]] = {}  # jti -> (seq, exp)
        self._revoked: dict[str, int] = {}  # jti -> exp
        self._task_revoked: dict[str, int] = {}  # task -> grants recorded before this seq

    # ---- tasks ------------------------------------------------------------------------------

    def create_task(self, task: Task, root: tuple[Hop, ...], agent: str) -> bool:
        assert task.id is not None and task.started_at is not None
        with self._lock:
            if task.id in self._tasks:
                return False
            self._tasks[task.id] = TaskRecord(task, root, self._chains(agent, root), False,
                                              _NOTHING_SEEN, _NO_HISTORY, 0, task.started_at)
            return True

    def _chains(self, agent: str, root: tuple[Hop, ...]) -> dict[str, tuple[Hop, ...]]:
        """`{agent: root}`, one dict for every task started with the same chain object (the
        runtime shares those) by the same agent: `delegate` replaces it, never changes it."""
        key = (agent, id(root))
        cached = self._starts.get(key)
        if cached is None or cached[0] is not root:
            if len(self._starts) >= _START_CACHE:
                self._starts.clear()
            cached = self._starts[key] = (root, {agent: root})
        return cached[1]

    def task(self, task_id: str) -> TaskRecord | None:
        return self._tasks.get(task_id)

    def delegate(self, task_id: str, principal: str, chain: tuple[Hop, ...]) -> None:
        at = chain[-1].at if chain else None
        with self._lock:
            r = self._tasks[task_id]
            latest = at if at is not None and at > r.latest else r.latest
            self._tasks[task_id] = TaskRecord(r.task, r.root, {**r.chains, principal: chain},
                                              r.ended, r.seen, r.history, r.version + 1, latest)

    def end_task(self, task_id: str) -> None:
        with self._lock:
            r = self._tasks[task_id]
            self._tasks[task_id] = TaskRecord(r.task, r.root, r.chains, True, r.seen, r.history,
                                              r.version + 1, r.latest)

    def observe(self, task_id: str, classes: Sequence[str]) -> None:
        with self._lock:
            r = self._tasks[task_id]
            self._tasks[task_id] = TaskRecord(r.task, r.root, r.chains, r.ended,
                                              _joined(r.seen, classes), r.history,
                                              r.version + 1, r.latest)

    def append(self, task_id: str, version: int, item: HistoryItem, seen: Sequence[str]) -> bool:
        with self._lock:
            r = self._tasks.get(task_id)
            if r is None or r.version != version:
                return False
            items = self._items.get(task_id)
            if items is None:
                items = self._items[task_id] = []
            items.append(item)  # past every existing view's end, so no reader sees it change
            history = HistoryView(items, len(items),
                                  r.history.summary.add(item.intent, item.data, item.at))
            self._tasks[task_id] = TaskRecord(r.task, r.root, r.chains, r.ended,
                                              _joined(r.seen, seen), history, r.version + 1,
                                              item.at if item.at > r.latest else r.latest)
            return True

    def approve(self, task_id: str, version: int, index: int) -> bool:
        with self._lock:
            r = self._tasks.get(task_id)
            if r is None or r.version != version:
                return False
            # A copy: views already handed out (a request being logged) keep the item as it was.
            items = list(self._items[task_id])
            items[index] = items[index].model_copy(update={"decision": "allow"})
            self._items[task_id] = items
            history = HistoryView(items, len(items), r.history.summary)
            self._tasks[task_id] = TaskRecord(r.task, r.root, r.chains, r.ended, r.seen,
                                              history, r.version + 1, r.latest)
            return True

    def active(self) -> list[str]:
        return [tid for tid, r in list(self._tasks.items()) if not r.ended]

    # ---- grants -----------------------------------------------------------------------------

    def record_grant(self, jti: str, task: str | None, exp: int) -> None:
        with self._lock:
            self._seq += 1
            self._grants[jti] = (self._seq, exp)
            if self._seq % _SWEEP_EVERY == 0:
                self._sweep(int(time.time()))

    def grant_revoked(self, jti: str, task: str | None) -> bool:
        if jti in self._revoked:
            return True
        if task is None:
            return False
        record = self._tasks.get(task)
        if record is not None and record.ended:
            return True
        upto = self._task_revoked.get(task)
        if upto is None:
            return False
        grant = self._grants.get(jti)
        # A grant of a revoked task that the ledger never recorded is refused: fail closed.
        return grant is None or grant[0] < upto

    def revoke(self, jti: str, exp: int) -> None:
        with self._lock:
            self._revoked[jti] = max(exp, self._revoked.get(jti, exp))

    def revoke_task(self, task: str) -> None:
        with self._lock:
            self._seq += 1
            self._task_revoked[task] = self._seq

    def _sweep(self, now: int) -> None:
        self._grants = {j: g for j, g in self._grants.items() if g[1] > now}
        self._revoked = {j: exp for j, exp in self._revoked.items() if exp > now}

    # ---- the store's life ---------------------------------------------------------------------

    def ping(self) -> None:
        """The memory store is always reachable."""

    def close(self) -> None:
        """Nothing to release."""


def _joined(seen: list[str], more: Sequence[str]) -> list[str]:
    """`seen` with the classes of `more` it lacks, in order; `seen` itself when it has them all
    (a list handed out in a record is never changed)."""
    for c in more:  # the common case, on every append: nothing new (or nothing at all)
        if c not in seen:
            break
    else:
        return seen
    new = [c for c in dict.fromkeys(more) if c not in seen]
    return [*seen, *new] if new else seen
