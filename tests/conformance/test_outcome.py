"""LANGUAGE.md §3 and §5 steps 3, 4 and 6: rule scope, precedence, evaluation errors, explanation."""

from __future__ import annotations

import pytest
from support import load_text, outcome

NOW = "2026-11-28T10:00:00Z"

PRECEDENCE = """
defaults { ttl 10m  max_ttl 1h }

permit p1 when context.p1 ttl 5m
permit p2 when context.p2 because "p2 ok"
ask a1 when context.a1 because "need a human"
ask a2 when context.a2
forbid f1 when context.f1 because "never"
forbid f2 when context.f2 because "also never"
"""

FLAGS = ("p1", "p2", "a1", "a2", "f1", "f2")


def flags(*on):
    return {"agent": {"id": "spiffe://t/a"}, "tool": "x.y", "now": NOW,
            "context": {f: f in on for f in FLAGS}}


@pytest.fixture(scope="module")
def prec():
    return load_text(PRECEDENCE)


@pytest.mark.parametrize(
    "on, expected",
    [
        ((), {"decision": "deny", "ttl": 0, "rules": ["default.deny"], "reasons": [], "errors": []}),
        (("p1",), {"decision": "allow", "ttl": 300, "rules": ["p1"], "reasons": [], "errors": []}),
        (("p2",), {"decision": "allow", "ttl": 600, "rules": ["p2"], "reasons": ["p2 ok"],
                   "errors": []}),
        (("p1", "p2"), {"decision": "allow", "ttl": 300, "rules": ["p1", "p2"],
                        "reasons": ["p2 ok"], "errors": []}),
        (("a1",), {"decision": "ask", "ttl": 600, "rules": ["a1"], "reasons": ["need a human"],
                   "errors": []}),
        (("a1", "p1"), {"decision": "ask", "ttl": 300, "rules": ["a1"],
                        "reasons": ["need a human"], "errors": []}),
        (("a1", "a2", "p2"), {"decision": "ask", "ttl": 600, "rules": ["a1", "a2"],
                              "reasons": ["need a human"], "errors": []}),
        (("f1",), {"decision": "deny", "ttl": 0, "rules": ["f1"], "reasons": ["never"],
                   "errors": []}),
        (("f1", "a1", "p1"), {"decision": "deny", "ttl": 0, "rules": ["f1"], "reasons": ["never"],
                              "errors": []}),
        (("f1", "f2", "a2", "p2"), {"decision": "deny", "ttl": 0, "rules": ["f1", "f2"],
                                    "reasons": ["never", "also never"], "errors": []}),
    ],
    ids=["none", "permit", "permit-because", "two-permits", "ask", "ask-over-permit",
         "two-asks", "forbid", "forbid-over-all", "two-forbids"],
)
def test_precedence(prec, on, expected):
    assert outcome(prec.decide(flags(*on))) == expected


def test_allowed_flag(prec):
    assert prec.decide(flags("p1")).allowed is True
    assert prec.decide(flags()).allowed is False
    assert prec.decide(flags("f1", "p1")).allowed is False


# --- Evaluation errors: a permit does not match, a forbid or ask does; errors are reported. ---

ERRORS = """
import std.intents
tool e.permit  { intent read }
tool e.forbid  { intent read }
tool e.ask     { intent read }
tool e.unless  { intent read }
tool e.nonbool { intent read }

permit pe on e.permit when args.amount > 3
forbid fe on e.forbid when args.amount > 3 because "fe"
ask ae on e.ask when args.amount > 3 because "ae"
permit fallback on e.forbid, e.ask, e.unless

permit pu on e.unless when true unless args.flag
forbid fu on e.unless when args has fu unless args.flag

permit pn on e.nonbool when args.x
forbid fn on e.nonbool when args.y
"""


@pytest.fixture(scope="module")
def err():
    return load_text(ERRORS)


def call(tool, args):
    return {"agent": {"id": "spiffe://t/a"}, "tool": tool, "args": args, "now": NOW}


def test_error_makes_permit_not_match(err):
    d = err.decide(call("e.permit", {}))
    assert d.decision == "deny"
    assert list(d.rules) == ["default.deny"]
    assert len(d.errors) == 1
    assert d.errors[0].startswith("pe")


def test_permit_matches_without_error(err):
    d = err.decide(call("e.permit", {"amount": 5}))
    assert outcome(d) == {"decision": "allow", "ttl": 900, "rules": ["pe"], "reasons": [],
                          "errors": []}


def test_permit_false_without_error(err):
    d = err.decide(call("e.permit", {"amount": 1}))
    assert (d.decision, list(d.rules), list(d.errors)) == ("deny", ["default.deny"], [])


def test_error_makes_forbid_match(err):
    d = err.decide(call("e.forbid", {}))
    assert d.decision == "deny"
    assert list(d.rules) == ["fe"]
    assert list(d.reasons) == ["fe"]
    assert d.errors and d.errors[0].startswith("fe")


def test_forbid_false_lets_permit_through(err):
    d = err.decide(call("e.forbid", {"amount": 1}))
    assert (d.decision, list(d.rules), list(d.errors)) == ("allow", ["fallback"], [])


def test_error_makes_ask_match(err):
    d = err.decide(call("e.ask", {"amount": "lots"}))
    assert d.decision == "ask"
    assert list(d.rules) == ["ae"]
    assert d.errors and d.errors[0].startswith("ae")


