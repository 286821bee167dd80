"""The Redis store: task state and revocations shared by every process that points at one Redis.

Every write is one Lua script, so it is atomic on the server; `append` and `approve` compare the
task's version first (compare-and-set: a process that decided on an older state decides again).
Keys are namespaced under `agp:` and a task's keys share the hash tag `{id}`:

    agp:task:{id}            hash: task, root (JSON), ended, latest (µs since the epoch), version
    agp:task:{id}:chains     hash: principal -> its chain (JSON)
    agp:task:{id}:seen       list of classes, in the order first seen (+ `:seenset` to dedupe)
    agp:task:{id}:hist       list of history items (JSON), append-only
    agp:task:{id}:appr       list of the indices of approved items (append-only)
    agp:task:{id}:revoked    the grant sequence number before which the task's grants are revoked
    agp:grant:{jti}          the grant's sequence number, expiring at the grant's `exp`
    agp:revoked:{jti}        a revoked grant, expiring at the grant's `exp`

Each process keeps a cache of the tasks it reads: a read sends the version it holds and gets
back only what changed (the new tail of the history, new approvals), so a decision costs one
round trip whatever the history's length. Any Redis error is `StoreUnavailable`; the client
reconnects by itself on the next call once Redis is back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agp.model import HistoryItem, HistoryView, Hop, SessionSummary, Task
from agp.store import StoreUnavailable, TaskRecord

T = TypeVar("T")

# Short timeouts: a decision waits at most this long for an unreachable Redis before it is
# denied `store.unavailable`. One immediate retry lets a pooled connection that Redis closed
# (a restart) reconnect without failing the call.
SOCKET_TIMEOUT = 0.5

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'task', ARGV[1], 'root', ARGV[2], 'ended', '0', 'latest', ARGV[3],
           'version', '0')
redis.call('HSET', KEYS[2], ARGV[4], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[5])
return 1
"""

# KEYS: task, chains, seen, hist, appr. ARGV: the version the caller holds, its history length,
# its number of approvals. Returns false for an unknown task, {version} when nothing changed.
_READ = """
local v = redis.call('HGET', KEYS[1], 'version')
if not v then return false end
if v == ARGV[1] then return {v} end
local m = redis.call('HMGET', KEYS[1], 'task', 'root', 'ended', 'latest')
local appr = redis.call('LRANGE', KEYS[5], tonumber(ARGV[3]), -1)
local fixed = {}
for i, idx in ipairs(appr) do fixed[i] = redis.call('LINDEX', KEYS[4], tonumber(idx)) end
return {v, m[1], m[2], m[3], m[4], redis.call('HGETALL', KEYS[2]),
        redis.call('LRANGE', KEYS[3], 0, -1), redis.call('LRANGE', KEYS[4], tonumber(ARGV[2]), -1),
        appr, fixed}
"""

_SEEN = """
local function see(seen, seenset, first)
  for i = first, #ARGV do
    if redis.call('SADD', seenset, ARGV[i]) == 1 then redis.call('RPUSH', seen, ARGV[i]) end
  end
end
"""

# KEYS: task, hist, seen, seenset. ARGV: version, item, its time (µs), classes seen.
_APPEND = _SEEN + """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
see(KEYS[3], KEYS[4], 4)
if tonumber(ARGV[3]) > tonumber(redis.call('HGET', KEYS[1], 'latest')) then
  redis.call('HSET', KEYS[1], 'latest', ARGV[3])
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
return 1
"""

# KEYS: task, seen, seenset. ARGV: classes.
_OBSERVE = _SEEN + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
see(KEYS[2], KEYS[3], 1)
redis.call('HINCRBY', KEYS[1], 'version', 1)
return 1
"""

# KEYS: task, chains. ARGV: principal, chain, its last hop's time (µs) or ''.
_DELEGATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] ~= '' and tonumber(ARGV[3]) > tonumber(redis.call('HGET', KEYS[1], 'latest')) then
  redis.call('HSET', KEYS[1], 'latest', ARGV[3])
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
return 1
"""

# KEYS: task, open tasks. ARGV: id.
_END = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'ended', '1')
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'version', 1)
return 1
"""

# KEYS: task, hist, appr. ARGV: version, index, the approved item.
_APPROVE = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('LSET', KEYS[2], tonumber(ARGV[2]), ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'version', 1)
return 1
"""

# KEYS: sequence, grant. ARGV: exp.
_RECORD = """
local s = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], s)
redis.call('EXPIREAT', KEYS[2], tonumber(ARGV[1]))
return s
"""

