"""A call of a kept task has its side effects once, however often it is decided.

The task runtime decides a call again when another call joined the task's session first
(compare-and-set). Only the attempt that joins mints a grant and writes a log line: N contended
calls give exactly N log lines, at most N grants (one per allow, each recorded in the ledger),
and every logged decision is the one its history item holds. An allow whose grant the ledger
cannot record joins the session as the `store.unavailable` deny it became.

Contention is made certain, not hoped for: `Racing` stores lose every call's first append to a
write of the task by someone else (as a call of another process would), on top of real threads
and real processes deciding at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import agp
from agp.identity import keys
from agp.identity.grants import grant_jti
from agp.model import HistoryItem
from agp.store import StoreUnavailable
from agp.store.memory import MemoryStore
from agp.store.redis import RedisStore

POLICY = """
tool pay { args { n: number } }
tool look { args { n: number } }
task job { }
permit pays on pay, look
forbid pay_rate on pay
  when count(h in task.history if h.tool == "pay": h.decision == "allow") >= 15
"""
ISS = "agp://acme.com/pdp"
N = 20  # calls per thread or process
TESTS = Path(__file__).resolve().parent


class LosesFirstAppend:
    """A store mixin: the first append of every call (told apart by its `n` argument) finds the
    task changed by another write, as when another process's call joined first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lost: set[object] = set()
        self.lost_lock = threading.Lock()

    def append(self, task_id: str, version: int, item: HistoryItem, seen: Any) -> bool:
        with self.lost_lock:
            first = item.args["n"] not in self.lost
            self.lost.add(item.args["n"])
        if first:
            self.observe(task_id, [])  # type: ignore[attr-defined]  # a write: a new version
            return False
        return super().append(task_id, version, item, seen)  # type: ignore[misc]


class RacingMemory(LosesFirstAppend, MemoryStore):
    pass


class RacingRedis(LosesFirstAppend, RedisStore):
    pass


class NoLedger(MemoryStore):
    """Tasks work; the grant ledger cannot be written."""

    def record_grant(self, jti: str, task: str | None, exp: int) -> None:
        raise StoreUnavailable("the ledger is down")


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.agp"
    path.write_text(POLICY)
    return path


@pytest.fixture
def issuer() -> dict[str, Any]:
    return keys.generate()


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()
            if line and not line.startswith("//")]


def check_once(lines: list[dict[str, Any]], history: list[Any], grants: list[str],
               calls: int) -> None:
    """Exactly one log line per call, each the decision its history item holds; one grant per
    allow, each logged with its line."""
    assert len(lines) == calls == len(history)
    at: dict[int, dict[str, Any]] = {}
    for line in lines:
        request = line["request"]
        index = len(request["task"].get("history", []))  # the session it was decided on
        assert index not in at, "two log lines for one place in the session"
        at[index] = line
    assert sorted(at) == list(range(calls))
    for index, item in enumerate(history):
        line = at[index]
        assert line["expect"]["decision"] == item.decision
        assert line["request"]["args"] == item.args
        assert agp.model.parse_timestamp(line["request"]["now"]) == item.at
    allowed = sum(item.decision == "allow" for item in history)
    assert len(grants) == len(set(grants)) == allowed <= calls
    assert sorted(grants) == sorted(line["audit"]["grant"] for line in lines
                                    if "grant" in line["audit"])


