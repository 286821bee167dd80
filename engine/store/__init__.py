"""Where task state and revocations live (IDENTITY.md §4): in the process, or in Redis.

`Store` is what the task runtime (agp.runtime) and the grants (agp.identity.grants) need of it.
`open_store(None)` is the in-process memory store; `open_store("redis://...")` the Redis one.
Every method raises `StoreUnavailable` when the store cannot be reached: callers turn that into
a deny with code `store.unavailable`, never into an allow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from agp.model import HistoryItem, HistoryView, Hop, Task


class StoreUnavailable(Exception):
    """The store cannot be read or written; the message says why (never a secret)."""


class TaskRecord(NamedTuple):
    """One task instance's state, as read at one version of it.

    Immutable, and a tuple rather than a frozen dataclass: a write replaces the task's record
    whole, once per decided call of a replay, and a tuple is built in a third of the time."""

    task: Task  # kind, id, params, objective, started_at; no session (the runtime adds it)
    root: tuple[Hop, ...]  # the chain of the agent that started the task
    chains: Mapping[str, tuple[Hop, ...]]  # principal -> the chain it acts through
    ended: bool
    seen: list[str]  # the classes taken in, in the order first seen; never changed in place
    history: HistoryView  # an O(1) view of the first items, with their summary
    version: int  # changes with every write of the task: what compare-and-set compares
    latest: datetime  # the latest time stored: start, hops and history items


class TaskStore(Protocol):
    """The task part of a store. Every write of a task changes its version.

    Unconditional writes (delegate, end, observe) are atomic on their own; `append` and
    `approve` are compare-and-set on the version the caller read, so that a call is decided on
    exactly the state it is appended to (IDENTITY.md §4): per task, not a global lock.
    """

    def create_task(self, task: Task, root: tuple[Hop, ...], agent: str) -> bool:
        """Open a task instance whose chain for `agent` is `root`; False (and nothing written)
        when its id names a task already known, open or ended."""
        ...

    def task(self, task_id: str) -> TaskRecord | None:
        """The task's current state, or None for an id never started."""
        ...

    def delegate(self, task_id: str, principal: str, chain: tuple[Hop, ...]) -> None:
        """Set the chain `principal` acts through (its last hop's `at` joins `latest`)."""
        ...

    def end_task(self, task_id: str) -> None:
        """Mark the task ended, for good: its grants are revoked from then on."""
        ...

    def observe(self, task_id: str, classes: Sequence[str]) -> None:
        """Add classes to the task's `seen`."""
        ...

    def append(self, task_id: str, version: int, item: HistoryItem, seen: Sequence[str]) -> bool:
        """Append `item` to the history and `seen` to the classes seen, if the task is still at
        `version`; False (and nothing written) when it changed since."""
        ...

    def approve(self, task_id: str, version: int, index: int) -> bool:
        """Turn history item `index` (an `ask`) into an `allow`, if the task is still at
        `version`; False (and nothing written) when it changed since."""
        ...

    def active(self) -> list[str]:
        """The ids of the tasks started and not ended."""
        ...


class GrantLedger(Protocol):
    """The grants part of a store: what was issued, and what is revoked."""

    def record_grant(self, jti: str, task: str | None, exp: int) -> None:
        """Record an issued grant (`exp` in seconds since the epoch), so that ending or
        revoking its task later revokes it."""
        ...

    def grant_revoked(self, jti: str, task: str | None) -> bool:
        """Whether the grant was revoked: by `revoke(jti)`, by `revoke_task` after it was
        recorded, or because its task has ended (whenever the grant was minted)."""
        ...

    def revoke(self, jti: str, exp: int) -> None:
        """Revoke one grant; kept at least until `exp`."""
        ...

    def revoke_task(self, task: str) -> None:
        """Revoke every grant of `task` recorded so far (in the store's order, not by clocks)."""
        ...


class Store(TaskStore, GrantLedger, Protocol):
    """Task state and revocations: the memory store, or the Redis one."""

    def ping(self) -> None:
        """Return when the store can be reached; raise StoreUnavailable otherwise."""
        ...

    def close(self) -> None:
        """Release connections (the memory store has none)."""
        ...


def open_store(url: str | None = None) -> Store:
    """The store at `url`: None for the process's memory, `redis://host:port/db` (or
    `rediss://`, `unix://`) for Redis. Raises ValueError for any other kind of URL."""
    if url is None:
        from agp.store.memory import MemoryStore

        return MemoryStore()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from agp.store.redis import RedisStore

        return RedisStore(url)
    raise ValueError(f"unknown store {url!r}: use redis://host:port/db, or None for memory")


__all__ = ["GrantLedger", "Store", "StoreUnavailable", "TaskRecord",
           "TaskStore", "open_store"]
