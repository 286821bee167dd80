"""LANGUAGE.md §6, sessions: `task.seen` and `task.history` in conditions, their envelope rows,
and the spec's three examples, through the Python API on both evaluators."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from support import DATA, SPEC, load_text

import agp
from agp.limits import MAX_SESSION_CALLS
from agp.model import HistoryItem, HistoryView, SessionSummary

NOW = "2026-11-28T12:00:00Z"
BOT = "spiffe://acme.com/agents/support-bot"


@pytest.fixture(scope="module", params=["reference", "compiled"])
def spec(request):
    """§2's declarations, `dataclass secret > confidential`, and §6's examples."""
    return agp.load([str(SPEC / "declarations.agp"), str(DATA / "sessions")],
                    compiled=request.param == "compiled")


def refund(amount=40, *, history=None, seen=None, task=True, **extra):
    r = {"agent": {"id": BOT}, "tool": "payments.refund",
         "args": {"amount": amount, "customer": "c-42"}, "now": NOW, **extra}
    if task:
        t = {"kind": "support_ticket", "started_at": "2026-11-28T11:59:00Z"}
        if history is not None:
            t["history"] = history
        if seen is not None:
            t["seen"] = seen
        r["task"] = t
    return r


def item(tool="payments.refund", decision="allow", at="2026-11-28T11:30:00Z", **extra):
    return {"tool": tool, "decision": decision, "at": at, **extra}


def refunds(n, amount=10, at="2026-11-28T11:30:00Z", decision="allow"):
    return [item(args={"amount": amount}, at=at, decision=decision) for _ in range(n)]


# ---- the spec's examples ---------------------------------------------------------------------


def test_three_refunds_in_the_hour_deny_the_fourth(spec):
    d = spec.decide(refund(history=refunds(3)))
    assert d.decision == "deny" and d.rules == ["refund_rate"]
    assert d.reasons == ["at most three refunds an hour in one task"]


@pytest.mark.parametrize("history", [
    refunds(2),
    refunds(2) + refunds(1, at="2026-11-28T10:59:59Z"),  # one is older than an hour
    refunds(2) + refunds(1, decision="deny"),  # a denied refund refunded nothing
    refunds(2) + [item(tool="crm.lookup", args={"customer": "c-42"})],  # another tool
], ids=["two", "one-old", "one-denied", "other-tool"])
def test_the_rate_counts_only_allowed_refunds_of_the_last_hour(spec, history):
    assert "refund_rate" not in spec.decide(refund(history=history)).rules


def test_an_item_exactly_an_hour_old_is_outside_the_hour(spec):
    history = refunds(2) + refunds(1, at="2026-11-28T11:00:00Z")
    assert "refund_rate" not in spec.decide(refund(history=history)).rules


def test_the_budget_adds_this_call_to_the_allowed_refunds(spec):
    history = [item(args={"amount": 200}), item(args={"amount": 200}),
               item(args={"amount": 900}, decision="deny")]
    assert spec.decide(refund(100, history=history)).rules != ["refund_budget"]
    d = spec.decide(refund(101, history=history))
    assert d.decision == "deny" and d.rules == ["refund_budget"]


def test_the_budget_of_an_empty_session_is_this_call_alone(spec):
    assert "refund_budget" in spec.decide(refund(501, history=[])).rules
    assert "refund_budget" not in spec.decide(refund(99)).rules


def test_an_item_without_amount_is_an_error_of_the_budget_which_never_allows(spec):
    d = spec.decide(refund(10, history=[item(args={})]))
    assert d.decision == "deny" and "refund_budget" in d.rules
    assert any("missing attribute `amount`" in e for e in d.errors)


def egress(seen, external=True):
    return {"agent": {"id": BOT}, "tool": "http.get", "now": NOW,
            "target": {"host": "x.example", "external": external},
            "task": {"kind": "support_ticket", "started_at": "2026-11-28T11:59:00Z",
                     "seen": seen}}


def test_egress_after_a_secret_asks(spec):
    d = spec.decide(egress(["pii", "secret"]))
    assert (d.decision, d.rules) == ("ask", ["egress_after_secret"])
    assert d.reasons == ["this task has read a secret: confirm that nothing of it is being sent out"]


@pytest.mark.parametrize("seen,external", [([], True), (["restricted"], True),
                                           (["confidential"], True), (["secret"], False)])
def test_egress_without_a_secret_or_inside_is_not_asked(spec, seen, external):
    # restricted is above confidential but not above secret: the lattice, not a list.
    assert "egress_after_secret" not in spec.decide(egress(seen, external)).rules


def test_without_a_task_the_session_is_an_evaluation_error(spec):
    d = spec.decide(refund(task=False))
    assert d.decision == "deny"
    assert set(d.rules) == {"refund_rate", "refund_budget"}
    assert all("the request has no `task`" in e for e in d.errors)


# ---- the names, in conditions ----------------------------------------------------------------

SESSIONS = """
    import std.intents
    dataclass public
    dataclass internal > public
    dataclass pii > internal
    dataclass secret > internal
    dataclass untrusted
    tool t.* { }
    task k { }
    forbid seen_secret on t.secret when task.seen >= secret
    forbid tainted on t.write when untrusted in task.seen
    forbid not_low on t.low unless task.seen <= internal
    forbid many on t.many when len(task.seen) >= 2
    forbid paid on t.pay when any(h in task.history: payment in h.intent)
    forbid read_secret on t.hd when any(h in task.history: h.data >= secret)
    forbid old on t.old when all(h in task.history if h.decision != "deny": h.age > 1h)
    forbid to_bob on t.args when count(h in task.history: h.args has to and h.args.to == "bob") > 0
    forbid total_age on t.sum when sum(h in task.history: h.age) > 3h
    forbid late on t.at when any(h in task.history: hour(h.at) >= 11)
    forbid by_tool on t.tool when any(h in task.history: h.tool matches "crm.*")
    forbid has_fields on t.fields unless task has seen and task has history
    permit everything