# KEYS: sequence, the task's revocation mark.
_REVOKE_TASK = """
redis.call('SET', KEYS[2], redis.call('INCR', KEYS[1]))
return 1
"""

# KEYS: revoked jti, task, task's revocation mark, grant. ARGV: '1' when the grant has a task.
# The same rule as MemoryStore.grant_revoked.
_REVOKED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
if ARGV[1] ~= '1' then return 0 end
if redis.call('HGET', KEYS[2], 'ended') == '1' then return 1 end
local upto = redis.call('GET', KEYS[3])
if not upto then return 0 end
local s = redis.call('GET', KEYS[4])
if not s then return 1 end
if tonumber(s) < tonumber(upto) then return 1 end
return 0
"""


@dataclass(frozen=True, slots=True)
class _Cached:
    """What this process knows of one task: the record of one version, and the raw texts it was
    built from (a field whose text did not change is not parsed again)."""

    record: TaskRecord
    raw: tuple[str, str, tuple[tuple[str, str], ...]]  # task, root, chains
    items: list[HistoryItem]  # the list the record's history views; appended past their end
    approvals: int


class RedisStore:
    """The store at one Redis URL; safe from many threads at once (redis-py pools connections)."""

    def __init__(self, url: str, *, prefix: str = "agp:") -> None:
        self.url = url
        self.prefix = prefix
        self._redis = redis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT,
            retry=Retry(NoBackoff(), 1), decode_responses=True)
        self._cache: dict[str, _Cached] = {}
        self._cache_lock = threading.Lock()
        scripts = {name: self._redis.register_script(code) for name, code in (
            ("create", _CREATE), ("read", _READ), ("append", _APPEND), ("observe", _OBSERVE),
            ("delegate", _DELEGATE), ("end", _END), ("approve", _APPROVE), ("record", _RECORD),
            ("revoke_task", _REVOKE_TASK), ("revoked", _REVOKED))}
        self._scripts = scripts

    def _keys(self, task_id: str, *parts: str) -> list[str]:
        base = f"{self.prefix}task:{{{task_id}}}"
        return [base if not p else f"{base}:{p}" for p in parts]

    def _run(self, script: str, keys: list[str], args: Sequence[str | int]) -> Any:
        return _call(lambda: self._scripts[script](keys=keys, args=list(args)))

    # ---- tasks ------------------------------------------------------------------------------

    def create_task(self, task: Task, root: tuple[Hop, ...], agent: str) -> bool:
        assert task.id is not None and task.started_at is not None
        created = self._run("create", [*self._keys(task.id, "", "chains"),
                                       f"{self.prefix}tasks:open"],
                            [_task_json(task), _chain_json(root), _micros(task.started_at),
                             agent, task.id])
        return bool(created)

    def task(self, task_id: str) -> TaskRecord | None:
        old = self._cache.get(task_id)
        known = (old.record.version, len(old.record.history), old.approvals) if old \
            else (-1, 0, 0)
        reply = self._run("read", self._keys(task_id, "", "chains", "seen", "hist", "appr"),
                          known)
        if not reply:
            return None
        if old is not None and int(reply[0]) == old.record.version:
            return old.record
        with self._cache_lock:
            # The reply is relative to `old`. When another thread installed a newer state
            # meanwhile, this one is built on a copy and not installed.
            fresh = self._cache.get(task_id) is old
            new = _rebuild(old, reply, shared=not fresh)
            if fresh:
                self._cache[task_id] = new
        return new.record

    def delegate(self, task_id: str, principal: str, chain: tuple[Hop, ...]) -> None:
        at = chain[-1].at if chain else None
        self._run("delegate", self._keys(task_id, "", "chains"),
                  [principal, _chain_json(chain), "" if at is None else _micros(at)])

    def end_task(self, task_id: str) -> None:
        self._run("end", [*self._keys(task_id, ""), f"{self.prefix}tasks:open"], [task_id])

    def observe(self, task_id: str, classes: Sequence[str]) -> None:
        self._run("observe", self._keys(task_id, "", "seen", "seenset"), list(classes))

    def append(self, task_id: str, version: int, item: HistoryItem, seen: Sequence[str]) -> bool:
        return bool(self._run("append", self._keys(task_id, "", "hist", "seen", "seenset"),
                              [version, _item_json(item), _micros(item.at), *seen]))

    def approve(self, task_id: str, version: int, index: int) -> bool:
        record = self._cache.get(task_id)
        if record is None or record.record.version != version:
            return False  # approve after task(): the item to write comes from that read
        item = record.items[index].model_copy(update={"decision": "allow"})
        return bool(self._run("approve", self._keys(task_id, "", "hist", "appr"),
                              [version, index, _item_json(item)]))

    def active(self) -> list[str]:
        members: set[str] = _call(lambda: self._redis.smembers(f"{self.prefix}tasks:open"))  # type: ignore[arg-type,return-value]  # decode_responses
        return sorted(members)

    # ---- grants -----------------------------------------------------------------------------

    def record_grant(self, jti: str, task: str | None, exp: int) -> None:
        self._run("record", [f"{self.prefix}grants:seq", f"{self.prefix}grant:{jti}"], [exp])

    def grant_revoked(self, jti: str, task: str | None) -> bool:
        tid = task if task is not None else ""
        return bool(self._run("revoked", [f"{self.prefix}revoked:{jti}",
                                          *self._keys(tid, "", "revoked"),
                                          f"{self.prefix}grant:{jti}"],
                              ["1" if task is not None else "0"]))

    def revoke(self, jti: str, exp: int) -> None:
        key = f"{self.prefix}revoked:{jti}"

        def run() -> None:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(key, 1)
                pipe.expireat(key, exp)
                pipe.execute()

        _call(run)

    def revoke_task(self, task: str) -> None:
        self._run("revoke_task", [f"{self.prefix}grants:seq", *self._keys(task, "revoked")], [])

    # ---- the store's life ---------------------------------------------------------------------

    def ping(self) -> None:
        _call(self._redis.ping)

    def close(self) -> None:
        self._redis.close()


def _call(op: Callable[[], T]) -> T:
    try:
        return op()
    except redis.RedisError as exc:
        raise StoreUnavailable(f"the Redis store cannot be reached: {type(exc).__name__}: {exc}"
                               ) from None


# ---- encoding ---------------------------------------------------------------------------------


def _micros(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _plain(value: object) -> object:
    """JSON for the values that Python callers may put in a request besides JSON's own."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"cannot store a {type(value).__name__}")


