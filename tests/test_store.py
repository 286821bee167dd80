"""The store interface (agp.store): the memory store and the Redis store pass the same suite.

The Redis store runs against a real redis-server that the suite starts itself (conftest.py).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from agp.model import HistoryItem, Hop, Task
from agp.store import StoreUnavailable, open_store
from agp.store.memory import MemoryStore

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
BOT = "spiffe://acme.com/agents/bot"


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield open_store(None)
        return
    s = open_store(request.getfixturevalue("redis_url"))
    yield s
    s.close()


def make_task(store, tid="t-1", at=T0, agent=BOT):
    task = Task.model_construct(kind="job", id=tid, params={"customer": "c-1"}, objective=None,
                                started_at=at)
    root = (Hop.model_construct(principal="user:alice", kind="human", at=None, scope=None),
            Hop.model_construct(principal=agent, kind="agent", at=None, scope=None))
    return store.create_task(task, root, agent)


def item(tool="pay", decision="allow", at=T0, data=(), intent=(), args=None):
    return HistoryItem.model_construct(tool=tool, intent=list(intent), data=list(data),
                                       args=args if args is not None else {"amount": 1},
                                       decision=decision, at=at)


def test_open_store_kinds():
    assert isinstance(open_store(None), MemoryStore)
    with pytest.raises(ValueError, match="unknown store 'postgres://x'"):
        open_store("postgres://x")


def test_a_task_id_names_one_instance_for_good(store):
    assert store.task("t-1") is None
    assert make_task(store) is True
    record = store.task("t-1")
    assert (record.task.kind, record.task.id, record.task.params) == ("job", "t-1",
                                                                      {"customer": "c-1"})
    assert record.task.started_at == T0 and record.latest == T0
    assert [h.principal for h in record.chains[BOT]] == ["user:alice", BOT]
    assert record.root == record.chains[BOT]
    assert (record.ended, record.seen, len(record.history)) == (False, [], 0)
    assert make_task(store, at=T0 + timedelta(1)) is False  # open: refused, nothing changed
    assert store.task("t-1").task.started_at == T0
    store.end_task("t-1")
    assert store.task("t-1").ended
    assert make_task(store) is False  # ended: refused too
    assert store.task("t-1").ended and store.active() == []


def test_append_is_compare_and_set_on_the_version(store):
    make_task(store)
    v0 = store.task("t-1").version
    assert store.append("t-1", v0, item(data=["pii"]), ["pii"]) is True
    r1 = store.task("t-1")
    assert r1.version != v0 and [h.tool for h in r1.history] == ["pay"] and r1.seen == ["pii"]
    # A writer that read v0 lost the race: nothing is written, it must read and decide again.
    assert store.append("t-1", v0, item(tool="other"), ["secret"]) is False
    r2 = store.task("t-1")
    assert r2.version == r1.version and len(r2.history) == 1 and r2.seen == ["pii"]
    assert store.append("nope", 0, item(), []) is False


def test_history_views_stay_as_they_were_read(store):
    make_task(store)
    store.append("t-1", store.task("t-1").version, item(decision="ask", at=T0), [])
    before = store.task("t-1")
    store.append("t-1", before.version, item(tool="b", at=T0 + timedelta(seconds=5)), [])
    after = store.task("t-1")
    assert [h.tool for h in before.history] == ["pay"]
    assert [h.tool for h in after.history] == ["pay", "b"]
    assert after.history[-1].at == T0 + timedelta(seconds=5) == after.latest
    assert after.history.summary.latest == after.latest
    assert store.approve("t-1", before.version, 0) is False  # stale
    assert store.approve("t-1", after.version, 0) is True
    approved = store.task("t-1")
    assert [h.decision for h in approved.history] == ["allow", "allow"]
    # Views handed out before the approval (a request being logged) did not change.
    assert [h.decision for h in after.history] == ["ask", "allow"]
    assert [h.decision for h in before.history] == ["ask"]


def test_items_keep_their_fields(store):
    make_task(store)
    at = T0 + timedelta(microseconds=123456)
    it = item(tool="crm.lookup", decision="ask", at=at, data=["pii"], intent=["read"],
              args={"customer": "c-1", "n": [1, 2.5, None, True], "o": {"k": "v"}})
    store.append("t-1", store.task("t-1").version, it, ["pii"])
    got = store.task("t-1").history[0]
    assert got.model_dump() == it.model_dump()


def test_observe_adds_classes_in_order_once(store):
    make_task(store)
    store.observe("t-1", ["pii", "secret"])
    store.append("t-1", store.task("t-1").version, item(), ["secret", "internal"])
    store.observe("t-1", ["pii", "bogus"])
    assert store.task("t-1").seen == ["pii", "secret", "internal", "bogus"]


def test_delegate_sets_a_chain_and_the_latest_time(store):
    make_task(store)
    v = store.task("t-1").version
    hop = Hop.model_validate({"principal": "eu-1", "kind": "agent",
                              "at": "2026-11-28T10:05:00Z",
                              "scope": {"tools": ["pay"], "ttl": "5m", "data": "pii"}})
    chain = (*store.task("t-1").root, hop)
    store.delegate("t-1", "eu-1", chain)
    record = store.task("t-1")
    assert record.version != v and record.chains["eu-1"] == chain
    assert record.chains["eu-1"][-1].scope.ttl == timedelta(minutes=5)
    assert record.latest == T0 + timedelta(minutes=5)


def test_active_lists_open_tasks(store):
    make_task(store, "a")
    make_task(store, "b")
    store.end_task("a")
    assert store.active() == ["b"]


# ---- the grant ledger ---------------------------------------------------------------------------

EXP = int((datetime.now(timezone.utc) + timedelta(hours=1)).timestamp())


def test_revoke_one_grant(store):
    store.record_grant("j1", "t-1", EXP)
    store.record_grant("j2", "t-1", EXP)
    assert not store.grant_revoked("j1", "t-1")
    store.revoke("j1", EXP)
    assert store.grant_revoked("j1", "t-1") and not store.grant_revoked("j2", "t-1")
    store.revoke("j3", EXP)  # a grant without a task
    assert store.grant_revoked("j3", None) and not store.grant_revoked("j4", None)


def test_revoke_task_revokes_the_grants_recorded_so_far(store):
    store.record_grant("early", "t-1", EXP)
    store.record_grant("other", "t-2", EXP)
    store.revoke_task("t-1")
    store.record_grant("late", "t-1", EXP)
    assert store.grant_revoked("early", "t-1")
    assert not store.grant_revoked("late", "t-1")  # the task is still open: later grants hold
    assert not store.grant_revoked("other", "t-2")
    # A grant of that task that the ledger never recorded is refused: fail closed.
    assert store.grant_revoked("unrecorded", "t-1")


def test_ending_a_task_revokes_all_its_grants_even_later_ones(store):
    make_task(store)
    store.record_grant("before", "t-1", EXP)
    store.end_task("t-1")
    store.record_grant("after", "t-1", EXP)  # minted by a stateless decide naming the task
    assert store.grant_revoked("before", "t-1") and store.grant_revoked("after", "t-1")
    assert store.grant_revoked("never-recorded", "t-1")
    assert not store.grant_revoked("before", "t-2")


def test_concurrent_appends_lose_nothing(store):
    make_task(store)

    def worker(n: int) -> None:
        for i in range(50):
            while True:  # the runtime's loop: read, then append only on the version read
                record = store.task("t-1")
                if store.append("t-1", record.version, item(tool=f"w{n}-{i}"), []):
                    break

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tools = [h.tool for h in store.task("t-1").history]
    assert sorted(tools) == sorted(f"w{n}-{i}" for n in range(4) for i in range(50))
    for n in range(4):  # each writer's items in its own order
        assert [t for t in tools if t.startswith(f"w{n}-")] == [f"w{n}-{i}" for i in range(50)]


# ---- Redis down and back ------------------------------------------------------------------------


def test_redis_down_raises_store_unavailable_and_recovers(redis_server, redis_url):
    store = open_store(redis_url)
    make_task(store)
    store.record_grant("j", "t-1", EXP)
    redis_server.stop()
    try:
        for op in (lambda: store.task("t-1"), lambda: make_task(store, "t-2"),
                   lambda: store.append("t-1", 1, item(), []), lambda: store.observe("t-1", []),
                   lambda: store.end_task("t-1"), lambda: store.grant_revoked("j", "t-1"),
                   lambda: store.revoke("j", EXP), lambda: store.revoke_task("t-1"),
                   lambda: store.record_grant("k", "t-1", EXP), store.active, store.ping):
            with pytest.raises(StoreUnavailable, match="cannot be reached"):
                op()
    finally:
        redis_server.start()
    # Back without a new store object: the client reconnects by itself, and the data is there.
    assert store.task("t-1").task.id == "t-1"
    store.ping()
    store.close()


def test_unreachable_redis_at_start():
    store = open_store("redis://127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable):
        store.task("t-1")


def test_records_never_change_and_share_seen_until_it_grows(store):
    """A record is read once and decided on: no write changes it, and a write that adds no
    class to `seen` keeps an equal list (the memory store: the very same one)."""
    make_task(store)
    store.observe("t-1", ["pii"])
    first = store.task("t-1")
    with pytest.raises(AttributeError):
        first.version = 99
    store.append("t-1", first.version, item(data=["pii"]), ["pii"])
    second = store.task("t-1")
    assert second.seen == ["pii"] and second.version != first.version
    if isinstance(store, MemoryStore):
        assert second.seen is first.seen
    store.append("t-1", second.version, item(data=["secret"]), ["pii", "secret", "secret"])
    third = store.task("t-1")
    assert (first.seen, second.seen, third.seen) == (["pii"], ["pii"], ["pii", "secret"])
    assert (len(first.history), len(second.history), len(third.history)) == (0, 1, 2)
