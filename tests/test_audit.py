"""The decision log: complete, masked, rotated, replayable, and shadow mode."""

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from support import SPEC

import agp
from agp import audit
from agp.audit import DecisionLog, digest
from agp.cli import main

REQUEST = json.loads((SPEC / "request.json").read_text())


@pytest.fixture(scope="module")
def engine():
    return agp.load(SPEC)


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_every_decision_is_written_as_a_replayable_request_event(engine, tmp_path):
    log = DecisionLog(tmp_path / "d.log", mask=["args.customer"])
    decision = engine.decide(REQUEST)
    log.record(REQUEST, decision)
    log.close()
    [record] = lines(tmp_path / "d.log")
    assert record["event"] == "request"
    assert record["expect"] == {"decision": "allow", "ttl": 240, "rules": ["refund_small"]}
    assert record["request"]["args"] == {"amount": 40, "customer": "***"}
    assert record["audit"] == {"policy": decision.policy, "digest": digest(REQUEST),
                               "masked": ["args.customer"]}


def test_an_svid_is_never_written_to_the_log(engine, tmp_path):
    """A JWT-SVID is a bearer credential: whoever reads the log could act as the agent."""
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJzcGlmZmU6Ly9hY21lLmNvbS9hIn0.c2ln"
    request = {**REQUEST, "agent": {**REQUEST["agent"], "svid": token}}
    log = DecisionLog(tmp_path / "d.log")
    log.record(request, engine.decide(request))
    log.close()
    text = (tmp_path / "d.log").read_text()
    assert token not in text and "c2ln" not in text
    [record] = lines(tmp_path / "d.log")
    assert record["request"]["agent"]["svid"] == "***"
    assert record["audit"]["masked"] == ["agent.svid"]
    assert record["audit"]["digest"] == digest(request)


def test_without_the_request_only_its_digest_is_kept(engine, tmp_path):
    log = DecisionLog(tmp_path / "d.log", include_request=False)
    log.record(REQUEST, engine.decide(REQUEST))
    log.close()
    [record] = lines(tmp_path / "d.log")
    assert "request" not in record and record["audit"]["digest"].startswith("sha256:")


def test_no_record_is_lost_from_many_threads(engine, tmp_path):
    log = DecisionLog(tmp_path / "d.log")
    decision = engine.decide(REQUEST)

    def work(n):
        for i in range(250):
            log.record({**REQUEST, "context": {"thread": n, "i": i}}, decision)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    seen = {(r["request"]["context"]["thread"], r["request"]["context"]["i"])
            for r in lines(tmp_path / "d.log")}
    assert len(seen) == 8 * 250


def test_rotation_by_size_keeps_every_record(engine, tmp_path):
    log = DecisionLog(tmp_path / "d.log", max_bytes=2000, backups=50)
    decision = engine.decide(REQUEST)
    for i in range(40):
        log.record({**REQUEST, "context": {"i": i}}, decision)
    log.close()
    files = sorted(tmp_path.glob("d.log*"))
    assert len(files) > 1
    assert all(f.stat().st_size <= 2000 for f in files)
    got = sorted(r["request"]["context"]["i"] for f in files for r in lines(f))
    assert got == list(range(40))


def test_shadow_mode_logs_differences_without_changing_decisions(engine, tmp_path, write_policy):
    strict = agp.load(write_policy((SPEC / "declarations.agp").read_text()
                                   + "forbid no_refunds on payments.refund\n"))
    differences = []
    log = DecisionLog(tmp_path / "d.log")
    log.shadow(strict.decide, lambda req, enforced, candidate: differences.append(candidate))
    enforced = engine.decide(REQUEST)
    log.record(REQUEST, enforced)
    log.record({**REQUEST, "tool": "nope"}, engine.decide({**REQUEST, "tool": "nope"}))  # agree
    log.close()
    assert enforced.decision == "allow"
    records = lines(tmp_path / "d.log")
    # One line per decision: the candidate's differing decision rides along in `audit`.
    assert [r["event"] for r in records] == ["request", "request"]
    assert records[0]["audit"]["shadow"]["rules"] == ["no_refunds"]
    assert "shadow" not in records[1]["audit"]
    assert [d.decision for d in differences] == ["deny"]


# ---- a decision log is a trace: `agp test` and `agp replay` reproduce it (issue 16, item 14) ---

