"""One truth across processes (IDENTITY.md §4), with real processes sharing one real Redis:
concurrent appends lose nothing, an end or a revocation in one process holds in the other, and a
stopped Redis denies until it is back."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import agp

POLICY = """
tool pay { args { amount: number } }
task job { }
permit pays on pay
forbid pay_rate on pay
  when count(h in task.history if h.tool == "pay": h.decision == "allow") >= 15
"""
N = 20  # calls per process


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.agp"
    path.write_text(POLICY)
    return path


def run(code: str, *args: str) -> subprocess.Popen[str]:
    """Another Python process running `code` (agp imported, argv in `args`)."""
    return subprocess.Popen([sys.executable, "-c", "import sys, agp\n" + textwrap.dedent(code),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def done(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


CALLS = """
engine = agp.load(sys.argv[1], store=sys.argv[2])
tasks = engine.tasks()
words = [tasks.decide("bot", "pay", task="t", args={"amount": 1}).decision for _ in range(%d)]
print(" ".join(words))
""" % N


def test_two_processes_appending_to_one_task_lose_nothing(policy, redis_url):
    engine = agp.load(policy, store=redis_url)
    tasks = engine.tasks()
    tasks.start({"id": "t", "kind": "job"}, agent="bot")
    procs = [run(CALLS, str(policy), redis_url) for _ in range(2)]
    words = [w for p in procs for w in done(p).split()]
    history = tasks.session("t")[1]
    assert len(history) == 2 * N
    # The rate rule held exactly across the processes: 15 allowed, whoever decided them.
    assert words.count("allow") == 15 == sum(h.decision == "allow" for h in history)
    assert [h.decision for h in history] == ["allow"] * 15 + ["deny"] * (2 * N - 15)


def test_a_task_ended_in_one_process_is_ended_in_the_other(policy, redis_url):
    tasks = agp.load(policy, store=redis_url).tasks()
    tasks.start({"id": "t", "kind": "job"}, agent="bot")
    done(run("""
        tasks = agp.load(sys.argv[1], store=sys.argv[2]).tasks()
        assert tasks.decide("bot", "pay", task="t", args={"amount": 1}).decision == "allow"
        tasks.end("t")
    """, str(policy), redis_url))
    d = tasks.decide("bot", "pay", task="t", args={"amount": 1})
    assert d.decision == "deny" and "task.ended" in d.rules
    assert tasks.active() == []
    assert len(tasks.session("t")[1]) == 1


def test_a_revocation_in_one_process_is_seen_in_the_other(policy, redis_url):
    store = agp.load(policy, store=redis_url).store
    store.record_grant("j1", "t", 4_000_000_000)
    store.record_grant("j2", "t", 4_000_000_000)
    done(run("""
        store = agp.load(sys.argv[1], store=sys.argv[2]).store
        store.revoke("j1", 4_000_000_000)
        store.revoke_task("t")
        store.record_grant("j3", "t", 4_000_000_000)
    """, str(policy), redis_url))
    assert store.grant_revoked("j1", "t") and store.grant_revoked("j2", "t")
    assert not store.grant_revoked("j3", "t")


def test_a_stopped_redis_denies_and_a_restarted_one_recovers(policy, redis_server, redis_url):
    tasks = agp.load(policy, store=redis_url).tasks()
    tasks.start({"id": "t", "kind": "job"}, agent="bot")
    assert tasks.decide("bot", "pay", task="t", args={"amount": 1}).decision == "allow"
    redis_server.stop()
    try:
        for _ in range(3):
            d = tasks.decide("bot", "pay", task="t", args={"amount": 1})
            # (pay_rate, which cannot read the session, fails closed too.)
            assert (d.decision, d.rules[0]) == ("deny", "store.unavailable")
        with pytest.raises(agp.store.StoreUnavailable):
            tasks.start({"id": "t2", "kind": "job"}, agent="bot")
    finally:
        redis_server.start()
    # The same process, the same engine: back to deciding, on the state Redis kept.
    assert tasks.decide("bot", "pay", task="t", args={"amount": 1}).decision == "allow"
    assert [h.decision for h in tasks.session("t")[1]] == ["allow", "allow"]
