"""The task runtime's fast paths (docs/performance-replay.md): trace events validated by hand
exactly as pydantic validates them, models built without `model_construct`'s loop, and per-task
state shared where tasks start alike. Each must change nothing but the cost."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from support import SPEC

import agp
from agp.model import Agent, HistoryItem, Hop, Request, Scope, Task
from agp.runtime.events import (
    EVENTS,
    CallEvent,
    Delegate,
    EventError,
    ExpectSpec,
    Observe,
    RequestEvent,
    TaskEnd,
    TaskSpec,
    TaskStart,
    construct,
    fast_event,
    parse_event,
)
from agp.runtime.tasks import TaskRuntime
from agp.store.memory import MemoryStore

ENGINE = agp.load(str(SPEC))
BOT = "spiffe://acme.com/agents/support-bot"
BILLING = "spiffe://acme.com/agents/billing/eu-1"
T0 = datetime(2026, 11, 28, 10, tzinfo=timezone.utc)


# ---- construct: what model_construct builds ------------------------------------------------------

@pytest.mark.parametrize(("model", "fields"), [
    (Request, {"agent": Agent(id="a"), "task": None, "chain": [], "tool": "t", "intent": [],
               "args": {"n": 1}, "data": [], "target": None, "context": {}, "now": T0}),
    (Task, {"kind": "k", "id": "t-1", "params": {}, "objective": None, "started_at": T0,
            "seen": ["pii"], "history": []}),
    (HistoryItem, {"tool": "t", "intent": ["read"], "data": [], "args": {}, "decision": "ask",
                   "at": T0}),
    (Hop, {"principal": "p", "kind": "agent", "at": None, "scope": None}),
    (CallEvent, {"ts": T0, "event": "call", "task": None, "agent": Agent(id="a"), "tool": "t",
                 "intent": [], "args": {}, "data": [], "target": None, "context": {},
                 "expect": "allow"}),
])
def test_construct_builds_what_model_construct_builds(model: type[BaseModel],
                                                      fields: dict[str, Any]) -> None:
    ours = construct(model, dict(fields), set(fields))
    theirs = model.model_construct(**fields)
    assert type(ours) is model
    assert ours == theirs
    assert ours.__dict__ == theirs.__dict__ and list(ours.__dict__) == list(model.model_fields)
    assert ours.model_fields_set == theirs.model_fields_set
    assert ours.__pydantic_extra__ == theirs.__pydantic_extra__
    assert ours.__pydantic_private__ == theirs.__pydantic_private__
    assert ours.model_dump() == theirs.model_dump()
    # A copy with changes gets its own fields set: one shared by many instances never changes.
    last = list(fields)[-1]
    shared = set(fields) - {last}
    copied = construct(model, dict(fields), shared).model_copy(update={last: fields[last]})
    assert shared == set(fields) - {last} and last in copied.model_fields_set


# ---- the fast path of trace events ----------------------------------------------------------------

# Field values of every kind: valid ones, and the near misses each check must refuse.
timestamps = st.one_of(
    st.sampled_from(["2026-11-28T10:00:00Z", "2026-11-28T10:00:00.123456789+01:00",
                     "2026-11-28T10:00:00", "1899-12-31T23:59:59Z", "9000-01-01T00:00:00Z",
                     "2026-02-30T10:00:00Z", ""]),
    st.integers(0, 10), st.none())
strings = st.sampled_from(["", "x", "crm.lookup", "a b", "t-1", "\u200b", "line\nbreak", BOT])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), strings)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(strings, inner, max_size=3)), max_leaves=6)
objects = st.dictionaries(strings, json_values, max_size=4)
lists_of_strings = st.one_of(st.lists(strings, max_size=3), st.lists(scalars, max_size=2))
durations = st.one_of(st.sampled_from(["5m", "1h30m", "-1m", "forever", "100000d"]),
                      st.integers(-5, 10**10), st.floats(allow_nan=True), st.booleans())
anything = st.one_of(scalars, lists_of_strings, objects, durations, timestamps)

# Valid events of every type (FORMATS.md), which `_mutated` then breaks in a few places.
names = st.sampled_from(["crm.lookup", "payments.refund", "x"])
flat = st.dictionaries(st.sampled_from(["customer", "amount", "note"]),
                       st.one_of(st.integers(0, 500), st.text(max_size=5), st.none(),
                                 st.booleans(), st.floats(0, 1)), max_size=3)
expects = st.one_of(st.sampled_from(["allow", "deny", "ask"]), st.fixed_dictionaries(
    {}, optional={"decision": st.sampled_from(["allow", "deny", "ask"]),
                  "ttl": st.sampled_from(["5m", 300, 1.5]),
                  "rules": st.lists(names, max_size=2), "reasons": st.lists(names, max_size=1)}))
agents = st.one_of(st.sampled_from([BOT, BILLING]), st.fixed_dictionaries(
    {"id": st.sampled_from([BOT, BILLING])}, optional={"svid": st.just("eyJ.x.y"),
                                                       "attrs": flat}))
scopes = st.fixed_dictionaries({}, optional={
    "tools": st.lists(names, max_size=2), "intents": st.lists(names, max_size=2),
    "data": st.just("pii"), "ttl": st.sampled_from(["5m", 60])})
hops = st.fixed_dictionaries({"principal": st.sampled_from(["user:alice", BOT]),
                              "kind": st.sampled_from(["human", "agent", "service"])},
                             optional={"at": st.just("2026-11-28T09:00:00Z"), "scope": scopes})


def _event(name: str, required: dict[str, Any], optional: dict[str, Any]) -> Any:
    return st.fixed_dictionaries({"event": st.just(name), "ts": st.just("2026-11-28T10:00:00Z"),
                                  **required}, optional=optional)


valid_events = st.one_of(
    _event("call", {"agent": agents, "tool": names}, {
        "task": st.just("t-1"), "intent": st.lists(names, max_size=2), "args": flat,
        "data": st.lists(names, max_size=2), "target": st.one_of(st.none(), flat),
        "context": flat, "expect": expects}),
    _event("task.start", {"agent": agents, "task": st.fixed_dictionaries(
        {"id": st.just("t-1"), "kind": st.just("support_ticket")},
        optional={"params": flat, "objective": st.just("help")})},
        {"chain": st.lists(hops, max_size=3)}),
    _event("delegate", {"task": st.just("t-1"), "from": st.just(BOT), "to": st.just(BILLING)},
           {"scope": st.one_of(st.none(), scopes)}),
    _event("observe", {"task": st.just("t-1"), "data": st.lists(names, max_size=2)}, {}),
    _event("task.end", {"task": st.just("t-1")}, {}),
    _event("request", {"request": json_values}, {"task_ended": st.booleans(),
                                                 "expect": expects,
                                                 "audit": st.one_of(st.none(), flat)}),
)


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with up to three of its values (at any depth) replaced, removed or added."""
    event = json.loads(json.dumps(draw(valid_events)))
    for _ in range(draw(st.integers(0, 3))):
        parent, key = draw(st.sampled_from(_places(event)))
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "remove" and isinstance(parent, dict) and key != "event":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "id", "scope", "at", "ttl"]))] = draw(anything)
        elif key != "event":
            parent[key] = draw(anything)
    return event