def test_error_in_unless(err):
    # permit pu: `unless` fails -> no match; forbid fu: `unless` fails -> match.
    d = err.decide(call("e.unless", {"fu": 1}))
    assert d.decision == "deny"
    assert list(d.rules) == ["fu"]
    assert len(d.errors) == 2
    assert {e.split(":")[0] for e in d.errors} == {"pu", "fu"}


def test_unless_not_evaluated_when_when_is_false(err):
    # fu's `when` is false (no fu arg): its failing `unless` is never evaluated.
    d = err.decide(call("e.unless", {"flag": False}))
    assert (d.decision, set(d.rules), list(d.errors)) == ("allow", {"pu", "fallback"}, [])


def test_non_boolean_condition_is_an_error(err):
    d = err.decide(call("e.nonbool", {"x": 5, "y": "yes"}))
    assert d.decision == "deny"
    assert list(d.rules) == ["fn"]
    assert {e.split(":")[0] for e in d.errors} == {"pn", "fn"}


def test_boolean_conditions_from_args(err):
    d = err.decide(call("e.nonbool", {"x": True, "y": False}))
    assert (d.decision, list(d.rules), list(d.errors)) == ("allow", ["pn"], [])


def test_error_in_rule_out_of_scope_is_not_reported(err):
    d = err.decide(call("e.other", {}))
    assert (d.decision, list(d.errors)) == ("deny", [])


# --- Rule scope: on / in / by ---

SCOPES = """
import std.intents
agent bot "spiffe://t/bot"
agent fam "spiffe://t/fam/*"
tool crm.lookup { intent read }
tool net.fetch { intent egress }
task t1 { }
task t2 { }

permit on_glob on crm.*
permit on_exact on crm.lookup
permit on_intent on intent egress
permit on_two_intents on intent payment, intent delete
permit on_mixed on x.exact, intent write
permit in_t1 in t1
permit by_fam by fam
permit by_bot_or_fam by bot, fam
permit everywhere
"""


@pytest.fixture(scope="module")
def scopes():
    return load_text(SCOPES)


def permits(engine, **request):
    request.setdefault("agent", {"id": "spiffe://t/nobody"})
    request.setdefault("now", NOW)
    d = engine.decide(request)
    assert d.decision == "allow", d.rules
    return set(d.rules) - {"everywhere"}


@pytest.mark.parametrize(
    "request_, expected",
    [
        ({"tool": "crm.lookup"}, {"on_glob", "on_exact"}),
        ({"tool": "crm.notes.read"}, {"on_glob"}),
        ({"tool": "crmx.lookup"}, set()),
        ({"tool": "net.fetch"}, {"on_intent"}),
        ({"tool": "x.other", "intent": ["egress"]}, {"on_intent"}),
        ({"tool": "x.other", "intent": ["delete"]}, {"on_two_intents"}),
        ({"tool": "x.exact"}, {"on_mixed"}),
        ({"tool": "x.other", "intent": ["write"]}, {"on_mixed"}),
        ({"tool": "x.other", "task": {"kind": "t1"}}, {"in_t1"}),
        ({"tool": "x.other", "task": {"kind": "t2"}}, set()),
        ({"tool": "x.other", "agent": {"id": "spiffe://t/fam/a/b"}}, {"by_fam", "by_bot_or_fam"}),
        ({"tool": "x.other", "agent": {"id": "spiffe://t/bot"}}, {"by_bot_or_fam"}),
        ({"tool": "x.other", "agent": {"id": "spiffe://t/botx"}}, set()),
    ],
    ids=["glob+exact", "glob-crosses-dot", "glob-whole", "tool-intent", "request-intent",
         "second-intent", "mixed-tool", "mixed-intent", "in-task", "in-other-task", "by-glob",
         "by-exact", "by-whole-string"],
)
def test_rule_scope(scopes, request_, expected):
    assert permits(scopes, **request_) == expected


def test_rule_order_in_decision(scopes):
    d = scopes.decide({"agent": {"id": "spiffe://t/bot"}, "tool": "crm.lookup", "now": NOW,
                       "task": {"kind": "t1"}})
    assert list(d.rules) == ["on_glob", "on_exact", "in_t1", "by_bot_or_fam", "everywhere"]


def test_intent_and_intents_are_synonyms():
    e = load_text("""
    import std.intents
    tool a.one { intents read, write }
    tool a.two { intent egress }
    task t { tools a.*  intent read, write }
    task u { intents egress }
    permit w on intent write in t
    permit g on intent egress in u
    """)
    d = e.decide({"agent": {"id": "x"}, "tool": "a.one", "task": {"kind": "t"}, "now": NOW})
    assert (d.decision, list(d.rules)) == ("allow", ["w"])
    d = e.decide({"agent": {"id": "x"}, "tool": "a.two", "task": {"kind": "t"}, "now": NOW})
    assert d.decision == "deny" and "scope.intent" in d.rules
    d = e.decide({"agent": {"id": "x"}, "tool": "a.two", "task": {"kind": "u"}, "now": NOW})
    assert (d.decision, list(d.rules)) == ("allow", ["g"])


def test_agent_pattern_question_mark():
    e = load_text("""
    agent bots "spiffe://t/bot-?"
    permit p by bots
    """)
    one = e.decide({"agent": {"id": "spiffe://t/bot-1"}, "tool": "x", "now": NOW})
    two = e.decide({"agent": {"id": "spiffe://t/bot-12"}, "tool": "x", "now": NOW})
    assert (one.decision, two.decision) == ("allow", "deny")
