"""The path of a deny.

The compiled evaluator hands a rule whose compiled condition raised to the reference evaluator,
which writes the error: on a replay, a third of the denies (a rule reading `target` on a call
without one). The fallback builds only the names the rule reads, and leaves no cycle of frames
and tracebacks behind for the garbage collector. And a deny's explanation runs again only the
envelope's rows that have something to say."""

from __future__ import annotations

import gc
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import load_text, outcome

import agp
from agp import interp
from agp.compile import evaluator
from agp.model import Agent, HistoryItem, Hop, Request, Scope, Task

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)

# Each condition raises on some requests, and reads a different part of the environment.
POLICY = """
import std.intents
dataclass public
dataclass pii > public
tool crm.lookup {
  intent read
  data pii
  args { since?: duration }
}
task support_ticket {
  params { customer: string }
}
permit by_target on crm.lookup unless target.external
forbid by_args on crm.lookup when args.since > 1h
ask by_chain on crm.lookup when chain.origin.at < now
forbid by_task on crm.lookup when task.params.customer == "c-9" or count(h in task.history: h.age < 1h) > 1
permit by_quantifier on crm.lookup when any(h in chain.hops: h.scope.ttl > 1m)
forbid by_agent on crm.lookup when agent.attrs.team == "blue"
"""


@pytest.fixture(autouse=True)
def _check_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    # Compiled code may raise only where the reference reports an error.
    monkeypatch.setattr(evaluator, "CHECK_FALLBACK", True)


_REF: list[agp.Engine] = []


def _reference() -> agp.Engine:
    if not _REF:
        compiled = load_text(POLICY)
        _REF.append(agp.Engine(compiled.evaluator.full_policy(), compiled=False))
    return _REF[0]


def _item(at: datetime) -> HistoryItem:
    return HistoryItem(tool="crm.lookup", intent=["read"], data=["pii"], args={}, decision="allow",
                       at=at)


requests = st.builds(
    lambda target, since, hops, customer, history, attrs: Request(
        agent=Agent(id="bot", attrs=attrs), tool="crm.lookup",
        args={} if since is None else {"since": since},
        target=target,
        task=None if customer is None else Task(
            kind="support_ticket", id="t-1", params={"customer": customer}, started_at=T0,
            history=[_item(T0 + timedelta(seconds=i)) for i in range(history)]),
        chain=hops, now=T0 + timedelta(hours=2)),
    target=st.sampled_from([None, {"external": True}, {"external": False}, {"host": "x"},
                            {"external": "yes"}]),
    since=st.sampled_from([None, "30m", "2h", 5, "soon"]),
    hops=st.lists(st.builds(
        Hop, principal=st.sampled_from(["user:alice", "bot"]),
        kind=st.sampled_from(["human", "agent"]),
        at=st.sampled_from([None, T0, T0 + timedelta(hours=1, minutes=30)]),
        scope=st.one_of(st.none(), st.builds(Scope, ttl=st.sampled_from(
            [None, timedelta(seconds=30), timedelta(minutes=5)])))), max_size=3),
    customer=st.sampled_from([None, "c-1", "c-9"]),
    history=st.integers(0, 3),
    attrs=st.sampled_from([{}, {"team": "blue"}, {"team": 3}]),
)


@settings(max_examples=300, deadline=None)
@given(requests)
def test_the_fallback_decides_as_the_reference(request):
    compiled = load_text(POLICY)
    assert outcome(compiled.decide(request)) == outcome(_reference().decide(request))


def test_the_fallback_builds_only_what_the_rule_reads():
    policy = load_text(POLICY).evaluator.full_policy()
    names = {r.name: interp.names_read(r) for r in policy.rules}
    assert names["by_target"] == {"target"}
    assert names["by_args"] == {"args"}
    assert names["by_chain"] == {"chain", "now"}
    assert names["by_task"] == {"task", "h"}
    assert names["by_quantifier"] == {"chain", "h"}  # the variable too: harmless, and simple
    request = Request(agent=Agent(id="bot"), tool="crm.lookup", args={"since": "2h"},
                      chain=[Hop(principal="user:alice", kind="human")],
                      task=Task(kind="support_ticket", params={"customer": "c-1"}))
    ident = agp.identity.unverified("bot", None, T0)
    full = interp.environment(request, T0, ident, frozenset(), frozenset(), frozenset({"since"}))
    only = interp.environment(request, T0, ident, frozenset(), frozenset(), frozenset({"since"}),
                              names=frozenset({"target"}))
    assert {"args", "chain", "task"} <= full.keys()
    assert not {"args", "chain", "task"} & only.keys()
    assert {k: v for k, v in full.items() if k in only} == only


def test_a_rule_that_raises_leaves_no_garbage_cycle():
    engine = load_text(POLICY)
    request = {"agent": {"id": "bot"}, "tool": "crm.lookup", "now": "2026-11-28T10:00:00Z",
               "task": {"kind": "support_ticket", "params": {"customer": "c-1"}}}
    decision = engine.decide(request)
    assert any(e.startswith("by_target: ") and "has no `target`" in e for e in decision.errors)
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(20):
            engine.decide(request)
        # Before, each decision left its exceptions' tracebacks, their frames and the frames'
        # locals in a cycle: the collector then ran every few decisions of a replay.
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()


def test_only_the_rows_that_have_words_are_run_again_to_explain_a_deny():
    from agp.envelope import ROWS, WORDED

    kinds = {code: row.__annotations__["return"] for code, row in ROWS}
    assert set(kinds.values()) == {"bool", "list[str]"}  # no third kind the split would miss
    assert {code for code, kind in kinds.items() if kind == "list[str]"} == WORDED
    assert {"task.ended", "delegation.scope"}.isdisjoint(WORDED)
    engine = load_text(POLICY)
    base = {"agent": {"id": "bot"}, "tool": "crm.lookup", "now": "2026-11-28T10:00:00Z",
            "target": {"external": False}}
    task = {"kind": "support_ticket", "params": {"customer": "c-1"}}
    ended = engine.decide({**base, "task": task}, task_ended=True)
    assert ended.rules[0] == "task.ended"
    assert not any(e.startswith("task.ended") for e in ended.errors)
    assert outcome(ended) == outcome(_reference().decide({**base, "task": task},
                                                         task_ended=True))
    unknown = {**base, "task": {"kind": "nope"}, "data": ["secret"]}
    decision = engine.decide(unknown)
    assert decision.rules[:2] == ["request.unknown", "task.unknown"]
    assert decision.errors[0].startswith("request.unknown: ")
    assert decision.errors[1].startswith("task.unknown: ")
    assert outcome(decision) == outcome(_reference().decide(unknown))