def _places(node: Any) -> list[tuple[Any, Any]]:
    """(container, key or index) of every value inside `node`, at any depth."""
    out = []
    for key in (list(node) if isinstance(node, dict) else range(len(node))):
        out.append((node, key))
        if isinstance(node[key], (dict, list)):
            out.extend(_places(node[key]))
    return out


events = _mutated()


def _pydantic(value: dict[str, Any]) -> BaseModel | None:
    try:
        return EVENTS[value["event"]].model_validate(value)
    except ValidationError:
        return None


def _same(fast: object, slow: object) -> None:
    """Equal models, down to the nested ones' types and fields sets."""
    assert type(fast) is type(slow)
    if isinstance(fast, BaseModel):
        assert isinstance(slow, BaseModel)
        assert fast.model_fields_set == slow.model_fields_set
        assert fast == slow
        for name in type(fast).model_fields:
            _same(getattr(fast, name), getattr(slow, name))
    elif isinstance(fast, list):
        assert isinstance(slow, list) and len(fast) == len(slow)
        for a, b in zip(fast, slow, strict=True):
            _same(a, b)
    else:
        assert fast is slow or fast == slow  # (the same NaN, given as it stands, is not ==)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_fast_event_builds_exactly_what_pydantic_builds(value: dict[str, Any]) -> None:
    """Whatever the fast path accepts, pydantic accepts and builds equal models (so the fast path
    is never more lenient, and never builds anything else)."""
    fast = fast_event(value)
    if fast is not None:
        slow = _pydantic(value)
        assert slow is not None, f"the fast path accepted what pydantic refuses: {value!r}"
        _same(fast, slow)


