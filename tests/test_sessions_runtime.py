"""Sessions in the task runtime (LANGUAGE.md §6 "What goes in"): every call is decided with its
task's `seen` and `history` and then joins them; `observe`, `approve`, the clock, the bound, and a
store that cannot be reached. Each test runs on the memory store and on a real Redis, with both
evaluators where the decision matters."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

import agp
from agp.limits import MAX_SESSION_CALLS
from agp.runtime import TaskError, TaskRuntime
from agp.store import StoreUnavailable
from agp.store.memory import MemoryStore

POLICY = """
import std.intents
dataclass public
dataclass secret > public
dataclass untrusted
tool pay { intent payment  data public  args { amount: number } }
tool read.secret { data secret }
tool web.get { data untrusted }
tool mail.send { intent egress }
task job { }
permit pays on pay
forbid pay_rate on pay
  when count(h in task.history if h.tool == "pay": h.decision == "allow") >= 3
  because "three payments per task"
permit reads on read.secret, web.get
forbid bad on web.get when args.bad == true
ask egress_after_secret on mail.send when task.seen >= secret
permit egress on mail.send
"""
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
BOT = "bot"


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("sessions") / "policy.agp"
    path.write_text(POLICY)
    return path


@pytest.fixture(params=["memory", "redis"])
def store_url(request):
    return None if request.param == "memory" else request.getfixturevalue("redis_url")


@pytest.fixture(params=[True, False], ids=["compiled", "reference"])
def tasks(request, policy_dir, store_url):
    engine = agp.load(policy_dir, compiled=request.param, store=store_url)
    runtime = engine.tasks()
    runtime.start({"id": "t", "kind": "job"}, agent=BOT, at=at(0))
    yield runtime
    engine.store.close()


def test_engine_tasks_share_the_engine_store(policy_dir):
    engine = agp.load(policy_dir)
    engine.tasks().start({"id": "t", "kind": "job"}, agent=BOT, at=at(0))
    assert engine.tasks().active() == ["t"]
    assert agp.load(policy_dir).tasks().active() == []  # another engine, another memory


def test_history_drives_a_rate_rule(tasks):
    words = [tasks.decide(BOT, "pay", task="t", args={"amount": 1}, now=at(i + 1)).decision
             for i in range(5)]
    assert words == ["allow", "allow", "allow", "deny", "deny"]
    seen, history = tasks.session("t")
    assert [(h.tool, h.decision) for h in history] == [("pay", "allow")] * 3 + [("pay", "deny")] * 2
    # Resolved labels: the tool declaration's, sorted; the call's time.
    assert (history[0].intent, history[0].data, history[0].at) == (["payment"], ["public"],
                                                                    T0 + timedelta(seconds=1))
    assert history[0].args == {"amount": 1}
    assert seen == ["public"]


def test_seen_takes_classes_of_allowed_and_asked_calls_only(tasks):
    assert tasks.decide(BOT, "web.get", task="t", args={"bad": True}, now=at(1)).decision == "deny"
    assert tasks.session("t")[0] == []  # a denied call took nothing in
    assert tasks.decide(BOT, "read.secret", task="t", now=at(2)).decision == "allow"
    assert tasks.session("t")[0] == ["secret"]
    # Once a secret was read, egress asks; before, it did not.
    d = tasks.decide(BOT, "mail.send", task="t", now=at(3), data=["public"])
    assert (d.decision, d.rules) == ("ask", ["egress_after_secret"])
    seen, history = tasks.session("t")
    assert seen == ["secret", "public"]
    assert (history[-1].intent, history[-1].data) == (["egress"], ["public"])


def test_request_labels_join_and_undeclared_names_are_left_out(tasks):
    d = tasks.decide(BOT, "web.get", task="t", now=at(1), intent=["read", "nonsense"],
                     data=["public", "bogus"])
    assert d.decision == "deny" and "request.unknown" in d.rules
    history = tasks.session("t")[1]
    assert (history[0].intent, history[0].data) == (["read"], ["public", "untrusted"])


def test_invalid_calls_do_not_join(tasks):
    d = tasks.decide(BOT, "pay", task="t", args={"amount": 1}, now="yesterday")
    assert d.rules == ["request.invalid"]
    d = tasks.decide(BOT, "pay", task="t", args={"amount": float("nan")}, now=at(1))
    assert d.rules == ["request.invalid"]
    assert tasks.session("t") == ([], [])


def test_observe_adds_to_seen_and_an_unknown_class_is_kept_and_reported(tasks):
    tasks.observe("t", ["secret"])
    assert tasks.decide(BOT, "mail.send", task="t", now=at(1)).decision == "ask"
    with pytest.raises(TaskError, match="`card` is not a declared data class; kept"):
        tasks.observe("t", ["card", "public"])
    assert tasks.session("t")[0] == ["secret", "card", "public"]
    d = tasks.decide(BOT, "read.secret", task="t", now=at(2))
    assert d.decision == "deny" and "request.unknown" in d.rules
    with pytest.raises(TaskError, match="never started"):
        tasks.observe("nope", ["public"])
    with pytest.raises(TaskError, match="data"):
        tasks.observe("t", "public")  # type: ignore[arg-type]


def test_approve_turns_the_latest_matching_ask_into_allow(tasks):
    tasks.observe("t", ["secret"])
    for i, to in enumerate(["a", "b", "a"]):
        assert tasks.decide(BOT, "mail.send", task="t", args={"to": to}, now=at(i + 1)).decision \
            == "ask"
    assert tasks.approve("t", "mail.send", {"to": "a"}) is True
    assert [h.decision for h in tasks.session("t")[1]] == ["ask", "ask", "allow"]
    assert tasks.approve("t", "mail.send", {"to": "a"}) is True
    assert tasks.approve("t", "mail.send", {"to": "a"}) is False  # none left
    assert tasks.approve("t", "mail.send", {"to": "c"}) is False
    assert [h.decision for h in tasks.session("t")[1]] == ["allow", "ask", "allow"]


def test_a_call_is_decided_at_the_latest_stored_time(tasks):
    tasks.decide(BOT, "pay", task="t", args={"amount": 1}, now=at(60))
    # Another process's clock is 5 s behind: decided at 60 s, never with history "in the future".
    d = tasks.decide(BOT, "pay", task="t", args={"amount": 1}, now=at(55))
    assert d.decision == "allow"
    assert [h.at for h in tasks.session("t")[1]] == [T0 + timedelta(seconds=60)] * 2
    tasks.delegate("t", BOT, "helper", at=at(90))
    tasks.decide(BOT, "pay", task="t", args={"amount": 1}, now=at(70))
    assert tasks.session("t")[1][-1].at == T0 + timedelta(seconds=90)


def test_ended_task_calls_do_not_join_and_ids_are_not_reused(tasks):
    tasks.decide(BOT, "pay", task="t", args={"amount": 1}, now=at(1))
    tasks.end("t", at=at(2))
    d = tasks.decide(BOT, "pay", task="t", args={"amount": 1}, now=at(3))
    assert "task.ended" in d.rules
    assert len(tasks.session("t")[1]) == 1
    with pytest.raises(TaskError, match="already ended"):
        tasks.start({"id": "t", "kind": "job"}, agent=BOT, at=at(4))


def test_calls_outside_a_task_have_no_session(tasks):
    assert tasks.decide(BOT, "pay", args={"amount": 1}, now=at(1)).decision == "deny"


def test_session_full_is_denied_and_never_appended(policy_dir):
    engine = agp.load(policy_dir)
    tasks = engine.tasks()
    tasks.start({"id": "t", "kind": "job"}, agent=BOT, at=at(0))
    for i in range(MAX_SESSION_CALLS):
        tasks.decide(BOT, "read.secret", task="t", now=at(1 + i / 1000))
    assert len(tasks.session("t")[1]) == MAX_SESSION_CALLS
    d = tasks.decide(BOT, "read.secret", task="t", now=at(100))
    assert (d.decision, d.rules) == ("deny", ["session.full"])
    assert len(tasks.session("t")[1]) == MAX_SESSION_CALLS


# ---- a store that cannot be reached ------------------------------------------------------------


class Broken(MemoryStore):
    """A memory store whose task reads or writes fail, as an unreachable Redis would."""

    def __init__(self, fail: str) -> None:
        super().__init__()
        self.fail = fail

    def task(self, task_id):
        if self.fail == "read":
            raise StoreUnavailable("down")
        return super().task(task_id)

    def append(self, task_id, version, item, seen):
        raise StoreUnavailable("down")


@pytest.mark.parametrize("fail", ["read", "append"])
def test_an_unreachable_store_denies(policy_dir, fail):
    engine = agp.load(policy_dir)
    store = Broken("none")
    tasks = TaskRuntime(engine, store)
    tasks.start({"id": "t", "kind": "job"}, agent=BOT, at=at(0))
    store.fail = fail
    d = tasks.decide(BOT, "read.secret", task="t", now=at(1))
    assert (d.decision, d.rules) == ("deny", ["store.unavailable"])
    # A call of the wrong shape in that task is denied too, never decided without its task.
    d = tasks.decide(BOT, "read.secret", task="t", now="soon")
    assert d.decision == "deny"


def test_requests_with_a_session_serialise_as_lists(policy_dir, tmp_path):
    engine = agp.load(policy_dir)
    log = engine.log_decisions(tmp_path / "log.jsonl")
    tasks = engine.tasks()
    tasks.start({"id": "t", "kind": "job"}, agent=BOT, at=at(0))
    for i in range(2):
        tasks.decide(BOT, "pay", task="t", args={"amount": 1}, now=at(i + 1))
    log.flush()
    last = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert last["request"]["task"]["history"] == [
        {"tool": "pay", "intent": ["payment"], "data": ["public"], "args": {"amount": 1},
         "decision": "allow", "at": "2026-11-28T10:00:01Z"}]
    assert last["request"]["task"]["seen"] == ["public"]
    # The log replays as self-contained requests with the same decisions.
    outcomes = list(agp.replay_trace(agp.load(policy_dir), tmp_path / "log.jsonl"))
    assert [o.passed for o in outcomes] == [True, True]


# ---- traces --------------------------------------------------------------------------------------


def test_a_trace_replays_its_sessions(policy_dir, tmp_path):
    events = [
        {"ts": at(0), "event": "task.start", "task": {"id": "t", "kind": "job"}, "agent": BOT},
        {"ts": at(1), "event": "call", "task": "t", "agent": BOT, "tool": "mail.send",
         "expect": "allow"},
        {"ts": at(2), "event": "observe", "task": "t", "data": ["secret"]},
        {"ts": at(3), "event": "call", "task": "t", "agent": BOT, "tool": "mail.send",
         "expect": {"decision": "ask", "rules": ["egress_after_secret"]}},
        *({"ts": at(4 + i), "event": "call", "task": "t", "agent": BOT, "tool": "pay",
           "args": {"amount": 1}, "expect": "allow"} for i in range(3)),
        {"ts": at(8), "event": "call", "task": "t", "agent": BOT, "tool": "pay",
         "args": {"amount": 1}, "expect": {"decision": "deny", "rules": ["pay_rate"]}},
        {"ts": at(9), "event": "observe", "task": "t", "data": ["card"]},
        {"ts": at(10), "event": "call", "task": "t", "agent": BOT, "tool": "read.secret",
         "expect": {"decision": "deny", "rules": ["request.unknown"]}},
        {"ts": at(11), "event": "observe", "task": "nope", "data": ["public"]},
        {"ts": at(12), "event": "observe", "task": "t", "data": "public"},
    ]
    trace = tmp_path / "s.trace.jsonl"
    trace.write_text("".join(json.dumps(e) + "\n" for e in events))
    outcomes = list(agp.replay_trace(agp.load(policy_dir), trace))
    assert [(o.line, o.passed) for o in outcomes if o.problem is None] == [
        (2, True), (4, True), (5, True), (6, True), (7, True), (8, True), (10, True)]
    problems = {o.line: o.problem for o in outcomes if o.problem is not None}
    assert "`card` is not a declared data class" in problems[9]
    assert "'nope' was never started" in problems[11]
    assert problems[12] == "data: expected a list, not a string"
    # Each replay has a store of its own: the same trace replays the same way again, with the
    # same engine.
    again = list(agp.replay_trace(agp.load(policy_dir), trace))
    assert [o.passed for o in again] == [o.passed for o in outcomes]


def test_agp_test_replays_sessions(policy_dir, tmp_path):
    from click.testing import CliRunner

    from agp.cli import main

    events = [
        {"ts": at(0), "event": "task.start", "task": {"id": "t", "kind": "job"}, "agent": BOT},
        *({"ts": at(1 + i), "event": "call", "task": "t", "agent": BOT, "tool": "pay",
           "args": {"amount": 1}, "expect": "allow" if i < 3 else "deny"} for i in range(4)),
    ]
    trace = tmp_path / "s.trace.jsonl"
    trace.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = CliRunner().invoke(main, ["test", "-p", str(policy_dir), str(trace)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "4 passed, 0 failed"