"""


@pytest.fixture(scope="module", params=["reference", "compiled"])
def sessions(request):
    policy = load_text(SESSIONS).policy
    return agp.Engine(policy, compiled=request.param == "compiled")


_ABSENT = object()


def call(tool, seen=_ABSENT, history=_ABSENT, task=True, now=NOW):
    r = {"agent": {"id": "a"}, "tool": tool, "now": now}
    if task:
        t: dict = {"kind": "k"}
        if seen is not _ABSENT:
            t["seen"] = seen
        if history is not _ABSENT:
            t["history"] = history
        r["task"] = t
    return r


CASES = [
    ("t.secret", {"seen": ["secret"]}, "seen_secret"),
    ("t.secret", {"seen": ["pii"]}, None),
    ("t.write", {"seen": ["untrusted"]}, "tainted"),
    ("t.write", {"seen": ["secret"]}, None),
    ("t.low", {}, None),  # nothing seen: `task.seen <= internal` holds
    ("t.low", {"seen": ["public", "internal"]}, None),
    ("t.low", {"seen": ["pii"]}, "not_low"),
    ("t.many", {"seen": ["pii"]}, None),
    ("t.many", {"seen": ["pii", "public"]}, "many"),
    ("t.pay", {"history": [item("x", intent=["read"])]}, None),
    ("t.pay", {"history": [item("x", intent=["read", "payment"])]}, "paid"),
    ("t.hd", {"history": [item("x", data=["pii"])]}, None),
    ("t.hd", {"history": [item("x", data=["public", "secret"])]}, "read_secret"),
    ("t.old", {"history": []}, "old"),  # `all` of nothing
    ("t.old", {"history": [item("x", at="2026-11-28T11:30:00Z")]}, None),
    ("t.old", {"history": [item("x", at="2026-11-28T10:30:00Z"),
                           item("x", at="2026-11-28T11:30:00Z", decision="deny")]}, "old"),
    ("t.args", {"history": [item("x", args={"to": "alice"}), item("y")]}, None),
    ("t.args", {"history": [item("x", args={"to": "bob"})]}, "to_bob"),
    ("t.sum", {"history": [item("x", at="2026-11-28T10:00:00Z")]}, None),
    ("t.sum", {"history": [item("x", at="2026-11-28T10:00:00Z")] * 2}, "total_age"),
    ("t.at", {"history": [item("x", at="2026-11-28T10:59:59Z")]}, None),
    ("t.at", {"history": [item("x", at="2026-11-28T11:00:00Z")]}, "late"),
    ("t.tool", {"history": [item("crm.notes.read")]}, "by_tool"),
    ("t.fields", {}, None),  # a task without `seen` or `history` has an empty session
]


@pytest.mark.parametrize("tool,session,rule", CASES)
def test_session_names(sessions, tool, session, rule):
    d = sessions.decide(call(tool, **session))
    if rule is None:
        assert (d.decision, d.rules, d.errors) == ("allow", ["everything"], [])
    else:
        assert (d.decision, d.rules, d.errors) == ("deny", [rule], [])


@pytest.mark.parametrize("tool", ["t.secret", "t.pay", "t.fields"])
def test_without_a_task_every_session_rule_errs_and_never_allows(sessions, tool):
    d = sessions.decide(call(tool, task=False))
    if tool == "t.fields":  # `task has seen` is false without a task: `has` never fails
        assert d.rules == ["has_fields"] and d.errors == []
    else:
        assert d.decision == "deny" and "the request has no `task`" in d.errors[0]


# ---- the envelope ----------------------------------------------------------------------------


@pytest.mark.parametrize("session,message", [
    ({"seen": ["pii", "nope"]}, "request.unknown: data class `nope` is not declared"),
    ({"history": [item("x", data=["nope"])]}, "request.unknown: data class `nope` is not declared"),
    ({"history": [item("x", intent=["teleport"])]},
     "request.unknown: intent `teleport` is not declared"),
])
def test_undeclared_labels_in_the_session_are_request_unknown(sessions, session, message):
    d = sessions.decide(call("t.low", **session))
    assert (d.decision, d.rules[0]) == ("deny", "request.unknown")
    assert message in d.errors


def test_a_history_item_later_than_now_is_request_invalid(sessions):
    history = [item("x", at="2026-11-28T11:00:00Z"), item("y", at="2026-11-28T12:00:01Z")]
    d = sessions.decide(call("t.low", history=history))
    assert (d.decision, d.rules) == ("deny", ["request.invalid"])
    assert d.errors[0] == ("request.invalid: task.history[1].at: 2026-11-28T12:00:01Z is later "
                           "than now; a session holds only earlier calls")
    # exactly `now` is fine
    assert sessions.decide(call("t.low", history=[item("x", at=NOW)])).allowed


@pytest.mark.parametrize("bad", [
    {"tool": "x", "decision": "allow"},  # no `at`
    {"tool": "x", "decision": "maybe", "at": NOW},
    {"tool": "x", "decision": "allow", "at": NOW, "extra": 1},
    {"tool": "", "decision": "allow", "at": NOW},
    {"tool": "x", "decision": "allow", "at": "yesterday"},
    {"tool": "x", "decision": "allow", "at": "2026-11-28T10:00:00"},  # no zone
    {"tool": "x", "decision": "allow", "at": NOW, "intent": "read"},
    {"tool": "x", "decision": "allow", "at": NOW, "args": {"n": float("nan")}},
    "not an item",
])
def test_a_malformed_history_is_request_invalid(sessions, bad):
    for session in ({"history": [item("x"), bad]}, {"history": bad}):
        d = sessions.decide(call("t.low", **session))
        assert (d.decision, d.rules) == ("deny", ["request.invalid"]), session


def test_a_malformed_seen_is_request_invalid(sessions):
    for seen in ("pii", [1], None):
        assert sessions.decide(call("t.low", seen=seen)).rules == ["request.invalid"]


def runtime_request(n, seen=()):
    """A Request as the task runtime builds it: items built without validation, and the history
    as a view with its summary, not a list."""
    t0 = datetime(2026, 11, 28, 10, tzinfo=timezone.utc)
    items = [HistoryItem.model_construct(tool="x", intent=[], data=["public"], args={},
                                         decision="allow", at=t0 + timedelta(seconds=i % 3600))
             for i in range(n)]
    summary = SessionSummary.of(items[:1]) if items else SessionSummary.EMPTY
    history = HistoryView(items, n, summary)
    task = agp.model.Task.model_construct(kind="k", id=None, params={}, objective=None,
                                          started_at=None, seen=list(seen), history=history)
    return agp.Request.model_construct(agent=agp.model.Agent.model_construct(id="a", svid=None,
                                                                             attrs={}),
                                       task=task, chain=[], tool="t.old", intent=[], args={},
                                       data=[], target=None, context={},
                                       now=datetime(2026, 11, 28, 12, tzinfo=timezone.utc))


def test_a_full_session_is_denied_session_full(sessions):
    assert "session.full" not in sessions.decide(runtime_request(MAX_SESSION_CALLS - 1)).rules
    d = sessions.decide(runtime_request(MAX_SESSION_CALLS))
    assert d.decision == "deny" and d.rules[0] == "session.full"
    assert d.errors[0].startswith("session.full: the task's history holds 10,000 calls")
    assert "old" in d.rules  # the rules are still evaluated for the explanation


def test_a_runtime_view_decides_like_the_same_history_as_json(sessions):
    view = runtime_request(30)
    history = [dict(h.__dict__, at=h.at.isoformat()) for h in view.task.history]
    as_json = {"agent": {"id": "a"}, "tool": "t.old", "now": "2026-11-28T12:00:00Z",
               "task": {"kind": "k", "history": history}}
    assert sessions.decide(view) == sessions.decide(as_json)
    assert sessions.decide(view).rules == ["old"]


def test_the_view_s_summary_is_what_the_envelope_reads(sessions):
    # The builder of a view vouches for its summary: a summary naming an undeclared class is
    # request.unknown even when the items do not (so no decision ever scans the history).
    view = runtime_request(5)
    view.task.history.summary = SessionSummary(frozenset(), frozenset({"nope"}), None)
    assert sessions.decide(view).rules[0] == "request.unknown"


# ---- reserved words as schema field names (§1) ------------------------------------------------


def test_reserved_words_are_field_names_in_schemas(tmp_path):
    from agp.syntax.format import format_text

    text = 'tool mail.send { args { to: string, count: number, in?: list } }\n' \
           'permit p on mail.send when args.to == "a" and args.count > 1 and not (args has in)\n'
    path = tmp_path / "mail.agp"
    path.write_text(text)
    for compiled in (False, True):
        engine = agp.load(str(path), compiled=compiled)
        call_ = {"agent": {"id": "a"}, "tool": "mail.send", "args": {"to": "a", "count": 2}}
        assert engine.decide(call_).rules == ["p"]
        assert engine.decide({**call_, "args": {"to": "a", "count": 2, "in": []}}).rules == \
            ["default.deny"]
    assert "args { to: string, count: number, in?: list }" in format_text(text)


def test_has_after_a_dot_is_a_name_and_the_next_keyword_stays_one(tmp_path):
    # `t.has` is a tool name; the `unless` after it is still the clause.
    path = tmp_path / "has.agp"
    path.write_text("tool t.has { }\nforbid r on t.has unless context has when\npermit p\n")
    for compiled in (False, True):
        engine = agp.load(str(path), compiled=compiled)
        assert engine.decide({"agent": {"id": "a"}, "tool": "t.has"}).rules == ["r"]
        assert engine.decide({"agent": {"id": "a"}, "tool": "t.has",
                              "context": {"when": 1}}).rules == ["p"]