# Every event type with every field given, for the exhaustive test below.
FULL_EVENTS = [
    {"ts": "2026-11-28T10:00:00Z", "event": "call", "task": "t-1",
     "agent": {"id": BOT, "svid": "eyJ.x.y", "attrs": {"team": "eu"}}, "tool": "crm.lookup",
     "intent": ["read"], "args": {"customer": "c-1", "n": 1.5}, "data": ["pii"],
     "target": {"external": False}, "context": {"ip": "10.0.0.1"},
     "expect": {"decision": "deny", "ttl": "5m", "rules": ["a"], "reasons": ["b"]}},
    {"ts": "2026-11-28T10:00:00Z", "event": "call", "agent": BOT, "tool": "x", "expect": "ask"},
    {"ts": "2026-11-28T10:00:00Z", "event": "task.start", "agent": BOT,
     "task": {"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-1"},
              "objective": "help"},
     "chain": [{"principal": "user:alice", "kind": "human", "at": "2026-11-28T09:00:00Z",
                "scope": {"tools": ["crm.*"], "intents": ["read"], "data": "pii",
                          "ttl": 60}}]},
    {"ts": "2026-11-28T10:00:00Z", "event": "delegate", "task": "t-1", "from": BOT,
     "to": BILLING, "scope": {"tools": ["payments.refund"], "intents": ["payment"],
                              "data": "pii", "ttl": "5m"}},
    {"ts": "2026-11-28T10:00:00Z", "event": "observe", "task": "t-1", "data": ["pii"]},
    {"ts": "2026-11-28T10:00:00Z", "event": "task.end", "task": "t-1"},
    {"ts": "2026-11-28T10:00:00Z", "event": "request", "request": {"tool": "x"},
     "task_ended": False, "expect": "deny", "audit": {"policy": "sha256:0"}},
]
ODD_VALUES = [None, 0, 1, 1.5, float("nan"), True, "", " ", "a b", "5m", "allow",
              "2026-11-28T10:00:00Z", [], [1], ["x"], {}, {"x": 1}, {1: "x"}]


