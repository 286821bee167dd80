"""The compiled envelope keeps what it reads of a chain (agp.compile.envelope.ChainFacts) for
every later call through the same hops, as the task runtime makes them: those calls are decided
exactly as the reference evaluator decides them, whatever the time, tool, agent or task kind of
each call, and whatever changes between them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from support import SPEC

import agp
from agp.model import Agent, Hop, Request, Scope, Task

FILES = [str(SPEC / "declarations.agp"), str(SPEC / "rules.agp")]
COMPILED = agp.load(FILES)
REFERENCE = agp.load(FILES, compiled=False)
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
BOT = "spiffe://acme.com/agents/support-bot"
AGENTS = [BOT, "spiffe://acme.com/agents/billing/eu-1", "spiffe://acme.com/agents/other",
          "user:alice"]
TOOLS = ["crm.lookup", "payments.refund", "http.get", "crm.notes"]

scopes = st.one_of(st.none(), st.builds(
    Scope,
    tools=st.one_of(st.none(), st.lists(st.sampled_from(["payments.refund", "crm.*", "http.*"]),
                                        max_size=2)),
    intents=st.one_of(st.none(), st.lists(st.sampled_from(["read", "write", "payment",
                                                           "egress", "nope"]), max_size=3)),
    data=st.sampled_from([None, "pii", "public", "secret"]),
    ttl=st.sampled_from([None, timedelta(minutes=1), timedelta(minutes=5)])))
hops = st.lists(st.builds(
    Hop, principal=st.sampled_from(AGENTS), kind=st.sampled_from(["human", "agent", "service"]),
    at=st.one_of(st.none(), st.integers(0, 600).map(lambda s: T0 + timedelta(seconds=s))),
    scope=scopes), min_size=1, max_size=4)
calls = st.lists(st.tuples(
    st.integers(0, 900),  # seconds after T0
    st.sampled_from(TOOLS), st.sampled_from(AGENTS),
    st.sampled_from([None, "support_ticket", "nope"]),  # the task's kind (None: no task)
    st.lists(st.sampled_from(["read", "egress", "nope"]), max_size=1),
    st.lists(st.sampled_from(["pii", "public", "restricted"]), max_size=1),
), min_size=1, max_size=12)


def _decision(d: agp.Decision) -> tuple[object, ...]:
    return d.decision, d.ttl, list(d.rules), list(d.reasons), list(d.errors)


@settings(max_examples=300, deadline=None)
@given(hops, calls)
def test_calls_through_the_same_hops_agree_with_the_reference(chain, plan):
    for seconds, tool, agent, kind, intent, data in plan:
        task = None if kind is None else Task(kind=kind, id="t-1", params={"customer": "c-1"},
                                              started_at=T0)
        # The same Hop objects in every request, as the task runtime hands them to each call.
        request = Request.model_construct(
            agent=Agent(id=agent), task=task, chain=list(chain), tool=tool, intent=intent,
            args={"customer": "c-1", "amount": 40}, data=data, target=None, context={},
            now=T0 + timedelta(seconds=seconds))
        assert _decision(COMPILED.decide(request)) == _decision(REFERENCE.decide(request))


def test_a_delegation_expires_on_a_later_call_through_the_same_hops():
    chain = [Hop(principal="user:alice", kind="human"), Hop(principal=BOT, kind="agent"),
             Hop(principal=AGENTS[1], kind="agent", at=T0,
                 scope=Scope(tools=["payments.refund"], ttl=timedelta(minutes=5)))]
    task = Task(kind="support_ticket", id="t-1", params={"customer": "c-1"}, started_at=T0)

    def refund(minutes: int) -> agp.Decision:
        return COMPILED.decide(Request.model_construct(
            agent=Agent(id=AGENTS[1]), task=task, chain=chain, tool="payments.refund",
            intent=[], args={"customer": "c-1", "amount": 40}, data=[], target=None,
            context={}, now=T0 + timedelta(minutes=minutes)))

    assert refund(4).decision == "allow"
    assert refund(5).rules == ["delegation.expired"]  # at + ttl: expired from that instant on
    assert refund(1).decision == "allow"  # the kept facts hold no verdict of an earlier call
    late = COMPILED.decide(Request.model_construct(
        agent=Agent(id=AGENTS[1]), task=task, chain=chain, tool="crm.lookup", intent=[],
        args={"customer": "c-1"}, data=[], target=None, context={},
        now=T0 + timedelta(minutes=1)))
    assert "delegation.scope" in late.rules  # another tool through the same hops
    before = COMPILED.decide(Request.model_construct(
        agent=Agent(id=AGENTS[1]), task=task, chain=chain, tool="payments.refund", intent=[],
        args={"customer": "c-1", "amount": 40}, data=[], target=None, context={},
        now=T0 - timedelta(seconds=1)))
    assert before.rules[0] == "request.invalid"  # a call before the delegation's `at`
