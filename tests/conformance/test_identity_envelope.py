"""IDENTITY.md §1 in the evaluators: the identity check runs first, its id is `agent.id`
everywhere, `agent.verified` is its verdict, and its codes are envelope rows; and LANGUAGE.md §5's
`store.unavailable`. Both evaluators, with a fake check (the real SVID verifier is
agp.identity.svid, tested in tests/test_identity*.py)."""

from __future__ import annotations

from datetime import datetime

import pytest
from support import load_text

import agp
from agp.engine import make_evaluator
from agp.identity import Identity, unverified

NOW = "2026-11-28T10:00:00Z"
BILLING = "spiffe://acme.com/agents/billing/eu-1"


def fake_check(agent_id: str | None, svid: str | None, now: datetime) -> Identity:
    """`good:<id>` is a valid token for <id>, `bad` an invalid one; a request without a token is
    refused when its asserted id starts with `strict:` (as `require_identity` would)."""
    calls.append((agent_id, svid, now))
    asserted = agent_id if agent_id is not None else ""
    if svid is None:
        if asserted.startswith("strict:"):
            return Identity(asserted, False, "identity.missing",
                            "identity.missing: this engine requires agent.svid")
        return Identity(asserted, False)
    if svid == "bad":
        return Identity(asserted, False, "identity.invalid",
                        "identity.invalid: the token has expired")
    subject = svid.removeprefix("good:")
    if agent_id is not None and agent_id != subject:
        return Identity(asserted, False, "identity.mismatch",
                        "identity.mismatch: agent.id is not the token's subject")
    return Identity(subject, True)


calls: list = []

POLICY = """
    import std.intents
    agent billing "spiffe://acme.com/agents/billing/*"
    tool pay { intent payment }
    tool who { }
    tool chain.check { }
    task t { delegate { to billing  depth <= 2 } }
    forbid unproven_payment on intent payment unless agent.verified
    permit billing_only on who by billing when agent is billing and agent.id == "%s"
    permit in_chain on chain.check when billing in chain
    permit open on pay
""" % BILLING


@pytest.fixture(params=["reference", "compiled"])
def engine(request):
    policy = load_text(POLICY).policy
    calls.clear()
    return agp.Engine(policy, evaluator=make_evaluator(policy, request.param == "compiled",
                                                       identity=fake_check))


def req(tool="pay", agent=None, **extra):
    return {"agent": agent if agent is not None else {"svid": f"good:{BILLING}"},
            "tool": tool, "now": NOW, **extra}


def test_a_valid_token_is_the_agent_and_is_verified(engine):
    d = engine.decide(req())
    assert (d.decision, d.rules) == ("allow", ["open"])
    assert calls == [(None, f"good:{BILLING}", datetime.fromisoformat("2026-11-28T10:00:00+00:00"))]


def test_an_asserted_id_is_not_verified(engine):
    d = engine.decide(req(agent={"id": BILLING}))
    assert (d.decision, d.rules) == ("deny", ["unproven_payment"])


def test_the_verified_id_matches_agents_patterns_and_conditions(engine):
    # No asserted id: `by billing`, `agent is billing` and `agent.id` read the token's subject.
    assert engine.decide(req("who")).rules == ["billing_only"]
    assert engine.decide(req("who", agent={"svid": "good:spiffe://acme.com/other"})).rules == \
        ["default.deny"]


def test_the_verified_id_is_the_acting_agent_of_the_chain(engine):
    chain = [{"principal": "user:alice", "kind": "human"}, {"principal": BILLING, "kind": "agent"}]
    d = engine.decide(req("chain.check", chain=chain, task={"kind": "t"}))
    assert (d.decision, d.rules) == ("allow", ["in_chain"])  # no delegation.mismatch
    # `billing in chain` tests the acting agent too: the token's subject, with no hop naming it.
    assert engine.decide(req("chain.check")).rules == ["in_chain"]
    other = req("chain.check", chain=chain, agent={"svid": "good:spiffe://acme.com/x"})
    assert "delegation.mismatch" in engine.decide(other).rules


@pytest.mark.parametrize("agent,code,message", [
    ({"id": BILLING, "svid": "bad"}, "identity.invalid", "identity.invalid: the token has expired"),
    ({"id": "spiffe://acme.com/other", "svid": f"good:{BILLING}"}, "identity.mismatch",
     "identity.mismatch: agent.id is not the token's subject"),
    ({"id": "strict:bot"}, "identity.missing", "identity.missing: this engine requires agent.svid"),
])
def test_each_identity_code_denies_and_says_why(engine, agent, code, message):
    d = engine.decide(req(agent=agent))
    assert d.decision == "deny" and d.ttl == 0
    assert d.rules == [code, "unproven_payment"]  # the rules are still evaluated
    assert d.errors == [message]


def test_a_refused_token_leaves_the_asserted_id(engine):
    # `agent.id` is the asserted id when the token is not valid, and it is not verified.
    d = engine.decide(req("who", agent={"id": BILLING, "svid": "bad"}))
    assert d.rules == ["identity.invalid"] and d.decision == "deny"


def test_identity_rows_stand_after_delegation_in_the_table(engine):
    chain = [{"principal": "x", "kind": "agent"}]
    d = engine.decide(req(agent={"id": BILLING, "svid": "bad"}, chain=chain))
    assert d.rules[:2] == ["delegation.mismatch", "identity.invalid"]


def test_a_check_that_raises_refuses_the_agent():
    def broken(agent_id, svid, now):
        raise RuntimeError("bug")

    policy = load_text(POLICY).policy
    for compiled in (False, True):
        e = agp.Engine(policy, evaluator=make_evaluator(policy, compiled, identity=broken))
        d = e.decide(req(agent={"id": BILLING}))
        assert d.rules[0] == "identity.invalid" and d.decision == "deny"


@pytest.mark.parametrize("compiled", [False, True])
def test_without_trust_any_svid_is_invalid(compiled):
    policy = load_text(POLICY).policy
    e = agp.Engine(policy, evaluator=make_evaluator(policy, compiled, identity=unverified))
    d = e.decide(req())
    assert d.decision == "deny" and d.rules[0] == "identity.invalid"
    assert "no trust is configured" in d.errors[0]
    # an asserted id alone is decided as before, unverified
    assert e.decide(req(agent={"id": BILLING})).rules == ["unproven_payment"]


def test_store_unavailable_denies_and_still_explains(engine):
    d = engine.decide(req(agent={"id": BILLING}), store_unavailable=True)
    assert (d.decision, d.rules) == ("deny", ["store.unavailable", "unproven_payment"])
    d = engine.decide(req("who"), store_unavailable=True, task_ended=True)
    assert d.rules == ["store.unavailable"] and d.decision == "deny"


def test_store_unavailable_through_engine_decide_and_a_decision_log(tmp_path):
    e = agp.load(load_text(POLICY)._paths, compiled=True)
    e.log_decisions(tmp_path / "log.jsonl")
    d = e.decide(req("who", agent={"id": BILLING}), store_unavailable=True)
    assert d.rules == ["store.unavailable"]
    e.close()