def _variants(event: dict[str, Any]) -> list[dict[str, Any]]:
    """`event` with each of its values (at any depth) replaced by each odd value, each key
    removed, and an unknown key added to each object."""
    out = []

    def paths(node: Any, at: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        keys = list(node) if isinstance(node, dict) else range(len(node))
        found = [at] if isinstance(node, dict) else []
        for k in keys:
            found.append((*at, k))
            if isinstance(node[k], (dict, list)):
                found.extend(paths(node[k], (*at, k)))
        return found

    for path in paths(event, ()):
        def changed(change: Any, path: tuple[Any, ...] = path) -> dict[str, Any]:
            copy = json.loads(json.dumps(event))
            node = copy
            for k in path[:-1]:
                node = node[k]
            change(node, path[-1]) if path else change(copy, None)
            return copy

        if not path or isinstance(_at(event, path), dict):
            out.append(changed(lambda n, k: (n[k] if k is not None else n).update(extra=1)))
        if path and path[-1] != "event":
            out.append(changed(lambda n, k: n.pop(k)))
            for odd in ODD_VALUES:
                out.append(changed(lambda n, k, odd=odd: n.__setitem__(k, odd)))
    return out


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        node = node[k]
    return node


@pytest.mark.parametrize("event", FULL_EVENTS, ids=lambda e: str(e["event"]))
def test_fast_event_refuses_every_near_miss_that_pydantic_refuses(event: dict[str, Any]) -> None:
    assert fast_event(event) is not None
    for variant in _variants(event):
        fast = fast_event(variant)
        if fast is not None:
            slow = _pydantic(variant)
            assert slow is not None, f"the fast path accepted what pydantic refuses: {variant!r}"
            _same(fast, slow)


ordinary_calls = st.fixed_dictionaries(
    {"ts": st.just("2026-11-28T10:00:05Z"), "event": st.just("call"),
     "agent": st.sampled_from([BOT, {"id": BOT}, {"id": BOT, "attrs": {"team": "eu"}}]),
     "tool": st.sampled_from(["crm.lookup", "payments.refund", "http.get"])},
    optional={"task": st.sampled_from(["t-1", "t-2"]),
              "args": st.dictionaries(st.sampled_from(["amount", "customer", "note"]),
                                      st.one_of(st.integers(0, 500), st.text(max_size=20),
                                                st.booleans(), st.none()), max_size=3),
              "intent": st.lists(st.sampled_from(["read", "write"]), max_size=2),
              "data": st.lists(st.sampled_from(["pii", "public"]), max_size=2),
              "target": st.fixed_dictionaries({"host": st.just("crm.internal"),
                                               "external": st.booleans()}),
              "expect": st.one_of(st.sampled_from(["allow", "deny", "ask"]),
                                  st.fixed_dictionaries({}, optional={
                                      "decision": st.sampled_from(["allow", "deny"]),
                                      "ttl": st.sampled_from(["5m", 300]),
                                      "rules": st.lists(st.sampled_from(["a", "b"]))}))})


@settings(max_examples=200, deadline=None)
@given(ordinary_calls)
def test_fast_event_takes_the_ordinary_calls_of_a_trace(value: dict[str, Any]) -> None:
    """The fast path is the path: calls of the usual shape (JSON as a trace holds it, small
    flat arguments) are never left to pydantic."""
    event = fast_event(json.loads(json.dumps(value)))
    assert isinstance(event, CallEvent)
    _same(event, _pydantic(value))


@pytest.mark.parametrize("value", [
    {"ts": "2026-11-28T10:00:00Z", "event": "task.start", "agent": BOT,
     "task": {"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-1"}},
     "chain": [{"principal": "user:alice", "kind": "human", "at": "2026-11-28T09:59:00Z"}]},
    {"ts": "2026-11-28T10:01:00Z", "event": "delegate", "task": "t-1", "from": BOT,
     "to": BILLING, "scope": {"tools": ["payments.refund"], "ttl": "5m"}},
    {"ts": "2026-11-28T10:02:00Z", "event": "observe", "task": "t-1", "data": ["pii"]},
    {"ts": "2026-11-28T10:03:00Z", "event": "task.end", "task": "t-1"},
    {"ts": "2026-11-28T10:03:00Z", "event": "request", "task_ended": True,
     "request": {"agent": {"id": BOT}, "tool": "x", "now": "2026-11-28T10:03:00Z"},
     "expect": {"decision": "deny", "rules": ["task.ended"]}, "audit": {"policy": "sha256:0"}},
])
def test_fast_event_takes_every_event_type(value: dict[str, Any]) -> None:
    event = fast_event(value)
    assert isinstance(event, (TaskStart, Delegate, Observe, TaskEnd, RequestEvent))
    _same(event, _pydantic(value))
    if isinstance(event, TaskStart):
        assert isinstance(event.task, TaskSpec) and isinstance(event.chain[0], Hop)
    if isinstance(event, Delegate):
        assert isinstance(event.scope, Scope) and event.scope.ttl == timedelta(minutes=5)
    if isinstance(event, RequestEvent):
        assert isinstance(event.expect, ExpectSpec)


# ---- what the fast paths made stricter: a call is refused where its request would be -------------

def test_a_call_with_an_impossible_tool_name_is_a_problem_line() -> None:
    # It used to be decided with the name as given: with a policy that permits every tool, a
    # malformed request could be allowed.
    value = {"ts": "2026-11-28T10:00:00Z", "event": "call", "agent": BOT, "tool": "crm lookup"}
    with pytest.raises(EventError, match="tool: a tool name is not empty"):
        parse_event(value)


def test_the_api_denies_a_call_with_an_impossible_tool_name() -> None:
    tasks = TaskRuntime(ENGINE, MemoryStore())
    d = tasks.decide(BOT, "crm lookup", now=T0)
    assert (d.decision, d.rules) == ("deny", ["request.invalid"])