@pytest.mark.parametrize("compiled", [True, False])
def test_threads_contending_on_the_memory_store_log_and_grant_once(
        policy: Path, issuer: dict[str, Any], tmp_path: Path, compiled: bool) -> None:
    store = RacingMemory()
    log = tmp_path / "decisions.jsonl"
    engine = agp.load(policy, compiled=compiled, decision_log=log, issuer_key=issuer,
                      issuer=ISS, store=store)
    tasks = engine.tasks()
    tasks.start({"id": "t", "kind": "job"}, agent="bot")
    start = threading.Barrier(4)
    decisions: list[agp.Decision] = []

    def calls(first: int) -> None:
        start.wait()
        for n in range(first, first + N):
            decisions.append(tasks.decide("bot", "pay", task="t", args={"n": n}))

    threads = [threading.Thread(target=calls, args=(k * N,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.close()
    history = tasks.session("t")[1]
    assert len(store.lost) == 4 * N  # every call was decided at least twice
    grants = [jti for d in decisions if d.grant is not None
              for jti in [grant_jti(d.grant)] if jti is not None]
    assert len(grants) == sum(d.grant is not None for d in decisions)
    check_once(log_lines(log), history, grants, 4 * N)
    assert [d.decision for d in decisions].count("allow") == 15
    for jti in grants:  # recorded, so that ending the task revokes it
        assert jti in store._grants and not store.grant_revoked(jti, "t")
    tasks.end("t")
    assert all(store.grant_revoked(jti, "t") for jti in grants)


CHILD = """
import json, sys
sys.path.insert(0, sys.argv[4])
import agp
from agp.identity.grants import grant_jti
from test_runtime_contention import RacingRedis

store = RacingRedis(sys.argv[2])
engine = agp.load(sys.argv[1], store=store, decision_log=sys.argv[3],
                  issuer_key=json.loads(sys.argv[5]), issuer=sys.argv[6])
tasks = engine.tasks()
first = int(sys.argv[7])
out = []
for n in range(first, first + %d):
    d = tasks.decide("bot", "pay", task="t", args={"n": n})
    out.append([d.decision, grant_jti(d.grant) if d.grant else None])
engine.close()
print(json.dumps({"calls": out, "lost": len(store.lost)}))
""" % N


def test_two_processes_contending_on_one_redis_log_and_grant_once(
        policy: Path, issuer: dict[str, Any], tmp_path: Path, redis_url: str) -> None:
    engine = agp.load(policy, store=redis_url)
    tasks = engine.tasks()
    tasks.start({"id": "t", "kind": "job"}, agent="bot")
    logs = [tmp_path / f"decisions{k}.jsonl" for k in range(2)]
    procs = [subprocess.Popen(
        [sys.executable, "-c", CHILD, str(policy), redis_url, str(logs[k]), str(TESTS),
         json.dumps(issuer), ISS, str(k * N)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert [r["lost"] for r in results] == [N, N]  # every call was decided at least twice
    calls = [c for r in results for c in r["calls"]]
    grants = [jti for _, jti in calls if jti is not None]
    history = tasks.session("t")[1]
    lines = [line for path in logs for line in log_lines(path)]
    check_once(lines, history, grants, 2 * N)
    assert [d for d, _ in calls].count("allow") == 15
    ledger = engine.store
    for jti in grants:  # recorded in the shared ledger: ending the task revokes them all
        assert not ledger.grant_revoked(jti, "t")
    tasks.end("t")
    assert all(ledger.grant_revoked(jti, "t") for jti in grants)


def test_an_allow_the_ledger_cannot_record_joins_the_session_as_a_deny(
        policy: Path, issuer: dict[str, Any], tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    engine = agp.load(policy, decision_log=log, issuer_key=issuer, issuer=ISS,
                      store=NoLedger())
    tasks = engine.tasks()
    tasks.start({"id": "t", "kind": "job"}, agent="bot")
    d = tasks.decide("bot", "pay", task="t", args={"n": 1})
    engine.close()
    assert (d.decision, d.rules[0], d.grant) == ("deny", "store.unavailable", None)
    [item] = tasks.session("t")[1]
    assert item.decision == "deny"  # never an allow nobody was given
    [line] = log_lines(log)
    assert line["expect"]["decision"] == "deny" and "grant" not in line["audit"]


def test_calls_decided_once_log_once(policy: Path, issuer: dict[str, Any],
                                     tmp_path: Path) -> None:
    """The paths that never append (no task, an ended task, a store that cannot be read) log
    their one decision too, and grant only an allow."""

    class Unreadable(MemoryStore):
        def task(self, task_id: str) -> Any:
            raise StoreUnavailable("down")

    log = tmp_path / "decisions.jsonl"
    engine = agp.load(policy, decision_log=log, issuer_key=issuer, issuer=ISS)
    tasks = engine.tasks()
    tasks.start({"id": "t", "kind": "job"}, agent="bot")
    tasks.end("t")
    outside = tasks.decide("bot", "look", args={"n": 1})
    ended = tasks.decide("bot", "pay", task="t", args={"n": 2})
    down = agp.runtime.TaskRuntime(engine, Unreadable()).decide("bot", "pay", task="t",
                                                                 args={"n": 3})
    engine.close()
    assert outside.decision == "allow" and outside.grant is not None
    assert (ended.decision, ended.rules[0], ended.grant) == ("deny", "task.ended", None)
    assert (down.decision, down.rules[0], down.grant) == ("deny", "store.unavailable", None)
    lines = log_lines(log)
    assert [line["request"]["args"]["n"] for line in lines] == [1, 2, 3]
    assert [line["expect"]["decision"] for line in lines] == ["allow", "deny", "deny"]
    assert lines[0]["audit"]["grant"] == grant_jti(outside.grant)
    assert lines[1].get("task_ended") is True