BOT = "spiffe://acme.com/agents/support-bot"
EU1 = "spiffe://acme.com/agents/billing/eu-1"


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _decide_a_day(engine) -> list:
    """Decisions through the API and the task runtime, of every kind the log must carry."""
    made = [engine.decide(REQUEST)]
    made.append(engine.decide({k: v for k, v in REQUEST.items() if k != "now"}))  # wall clock
    made.append(engine.decide(agp.Request.model_validate(
        {k: v for k, v in REQUEST.items() if k != "now"})))  # a Request, wall clock
    made.append(engine.decide({**REQUEST, "colour": "red"}))  # request.invalid
    made.append(engine.decide("not a request"))  # request.invalid
    made.append(engine.decide(REQUEST, task_ended=True))  # the service says the task ended
    tasks = engine.tasks()
    tasks.start({"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-42"}},
                agent=BOT, chain=[{"principal": "user:alice", "kind": "human"}],
                at="2026-11-28T10:00:00Z")
    tasks.delegate("t-1", BOT, EU1, scope={"tools": ["payments.refund"], "ttl": "5m"},
                   at="2026-11-28T10:01:00Z")
    refund = {"amount": 40, "customer": "c-42"}
    made.append(tasks.decide(EU1, "payments.refund", task="t-1", now="2026-11-28T10:02:00Z",
                             args=refund))
    made.append(tasks.decide(EU1, "crm.lookup", task="t-1", now="2026-11-28T10:03:00Z",
                             args={"customer": "c-42"}))  # outside the hop's scope
    made.append(tasks.decide(EU1, "payments.refund", task="t-1", now="2026-11-28T10:03:00Z",
                             args={"amount": "forty", "customer": "c-42"}))  # errors: ask
    made.append(tasks.decide(EU1, "payments.refund", task="t-1", now="yesterday", args=refund))
    tasks.end("t-1", at="2026-11-28T10:04:00Z")
    made.append(tasks.decide(EU1, "payments.refund", task="t-1", now="2026-11-28T10:04:01Z",
                             args=refund))  # task.ended: state the request alone does not hold
    made.append(tasks.decide(BOT, "crm.lookup", now="2026-11-28T10:05:00Z"))  # no task
    tasks.start({"id": "t-2", "kind": "support_ticket", "params": {"customer": "c-42"}},
                agent=BOT)  # at the wall clock
    made.append(tasks.decide(BOT, "crm.lookup", task="t-2", args={"customer": "c-42"},
                             target={"host": "crm.internal", "external": False}))
    return made


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "reference"])
def test_a_decision_log_replays_to_the_same_decisions(tmp_path, compiled):
    log = tmp_path / "decisions.jsonl"
    engine = agp.load(SPEC, compiled=compiled, decision_log=log)
    made = _decide_a_day(engine)
    engine.close()
    records = lines(log)
    assert len(records) == len(made)
    assert {d.decision for d in made} == {"allow", "ask", "deny"}
    ended = [r for r in records if r.get("task_ended")]
    assert [r["expect"]["rules"] for r in ended] == [["task.ended"], ["task.ended"]]
    assert all("task_ended" not in r["audit"] for r in records)

    r = cli("test", "-p", str(SPEC), str(log))
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1] == f"{len(made)} passed, 0 failed"

    r = cli("replay", "-p", str(SPEC), str(log))
    assert r.exit_code == 0, r.output
    replayed = [json.loads(x) for x in r.output.splitlines()]
    keep = ("decision", "ttl", "rules", "reasons", "errors", "policy")
    assert [{k: x[k] for k in keep} for x in replayed] == [d.to_json() for d in made]

    # The API reads it the same way.
    assert [o.decision for o in agp.replay_trace(agp.load(SPEC, compiled=not compiled), log)] \
        == made


def test_a_log_replayed_under_another_policy_shows_what_changed(engine, tmp_path, write_policy):
    log = tmp_path / "decisions.jsonl"
    engine = agp.load(SPEC, decision_log=log)
    engine.decide(REQUEST)
    engine.close()
    stricter = write_policy((SPEC / "declarations.agp").read_text()
                            + (SPEC / "rules.agp").read_text()
                            + "forbid no_refunds on payments.refund\n")
    r = cli("test", "-p", str(stricter), str(log))
    assert r.exit_code == 1
    assert "decision: expected allow, got deny" in r.output
    r = cli("diff", "-p", str(SPEC), "-p", str(stricter), str(log))
    assert r.exit_code == 1 and "1 of 1 decisions differ (1 newly denied)" in r.output


def test_a_digest_only_log_says_why_it_cannot_be_replayed(engine, tmp_path):
    log = DecisionLog(tmp_path / "d.jsonl", include_request=False)
    log.record(REQUEST, engine.decide(REQUEST))
    log.close()
    r = cli("test", "-p", str(SPEC), str(tmp_path / "d.jsonl"))
    assert r.exit_code == 2
    assert r.output.startswith(f"{tmp_path / 'd.jsonl'}:1: missing `request`; ")
    assert "include_request=False" in r.output


def test_a_request_json_cannot_carry_is_logged_without_it(engine, tmp_path):
    log = DecisionLog(tmp_path / "d.jsonl")
    bad = {**REQUEST, "args": {"amount": float("nan")}}
    log.record(bad, engine.decide(bad))
    log.record(REQUEST, engine.decide(REQUEST))
    log.close()
    first, second = lines(tmp_path / "d.jsonl")  # every line is strict JSON
    assert "request" not in first and "cannot be written as JSON" in first["audit"]["unlogged"]
    assert second["request"] == REQUEST


def test_an_error_in_the_writer_is_a_comment_and_the_log_stays_a_trace(engine, tmp_path):
    log = DecisionLog(tmp_path / "d.jsonl")

    def broken(*_):
        raise RuntimeError("the pager is down")

    log.shadow(lambda request, task_ended=False: engine.decide({**request, "tool": "x"}),
               broken)
    log.record(REQUEST, engine.decide(REQUEST))
    log.close()
    text = (tmp_path / "d.jsonl").read_text().splitlines()
    assert text[1].startswith("// agp decision log: error: RuntimeError('the pager is down')")
    r = cli("test", "-p", str(SPEC), str(tmp_path / "d.jsonl"))
    assert r.exit_code == 0 and r.output.splitlines()[-1] == "1 passed, 0 failed"


def test_log_times_never_go_backwards(engine, tmp_path, monkeypatch):
    start = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
    clock = iter([start, start - timedelta(hours=1), start + timedelta(seconds=1)])
    monkeypatch.setattr(audit, "_utcnow", lambda: next(clock))  # the wall clock steps back
    log = DecisionLog(tmp_path / "d.jsonl")
    for _ in range(3):
        log.record(REQUEST, engine.decide(REQUEST))
    log.close()
    assert [r["ts"] for r in lines(tmp_path / "d.jsonl")] == [
        "2026-11-28T10:00:00Z", "2026-11-28T10:00:00Z", "2026-11-28T10:00:01Z"]
    assert cli("test", "-p", str(SPEC), str(tmp_path / "d.jsonl")).exit_code == 0