def test_the_api_applies_the_request_limits_to_a_call() -> None:
    tasks = TaskRuntime(ENGINE, MemoryStore())
    tasks.start({"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-1"}},
                agent=BOT, at=T0)
    deep: dict[str, Any] = {}
    for _ in range(40):
        deep = {"a": deep}
    d = tasks.decide(BOT, "crm.lookup", task="t-1", now=T0, args={"customer": "c-1", "x": deep})
    assert (d.decision, d.rules) == ("deny", ["request.invalid"])
    assert "nested deeper than 32 levels" in d.errors[0]
    assert tasks.session("t-1")[1] == []  # a call that cannot be trusted joins no session


def test_the_api_keeps_its_own_copy_of_a_call() -> None:
    tasks = TaskRuntime(ENGINE, MemoryStore())
    tasks.start({"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-1"}},
                agent=BOT, at=T0)
    args = {"customer": "c-1"}
    tasks.decide(BOT, "crm.lookup", task="t-1", now=T0, args=args)
    args["customer"] = "c-2"
    assert tasks.session("t-1")[1][0].args == {"customer": "c-1"}


# ---- per-task state: shared where tasks start alike, never changed in place -----------------------

def test_tasks_started_alike_share_their_chain_and_stay_apart() -> None:
    store = MemoryStore()
    tasks = TaskRuntime(ENGINE, store)
    human = [{"principal": "user:alice", "kind": "human"}]
    for tid in ("t-1", "t-2"):
        tasks.start({"id": tid, "kind": "support_ticket", "params": {"customer": "c-1"}},
                    agent=BOT, chain=human, at=T0)
    one, two = store.task("t-1"), store.task("t-2")
    assert one is not None and two is not None
    assert one.root is two.root and one.chains is two.chains
    tasks.delegate("t-1", BOT, BILLING, scope={"tools": ["payments.refund"]},
                   at=T0 + timedelta(seconds=1))
    tasks.decide(BOT, "crm.lookup", task="t-1", args={"customer": "c-1"},
                 now=T0 + timedelta(seconds=2))
    tasks.observe("t-1", ["pii"], at=T0 + timedelta(seconds=3))
    one, two = store.task("t-1"), store.task("t-2")
    assert one is not None and two is not None
    assert BILLING in one.chains and set(two.chains) == {BOT}
    assert (one.seen, len(one.history)) == (["pii"], 1)
    assert (two.seen, len(two.history), list(two.history)) == ([], 0, [])
    # A call in the second task is decided on its own state, not the first one's.
    d = tasks.decide(BILLING, "payments.refund", task="t-2",
                     args={"amount": 10, "customer": "c-1"}, now=T0 + timedelta(seconds=4))
    assert "delegation.mismatch" in d.rules


# ---- JSON lines: the scanner called directly, as `decode` would decode ---------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=8)
_AROUND = st.sampled_from(["", " ", "\t", "\n", "x", ",", "}", "]", " 1", '{"a": 1}', "//"])


def _decoded(text: str) -> object:
    from agp.jsonio import JSONInputError, loads
    try:
        return ("ok", repr(loads(text)))
    except JSONInputError as exc:
        return ("error", exc.message, exc.line, exc.column)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(value=_JSON, before=_AROUND, after=_AROUND, dup=st.booleans())
def test_loads_answers_as_the_decoder_does(value: object, before: str, after: str,
                                           dup: bool) -> None:
    """`loads` calls the decoder's scanner itself and hands the decoder anything the scanner
    does not take whole: values, and errors with their positions, are those of the decoder."""
    import agp.jsonio as jsonio

    body = json.dumps(value)
    if dup and body.startswith("{") and body != "{}":
        body = body[:-1] + ', "' + next(iter(value)) + '": 0}'  # type: ignore[call-overload]
    text = before + body + after
    ours = _decoded(text)

    def declined(_text: str, _at: int) -> tuple[Any, int]:
        raise StopIteration(0)

    real = jsonio._SCAN
    jsonio._SCAN = declined  # every text through `decode`, as before the fast path
    try:
        theirs = _decoded(text)
    finally:
        jsonio._SCAN = real
    assert ours == theirs
