"""The task runtime and trace replay (FORMATS.md "Trace"), through the Python API."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from support import SPEC

import agp
from agp.runtime import TaskError, TaskRuntime, read_trace
from agp.store.memory import MemoryStore

EXAMPLE = SPEC / "support.trace.jsonl"  # FORMATS.md's example, as written
BOT = "spiffe://acme.com/agents/support-bot"
EU1 = "spiffe://acme.com/agents/billing/eu-1"
START = {"ts": "2026-11-28T10:00:00Z", "event": "task.start",
         "task": {"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-42"}},
         "agent": BOT, "chain": [{"principal": "user:alice", "kind": "human"}]}
LOOKUP = {"ts": "2026-11-28T10:00:05Z", "event": "call", "task": "t-1", "agent": BOT,
          "tool": "crm.lookup", "args": {"customer": "c-42"},
          "target": {"host": "crm.internal", "external": False}, "expect": "allow"}


@pytest.fixture(scope="module")
def spec():
    return agp.load([str(SPEC / "declarations.agp"), str(SPEC / "rules.agp")])


def write_trace(tmp_path, *lines, name="t.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def at(ts: str, event: dict, **changes) -> dict:
    return {**event, "ts": ts, **changes}


def test_spec_example_passes_as_written(spec):
    outcomes = list(agp.replay_trace(spec, EXAMPLE))
    assert [(o.line, o.event, o.passed) for o in outcomes] == [
        (2, "call", True), (4, "call", True), (5, "call", True), (7, "call", True)]
    assert [o.problem for o in outcomes] == [None] * 4
    refund = outcomes[1]
    assert (refund.decision.decision, refund.decision.ttl, refund.decision.rules) == (
        "allow", 240, ["refund_small"])
    assert refund.request.task.started_at.isoformat() == "2026-11-28T10:00:00+00:00"
    assert [h.principal for h in refund.request.chain] == ["user:alice", BOT, EU1]
    assert outcomes[3].decision.rules == ["task.ended"]


def test_wrong_expectations_fail_with_what_differs(spec, tmp_path):
    trace = write_trace(tmp_path, START, at("2026-11-28T10:00:05Z", LOOKUP, expect={
        "decision": "deny", "ttl": "10m", "rules": ["nope"], "reasons": ["why"]}))
    (o,) = agp.replay_trace(spec, trace)
    assert not o.passed and o.problem is None
    assert [m.split(":")[0] for m in o.mismatches] == ["decision", "ttl", "rules", "reasons"]
    assert "expected deny, got allow" in o.message


def test_partial_expectations_check_only_given_fields(spec, tmp_path):
    trace = write_trace(tmp_path, START, at("2026-11-28T10:00:05Z", LOOKUP, expect={
        "rules": ["lookups"]}), at("2026-11-28T10:00:06Z", LOOKUP, expect={"ttl": 900}),
        at("2026-11-28T10:00:07Z", LOOKUP, expect={"ttl": "15m", "decision": "allow"}))
    assert [o.passed for o in agp.replay_trace(spec, trace)] == [True, True, True]


def test_every_problem_is_reported_and_the_rest_still_checked(spec, tmp_path):
    trace = write_trace(
        tmp_path,
        "// a comment", "", "   ",
        START,
        "{not json",
        {"ts": "2026-11-28T10:00:01Z", "event": "teleport"},
        at("2026-11-28T10:00:02Z", LOOKUP, task="t-9"),
        at("2026-11-28T09:00:00Z", LOOKUP),
        at("2026-11-28T10:00:03Z", LOOKUP, surprise=1),
        [1, 2],
        at("2026-11-28T10:00:04Z", LOOKUP),
    )
    outcomes = list(agp.replay_trace(spec, trace))
    problems = [(o.line, o.problem) for o in outcomes if o.problem]
    assert [line for line, _ in problems] == [5, 6, 7, 8, 9, 10]
    text = dict(problems)
    assert "invalid JSON" in text[5]
    assert 'unknown event "teleport"' in text[6]
    assert "'t-9' was never started" in text[7]
    assert "earlier than the event before" in text[8]
    assert "surprise: unknown field of a `call` event" in text[9]
    assert "JSON object" in text[10]
    last = outcomes[-1]
    assert (last.line, last.passed, last.decision.decision) == (11, True, "allow")
    # `file:line`, and `file:line:col` where the column is known (a JSON syntax error).
    assert [o.where for o in outcomes] == [
        f"{trace}:{o.line}" + (":2" if o.line == 5 else "") for o in outcomes]


def test_unreadable_trace_is_one_problem(spec, tmp_path):
    (o,) = agp.replay_trace(spec, tmp_path / "missing.jsonl")
    assert o.line == 0 and not o.passed and "cannot read" in o.problem


def test_invalid_utf8_line_is_a_problem(spec, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(json.dumps(START).encode() + b"\n\xff\xfe\n" +
                     json.dumps(LOOKUP).encode() + b"\n")
    outcomes = list(agp.replay_trace(spec, path))
    assert [(o.line, o.passed) for o in outcomes] == [(2, False), (3, True)]
    assert "UTF-8" in outcomes[0].problem


def test_agent_may_be_an_object(spec, tmp_path):
    obj = {"id": BOT, "attrs": {"model": "x"}}
    trace = write_trace(tmp_path, {**START, "agent": obj}, {**LOOKUP, "agent": obj})
    (o,) = agp.replay_trace(spec, trace)
    assert o.passed and o.request.agent.attrs == {"model": "x"}


def test_request_event_is_decided_as_it_stands(spec, tmp_path):
    req = json.loads((SPEC / "request.json").read_text())
    bad = {**req, "colour": "red"}
    trace = write_trace(
        tmp_path,
        {"ts": "2026-11-28T10:02:00Z", "event": "request", "request": req,
         "expect": {"decision": "allow", "ttl": 240}},
        {"ts": "2026-11-28T10:02:00Z", "event": "request", "request": bad,
         "expect": {"decision": "deny", "rules": ["request.invalid"]}},
        {"ts": "2026-11-28T10:02:00Z", "event": "request",
         "request": {k: v for k, v in req.items() if k != "now"}})
    outcomes = list(agp.replay_trace(spec, trace))
    assert [o.passed for o in outcomes] == [True, True, False]
    assert "request.now is required" in outcomes[2].problem


def test_call_by_an_agent_nobody_delegated_to_is_denied(spec, tmp_path):
    trace = write_trace(tmp_path, START, {**LOOKUP, "agent": EU1, "expect": {
        "decision": "deny", "rules": ["delegation.mismatch"]}})
    assert [o.passed for o in agp.replay_trace(spec, trace)] == [True]


def test_delegate_problems(spec, tmp_path):
    trace = write_trace(
        tmp_path, START,
        {"ts": "2026-11-28T10:01:00Z", "event": "delegate", "task": "t-1", "from": EU1,
         "to": BOT},
        {"ts": "2026-11-28T10:01:00Z", "event": "delegate", "task": "t-2", "from": BOT,
         "to": EU1},
        {**START, "ts": "2026-11-28T10:01:00Z"})
    problems = [o.problem for o in agp.replay_trace(spec, trace)]
    assert "does not act in task 't-1'" in problems[0]
    assert "'t-2' was never started" in problems[1]
    assert "already running" in problems[2]


def test_reader_streams(tmp_path):
    path = write_trace(tmp_path, START, LOOKUP)
    lines = read_trace(path)
    first = next(lines)
    assert first.line == 1 and first.event.event == "task.start"
    # The rest of the file is read only when asked for: appending now is still seen.
    with path.open("a") as f:
        f.write(json.dumps(at("2026-11-28T10:00:06Z", LOOKUP)) + "\n")
    assert [x.line for x in lines] == [2, 3]


# ---- the runtime API for services -------------------------------------------------------------


def test_runtime_api_lifecycle(spec):
    tasks = TaskRuntime(spec, MemoryStore())  # the module's engine is shared
    tasks.start({"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-42"}},
                agent=BOT, chain=[{"principal": "user:alice", "kind": "human"}],
                at="2026-11-28T10:00:00Z")
    tasks.delegate("t-1", BOT, EU1, scope={"tools": ["payments.refund"], "ttl": "5m"},
                   at="2026-11-28T10:01:00Z")
    d = tasks.decide(EU1, "payments.refund", task="t-1", args={"amount": 40, "customer": "c-42"},
                     now="2026-11-28T10:02:00Z")
    assert (d.decision, d.ttl, d.rules) == ("allow", 240, ["refund_small"])
    assert tasks.active() == ["t-1"]
    tasks.end("t-1", at="2026-11-28T10:03:00Z")
    d = tasks.decide(EU1, "payments.refund", task="t-1", args={"amount": 40, "customer": "c-42"},
                     now="2026-11-28T10:03:01Z")
    assert d.decision == "deny" and "task.ended" in d.rules
    assert tasks.active() == []
    # A task id names one instance for good: an ended task's id cannot start again.
    with pytest.raises(TaskError, match="'t-1' is already ended: a task id names one task"):
        tasks.start({"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-42"}},
                    agent=BOT, at="2026-11-28T10:04:00Z")
    assert tasks.active() == []
    d = tasks.decide(EU1, "payments.refund", task="t-1", args={"amount": 40, "customer": "c-42"},
                     now="2026-11-28T10:04:01Z")
    assert "task.ended" in d.rules


def test_runtime_api_errors(spec):
    tasks = TaskRuntime(spec, MemoryStore())  # the module's engine is shared
    with pytest.raises(TaskError, match="never started"):
        tasks.decide(BOT, "crm.lookup", task="nope")
    with pytest.raises(TaskError, match="never started"):
        tasks.end("nope")
    with pytest.raises(TaskError):
        tasks.start({"kind": "support_ticket"}, agent=BOT)  # no id
    # A call of the wrong shape is denied, never raised.
    d = tasks.decide(BOT, 5)
    assert d.decision == "deny" and d.rules == ["request.invalid"]


def test_runtime_is_thread_safe(spec):
    tasks = TaskRuntime(spec, MemoryStore())  # the module's engine is shared
    errors = []

    def worker(n: int):
        try:
            for i in range(30):
                tid = f"t-{n}-{i}"
                tasks.start({"id": tid, "kind": "support_ticket", "params": {"customer": "c"}},
                            agent=BOT, chain=[{"principal": "user:a", "kind": "human"}])
                tasks.delegate(tid, BOT, EU1, scope={"tools": ["payments.refund"]})
                d = tasks.decide(EU1, "payments.refund", task=tid,
                                 args={"amount": 5, "customer": "c"})
                assert d.decision == "allow", d
                tasks.end(tid)
                d = tasks.decide(EU1, "payments.refund", task=tid,
                                 args={"amount": 5, "customer": "c"})
                assert "task.ended" in d.rules
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert tasks.active() == []


def test_engine_tasks_if_available(spec):
    make = getattr(spec, "tasks", None)
    if make is None:
        pytest.skip("Engine.tasks() is not there yet")
    assert isinstance(make(), TaskRuntime)


# ---- the API names what the caller wrote (issue 16, item 20) ----------------------------------


def test_runtime_api_errors_name_the_arguments_as_given(spec):
    tasks = TaskRuntime(spec, MemoryStore())  # the module's engine is shared
    ticket = {"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-42"}}
    with pytest.raises(TaskError) as info:
        tasks.start(ticket, agent=BOT, at="yesterday")
    assert str(info.value) == "at: expected an RFC 3339 timestamp such as 2026-11-28T10:00:00Z"
    tasks.start(ticket, agent=BOT, at="2026-11-28T10:00:00Z")
    with pytest.raises(TaskError, match=r"^at: expected an RFC 3339 timestamp"):
        tasks.delegate("t-1", BOT, EU1, at="soon")
    with pytest.raises(TaskError, match=r"^at: expected an RFC 3339 timestamp"):
        tasks.end("t-1", at="later")
    # A call at a time that is not one is denied, naming `now`, and never decided outside its
    # task or at another time.
    d = tasks.decide(BOT, "crm.lookup", task="t-1", now="yesterday", args={"customer": "c-42"},
                     target={"host": "crm.internal", "external": False})
    assert (d.decision, d.rules) == ("deny", ["request.invalid"])
    assert d.errors == ["request.invalid: now: expected an RFC 3339 timestamp such as "
                        "2026-11-28T10:00:00Z"]
    with pytest.raises(TypeError, match="chain"):
        tasks.decide(BOT, "crm.lookup", task="t-1", chain=[])  # the task's chain is the runtime's


def test_starting_a_task_of_an_undeclared_kind_raises(spec):
    tasks = TaskRuntime(spec, MemoryStore())  # the module's engine is shared
    with pytest.raises(TaskError) as info:
        tasks.start({"id": "t-1", "kind": "support_tiket"}, agent=BOT)
    assert str(info.value) == ("task kind 'support_tiket' is not declared in the policy set; "
                               "did you mean `support_ticket`?")
    assert isinstance(info.value, ValueError) and agp.TaskError is TaskError
    with pytest.raises(TaskError, match="'vip' is not declared in the policy set; declared: "
                                        "support_ticket"):
        tasks.start({"id": "t-1", "kind": "vip"}, agent=BOT)
    assert tasks.active() == []


def test_a_trace_may_still_start_an_undeclared_task_and_see_it_denied(spec, tmp_path):
    # A recording is replayed as it was: its calls are denied with task.unknown.
    start = {**START, "task": {"id": "t-1", "kind": "vip"}}
    trace = write_trace(tmp_path, start, {**LOOKUP, "expect": {"decision": "deny",
                                                               "rules": ["task.unknown"]}})
    assert [(o.passed, o.problem) for o in agp.replay_trace(spec, trace)] == [(True, None)]


def test_a_request_event_carries_the_task_state_it_was_decided_with(spec, tmp_path):
    req = json.loads((SPEC / "request.json").read_text())
    trace = write_trace(
        tmp_path,
        {"ts": "2026-11-28T10:02:00Z", "event": "request", "request": req, "task_ended": True,
         "expect": {"decision": "deny", "rules": ["task.ended"]}, "audit": {"anything": 1}},
        {"ts": "2026-11-28T10:02:00Z", "event": "request", "request": req, "expect": "allow"},
        {"ts": "2026-11-28T10:02:00Z", "event": "request", "request": req, "task_ended": "yes"})
    outcomes = list(agp.replay_trace(spec, trace))
    assert [o.passed for o in outcomes] == [True, True, False]
    assert outcomes[2].problem == "task_ended: expected true or false, not a string"
