"""IDENTITY.md §2 `approve` on a call of a task the engine's store keeps (LANGUAGE.md §6): the
call is decided again on the task's own session, as it stood before the call, and once granted
its history item becomes `allow`. A session the caller makes up is never what is decided."""

from __future__ import annotations

import pytest
from support import EXAMPLES

import agp
from agp.identity import keys

AGENT = "spiffe://acme.com/agents/mail-assistant"
PARAMS = {"owner": "alice@acme.com", "correspondent": "bob@partner.example"}
TO_EVE = {"to": "eve@evil.example", "subject": "Re", "body": "..."}


@pytest.fixture(params=[True, False], ids=["compiled", "reference"])
def engine(request):
    return agp.load(EXAMPLES / "mail-assistant", compiled=request.param,
                    issuer_key=keys.generate("ed25519"), issuer="agp://acme.com/pdp")


def the_call(**task):
    """The asked call as the caller knows it: no session of its own."""
    return {"agent": {"id": AGENT}, "tool": "mail.send", "args": TO_EVE,
            "task": {"id": "m-1", "kind": "inbox", "params": PARAMS,
                     "started_at": "2026-11-28T10:00:00Z", **task},
            "chain": [{"principal": "user:alice", "kind": "human"},
                      {"principal": AGENT, "kind": "agent"}]}


def asked_in_a_session(engine):
    tasks = engine.tasks()
    tasks.start({"id": "m-1", "kind": "inbox", "params": PARAMS}, agent=AGENT,
                chain=[{"principal": "user:alice", "kind": "human"}], at="2026-11-28T10:00:00Z")
    tasks.decide(agent=AGENT, tool="mail.read", task="m-1", now="2026-11-28T10:00:01Z",
                 args={"id": "msg-1"})
    # Asked only because the task has read mail from outside: a session rule.
    decision = tasks.decide(agent=AGENT, tool="mail.send", task="m-1",
                            now="2026-11-28T10:00:02Z", args=TO_EVE)
    assert (decision.decision, decision.rules) == ("ask", ["beyond_correspondent"])
    return tasks, decision


def test_an_approved_call_of_a_kept_task_is_granted_and_becomes_allow(engine):
    tasks, decision = asked_in_a_session(engine)
    token = engine.approve(the_call(), decision, approver="user:alice",
                           now="2026-11-28T10:00:03Z")
    claims = engine.grants.verify(token, tool="mail.send", args=TO_EVE,
                                  now="2026-11-28T10:00:04Z")
    assert claims["agp"]["approver"] == "user:alice"
    assert claims["agp"]["rules"] == ["beyond_correspondent"]
    assert [h.decision for h in tasks.session("m-1")[1]] == ["allow", "allow"]


def test_the_callers_session_is_replaced_by_the_stores(engine):
    _, decision = asked_in_a_session(engine)
    # A caller that claims the task has read nothing would get an allow, hence `not-ask`, if its
    # session were believed; the store's session decides, so the ask is granted.
    token = engine.approve(the_call(seen=[], history=[]), decision, approver="user:alice",
                           now="2026-11-28T10:00:03Z")
    assert engine.grants.introspect(token, now="2026-11-28T10:00:04Z")["active"] is True


def test_a_task_the_store_does_not_keep_is_decided_as_the_request_says(engine):
    _, decision = asked_in_a_session(engine)
    other = agp.load(EXAMPLES / "mail-assistant", issuer_key=keys.generate("ed25519"),
                     issuer="agp://acme.com/pdp")
    with pytest.raises(agp.GrantError) as refused:  # no session: the send is an allow
        other.approve(the_call(), decision, approver="user:alice", now="2026-11-28T10:00:03Z")
    assert refused.value.reason == "not-ask"