def _dumps(value: object) -> str:
    return json.dumps(value, default=_plain, separators=(",", ":"), allow_nan=False)


def _task_json(task: Task) -> str:
    return _dumps(task.model_dump(exclude={"seen", "history"}, exclude_none=True))


def _chain_json(chain: tuple[Hop, ...]) -> str:
    return _dumps([h.model_dump(exclude_none=True) for h in chain])


def _item_json(item: HistoryItem) -> str:
    return _dumps([item.tool, item.intent, item.data, item.args, item.decision, _micros(item.at)])


def _item(text: str) -> HistoryItem:
    tool, intent, data, args, decision, at = json.loads(text)
    return HistoryItem.model_construct(tool=tool, intent=intent, data=data, args=args,
                                       decision=decision, at=_time(at))


def _chain(text: str) -> tuple[Hop, ...]:
    return tuple(Hop.model_validate(h) for h in json.loads(text))


def _rebuild(old: _Cached | None, reply: list[Any], *, shared: bool) -> _Cached:
    """The cache of a task from what the read script returned and what was known before;
    `shared` when `old.items` may have grown past `old.record` (it is then copied)."""
    version, task_raw, root_raw, ended, latest, chains_flat, seen, tail, appr, fixed = reply
    chains_raw = tuple(zip(chains_flat[::2], chains_flat[1::2], strict=True))
    if old is not None and old.raw[0] == task_raw:
        task = old.record.task
    else:
        task = Task.model_validate(json.loads(task_raw))
    root = old.record.root if old is not None and old.raw[1] == root_raw else _chain(root_raw)
    if old is not None and old.raw[2] == chains_raw:
        chains = old.record.chains
    else:
        previous = {p: (text, old.record.chains[p]) for p, text in old.raw[2]} if old else {}
        chains = {p: (previous[p][1] if p in previous and previous[p][0] == text else _chain(text))
                  for p, text in chains_raw}
    items = old.items if old is not None else []
    summary = old.record.history.summary if old is not None else SessionSummary.EMPTY
    if shared or appr:  # an approval changes an item: copy, so that views stay as they were
        items = items[:len(old.record.history)] if old is not None else []
    for text in tail:
        item = _item(text)
        items.append(item)
        summary = summary.add(item.intent, item.data, item.at)
    for idx, text in zip(appr, fixed, strict=True):
        items[int(idx)] = _item(text)
    record = TaskRecord(task, root, chains, ended == "1", seen,
                        HistoryView(items, len(items), summary), int(version),
                        _time(int(latest)))
    return _Cached(record, (task_raw, root_raw, chains_raw), items,
                   (old.approvals if old else 0) + len(appr))
