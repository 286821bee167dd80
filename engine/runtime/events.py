"""Trace events (FORMATS.md, "Trace"): one pydantic model per event type, extra fields refused.

The models reuse the Request's own pieces (`Agent`, `Hop`, `Scope`, tool names, timestamps,
durations), so a value that a Request would refuse is refused here too, at the line that carries
it.

`parse_event` first tries a fast path (`fast_event`) that checks the common shapes by hand and
builds the very models pydantic would build; whatever it cannot vouch for goes to pydantic,
which accepts it or says what is wrong. A hypothesis test holds the two equal
(tests/test_runtime_fast.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar, Union, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationError,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from agp.compile.request import fast_request
from agp.diagnostics import did_you_mean
from agp.model import (
    Agent,
    Duration,
    Hop,
    HopKind,
    JSONObject,
    Scope,
    Timestamp,
    ToolName,
    parse_json_duration,
    parse_timestamp,
)
from agp.values import json_problem

WORDS = ("allow", "deny", "ask")
M = TypeVar("M", bound=BaseModel)


def _word(value: Any) -> str:
    if isinstance(value, str) and value in WORDS:
        return value
    raise PydanticCustomError("decision_word", "{value} is not a decision; use allow, deny or ask",
                              {"value": json.dumps(value)})


Word = Annotated[str, PlainValidator(_word)]


def _agent(value: Any) -> Any:
    """In events, `agent` is the agent's id string or an object as in a Request."""
    return {"id": value} if isinstance(value, str) else value


AgentRef = Annotated[Agent, BeforeValidator(_agent)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TaskSpec(_Event):
    """The task of a `task.start` event; it starts at the event's `ts`."""

    id: str = Field(min_length=1)
    kind: str
    params: JSONObject = Field(default_factory=dict)
    objective: str | None = None


class ExpectSpec(_Event):
    """A partial expectation: only the fields given are checked."""

    decision: Word | None = None
    ttl: Duration | None = None  # whole seconds, or a duration string such as "4m"
    rules: list[str] | None = None  # every name listed must be among the decision's rules
    reasons: list[str] | None = None  # every text listed must be among the decision's reasons


def _expect_kind(value: Any) -> str | None:
    return "word" if isinstance(value, str) else "object" if isinstance(value, dict) else None


# A word or an object, told apart by the JSON type, so that a wrong value gets one message about
# what it is instead of one per member of the union.
Expect = Annotated[
    Union[Annotated[Word, Tag("word")], Annotated[ExpectSpec, Tag("object")]],
    Discriminator(_expect_kind, custom_error_type="expect",
                  custom_error_message="expected a decision word (allow, deny or ask) or an "
                                       "object with any of decision, ttl, rules, reasons"),
]
_TAGS = {"word", "object"}


class TaskStart(_Event):
    ts: Timestamp
    event: Literal["task.start"]
    task: TaskSpec
    agent: AgentRef
    chain: list[Hop] = Field(default_factory=list)


class Delegate(_Event):
    ts: Timestamp
    event: Literal["delegate"]
    task: str
    from_: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)
    scope: Scope | None = None


class CallEvent(_Event):
    ts: Timestamp
    event: Literal["call"]
    task: str | None = None
    agent: AgentRef
    tool: ToolName
    # default_factory: pydantic deep-copies a literal mutable default on every event.
    intent: list[str] = Field(default_factory=list)
    args: JSONObject = Field(default_factory=dict)
    data: list[str] = Field(default_factory=list)
    target: JSONObject | None = None
    context: JSONObject = Field(default_factory=dict)
    expect: Expect | None = None


class Observe(_Event):
    """What a call returned, as the service classified it: classes added to `task.seen`."""

    ts: Timestamp
    event: Literal["observe"]
    task: str
    data: list[str]


class TaskEnd(_Event):
    ts: Timestamp
    event: Literal["task.end"]
    task: str


class RequestEvent(_Event):
    ts: Timestamp
    event: Literal["request"]
    request: Any  # decided as it stands: a malformed request is denied with request.invalid
    # The task state the decision depended on, beyond the request: the task had been ended (the
    # task runtime knows it, and the decision log records it).
    task_ended: bool = False
    expect: Expect | None = None
    audit: JSONObject | None = None  # what the decision log notes (policy hash, digest); not read


Event = Union[TaskStart, Delegate, CallEvent, Observe, TaskEnd, RequestEvent]

EVENTS: dict[str, type[Event]] = {
    "task.start": TaskStart,
    "delegate": Delegate,
    "call": CallEvent,
    "observe": Observe,
    "task.end": TaskEnd,
    "request": RequestEvent,
}


class EventError(ValueError):
    """An event that does not have the documented shape."""


def parse_event(value: Any) -> Event:
    """Validate one decoded JSON line as an event; raise EventError with a readable message."""
    if not isinstance(value, dict):
        raise EventError(f"an event is a JSON object, not {_json_type(value)}")
    name = value.get("event")
    if name is None:
        raise EventError("missing field `event`")
    model = EVENTS.get(name) if isinstance(name, str) else None
    if model is None:
        raise EventError(f"unknown event {json.dumps(name)}; expected one of " + ", ".join(EVENTS))
    event = fast_event(value)
    if event is None:  # pydantic decides, and says what is wrong
        try:
            event = model.model_validate(value)
        except ValidationError as exc:
            raise EventError(event_messages(exc, model, value)) from None
        except (RecursionError, ValueError, TypeError) as exc:
            raise EventError(f"invalid `{name}` event: {exc}") from None
    if isinstance(event, RequestEvent) and not _has_now(event.request):
        raise EventError("request.now is required in a trace (it is the decision time)")
    return event


# ---- the fast path ------------------------------------------------------------------------------

_new = object.__new__
# BaseModel's own slots, set through their descriptors: `object.__setattr__` looks each name up
# first, and this is done for several models per event.
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def construct(model: type[M], fields: dict[str, Any], fields_set: set[str]) -> M:
    """An instance of `model` from values already validated, exactly as `model.model_construct`
    builds it (the same `__dict__`, fields set, no extra, no private attributes) without its loop
    over the fields: this is on the path of every call. `fields` holds every field, in the
    model's order. (tests/test_runtime_fast.py holds it equal to `model_construct`.)"""
    instance = _new(model)
    _set_dict(instance, fields)
    _set_fields_set(instance, fields_set)
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


def fast_event(value: dict[str, Any]) -> Event | None:
    """The event pydantic would build from `value`, or None when the fast path cannot vouch for
    it (pydantic then accepts it or says what is wrong).

    Only the commonest shapes are vouched for: exact JSON types, and for a call, the small
    requests agp.compile.request vouches for (so that a call's request is within agp.limits).
    """
    name = value.get("event")
    build = _FAST.get(name) if type(name) is str else None
    ts = value.get("ts")
    if build is None or (type(ts) is not str and type(ts) is not datetime):
        return None
    try:
        when = parse_timestamp(ts)
    except ValueError:
        return None
    return build(value, when)


_CALL_KEYS = frozenset(("ts", "event", "task", "agent", "tool", "intent", "args", "data",
                        "target", "context", "expect"))
# A call's fields that are a request's, besides `agent` and `tool`.
_CALL_REQUEST = ("intent", "args", "data", "target", "context")


def _fast_call(value: dict[str, Any], ts: datetime) -> CallEvent | None:
    task = value.get("task")
    if not value.keys() <= _CALL_KEYS or (task is not None and type(task) is not str):
        return None
    ok, expect = _fast_expect(value.get("expect"))
    if not ok:
        return None
    agent = value.get("agent")
    given = {k: value[k] for k in _CALL_REQUEST if k in value}
    given["agent"] = {"id": agent} if type(agent) is str else agent
    given["tool"] = value.get("tool")
    # The request's own validation: a call is refused exactly where its request would be.
    req = fast_request(given)
    if req is None:
        return None
    # The values are the event's own, not copies (as pydantic would make): a trace's events
    # are decoded afresh and owned here; the task runtime's API copies what its caller gave.
    if type(agent) is str:
        model = _agent_named(agent)
    else:
        a = req.agent
        model = construct(Agent, {"id": a.id, "svid": a.svid, "attrs": dict(a.attrs)},
                          set(given["agent"]))
    return construct(CallEvent, {
        "ts": ts, "event": "call", "task": task, "agent": model, "tool": req.tool,
        "intent": req.intent, "args": req.args, "data": req.data, "target": req.target,
        "context": req.context, "expect": expect}, set(value))


def _agent_named(agent: str) -> Agent:
    """The Agent of an event that names it by its id string. A trace repeats a few agents: one
    model each (an Agent is immutable; its `attrs` are empty and never changed)."""
    model = _AGENTS.get(agent)
    if model is None:
        if len(_AGENTS) >= _CACHED:
            _AGENTS.clear()
        model = _AGENTS[agent] = construct(Agent, {"id": agent, "svid": None, "attrs": {}},
                                           {"id"})
    return model


def _fast_start(value: dict[str, Any], ts: datetime) -> TaskStart | None:
    spec, agent = value.get("task"), value.get("agent")
    if not value.keys() <= _START_KEYS or type(agent) is not str or type(spec) is not dict or \
            not spec.keys() <= _SPEC_KEYS:
        return None
    ident, kind, objective = spec.get("id"), spec.get("kind"), spec.get("objective")
    params = _json_object(spec.get("params", _NO_PARAMS))
    if type(ident) is not str or not ident or type(kind) is not str or params is None or (
            objective is not None and type(objective) is not str):
        return None
    chain = value.get("chain", _NO_CHAIN)
    hops = [] if chain is _NO_CHAIN else _fast_hops(chain)
    if hops is None:
        return None
    task = construct(TaskSpec, {"id": ident, "kind": kind, "params": params,
                                "objective": objective}, _fields(spec))
    return construct(TaskStart, {"ts": ts, "event": "task.start", "task": task,
                                 "agent": _agent_named(agent), "chain": hops}, _fields(value))


def _fast_delegate(value: dict[str, Any], ts: datetime) -> Delegate | None:
    task, src, dst, scope = value.get("task"), value.get("from"), value.get("to"), \
        value.get("scope")
    if not value.keys() <= _DELEGATE_KEYS or type(task) is not str or type(src) is not str or \
            not src or type(dst) is not str or not dst:
        return None
    if scope is not None:
        scope = _fast_scope(scope)
        if scope is None:
            return None
    return construct(Delegate, {"ts": ts, "event": "delegate", "task": task, "from_": src,
                                "to": dst, "scope": scope},
                     _fields(value.keys() - {"from"} | ({"from_"} if "from" in value else set())))


def _fast_hops(value: Any) -> list[Hop] | None:
    if type(value) is not list:
        return None
    hops = []
    for hop in value:
        if type(hop) is not dict or not hop.keys() <= _HOP_KEYS:
            return None
        principal, kind, at, scope = hop.get("principal"), hop.get("kind"), hop.get("at"), \
            hop.get("scope")
        if type(principal) is not str or not principal or type(kind) is not str or \
                kind not in _HOP_KINDS:
            return None
        if at is not None:
            if type(at) is not str:
                return None
            try:
                at = parse_timestamp(at)
            except ValueError:
                return None
        if scope is not None:
            scope = _fast_scope(scope)
            if scope is None:
                return None
        hops.append(construct(Hop, {"principal": principal, "kind": kind, "at": at,
                                    "scope": scope}, _fields(hop)))
    return hops


def _fast_scope(value: Any) -> Scope | None:
    if type(value) is not dict or not value.keys() <= _SCOPE_KEYS:
        return None
    tools, intents, data, ttl = value.get("tools"), value.get("intents"), value.get("data"), \
        value.get("ttl")
    if tools is not None:
        tools = _strings(tools)
        if tools is None:
            return None
    if intents is not None:
        intents = _strings(intents)
        if intents is None:
            return None
    if data is not None and type(data) is not str:
        return None
    if ttl is not None:
        ttl = _duration(ttl)
        if ttl is None:
            return None
    return construct(Scope, {"tools": tools, "intents": intents, "data": data, "ttl": ttl},
                     _fields(value))


def _duration(value: Any) -> timedelta | None:
    if type(value) is not str and type(value) is not int and type(value) is not float:
        return None
    try:
        return parse_json_duration(value)
    except ValueError:
        return None


def _fields(keys: Iterable[str]) -> set[str]:
    """The fields set of a model built from these keys: one shared set per combination (pydantic
    copies a fields set before it changes one), so that a stored hop or scope does not carry a
    set of its own."""
    key = frozenset(keys)
    fields = _FIELDS.get(key)
    if fields is None:
        if len(_FIELDS) >= _CACHED:
            _FIELDS.clear()
        fields = _FIELDS[key] = set(key)
    return fields


# Agents by id string, and fields sets by their keys (each cache is emptied when full).
_AGENTS: dict[str, Agent] = {}
_FIELDS: dict[frozenset[str], set[str]] = {}
_CACHED = 4096
_START_KEYS = frozenset(("ts", "event", "task", "agent", "chain"))
_SPEC_KEYS = frozenset(("id", "kind", "params", "objective"))
_DELEGATE_KEYS = frozenset(("ts", "event", "task", "from", "to", "scope"))
_HOP_KEYS = frozenset(("principal", "kind", "at", "scope"))
_HOP_KINDS = frozenset(get_args(HopKind))
_SCOPE_KEYS = frozenset(("tools", "intents", "data", "ttl"))
_NO_PARAMS: dict[str, Any] = {}
_NO_CHAIN: list[Any] = []


def _fast_observe(value: dict[str, Any], ts: datetime) -> Observe | None:
    task, data = value.get("task"), _strings(value.get("data"))
    if not value.keys() <= _OBSERVE_KEYS or type(task) is not str or data is None:
        return None
    return construct(Observe, {"ts": ts, "event": "observe", "task": task, "data": data},
                     set(value))


def _fast_end(value: dict[str, Any], ts: datetime) -> TaskEnd | None:
    task = value.get("task")
    if not value.keys() <= _END_KEYS or type(task) is not str:
        return None
    return construct(TaskEnd, {"ts": ts, "event": "task.end", "task": task}, set(value))


def _fast_request(value: dict[str, Any], ts: datetime) -> RequestEvent | None:
    ended, audit = value.get("task_ended", False), value.get("audit")
    if not value.keys() <= _REQUEST_KEYS or "request" not in value or type(ended) is not bool:
        return None
    if audit is not None:
        audit = _json_object(audit)
        if audit is None:
            return None
    ok, expect = _fast_expect(value.get("expect"))
    if not ok:
        return None
    return construct(RequestEvent, {"ts": ts, "event": "request", "request": value["request"],
                                    "task_ended": ended, "expect": expect, "audit": audit},
                     set(value))


_OBSERVE_KEYS = frozenset(("ts", "event", "task", "data"))
_END_KEYS = frozenset(("ts", "event", "task"))
_REQUEST_KEYS = frozenset(("ts", "event", "request", "task_ended", "expect", "audit"))
_EXPECT_KEYS = frozenset(("decision", "ttl", "rules", "reasons"))
_FAST: dict[str, Callable[[dict[str, Any], datetime], Event | None]] = {
    "call": _fast_call, "observe": _fast_observe, "task.end": _fast_end, "request": _fast_request,
    "task.start": _fast_start, "delegate": _fast_delegate}


def _fast_expect(value: Any) -> tuple[bool, Expect | None]:
    """(True, the expectation) when the fast path vouches for it, else (False, None)."""
    if value is None:
        return True, None
    if type(value) is str:
        return value in WORDS, value
    if type(value) is not dict or not value.keys() <= _EXPECT_KEYS:
        return False, None
    decision, ttl = value.get("decision"), value.get("ttl")
    rules, reasons = value.get("rules"), value.get("reasons")
    if decision is not None and (type(decision) is not str or decision not in WORDS):
        return False, None
    if ttl is not None:
        ttl = _duration(ttl)
        if ttl is None:
            return False, None
    if rules is not None:
        rules = _strings(rules)
        if rules is None:
            return False, None
    if reasons is not None:
        reasons = _strings(reasons)
        if reasons is None:
            return False, None
    return True, construct(ExpectSpec, {"decision": decision, "ttl": ttl, "rules": rules,
                                        "reasons": reasons}, set(value))


def _strings(value: Any) -> list[str] | None:
    """A copy of a list of strings (as pydantic makes one), or None."""
    if type(value) is not list:
        return None
    for item in value:
        if type(item) is not str:
            return None
    return list(value)


def _json_object(value: Any) -> dict[str, Any] | None:
    """A copy of a free-form JSON object (agp.model.JSONObject), or None."""
    if type(value) is not dict:
        return None
    for key in value:
        if type(key) is not str:
            return None
    return dict(value) if json_problem(value) is None else None


def field_path(loc: tuple[int | str, ...]) -> str:
    """`chain[0].scope.ttl`: the path of a field, as in the JSON, without union tags."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in _TAGS:
            out += ("." if out else "") + ("from" if part == "from_" else str(part))
    return out


_EXPECTED = {"string_type": "a string", "list_type": "a list", "dict_type": "an object",
             "model_type": "an object", "bool_type": "true or false", "int_type": "an integer",
             "float_type": "a number"}


def error_text(err: ErrorDetails) -> str:
    """One pydantic error's message, in agp's words (the path is printed before it)."""
    kind = err["type"]
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in _EXPECTED:
        wanted = "an id string or an object" if err["loc"] == ("agent",) else _EXPECTED[kind]
        return f"expected {wanted}, not {_json_type(err['input'])}"
    return err["msg"].removeprefix("Value error, ")


def _names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


# The models whose unknown fields get a did-you-mean, by where they sit in an event.
_NESTED: dict[str, type[BaseModel]] = {"expect": ExpectSpec, "task": TaskSpec}


def event_messages(exc: ValidationError, model: type[BaseModel], value: dict[str, Any]) -> str:
    """What is wrong with an event, one clause per problem, each led by the field's path."""
    name = value["event"]
    out, missing = [], []
    for err in exc.errors(include_url=False):
        where = field_path(err["loc"])
        if err["type"] == "missing" and "." not in where and "[" not in where:
            missing.append(f"`{where}`")
        elif err["type"] == "extra_forbidden":
            parent, _, key = where.rpartition(".")
            known = _names(_NESTED[parent]) if parent in _NESTED else [] if parent else \
                _names(model)
            hint = did_you_mean(key, known)
            what = "unknown field" if parent else f"unknown field of a `{name}` event"
            out.append(f"{where}: {what}" + (f"; {hint}" if hint else ""))
        else:
            out.append(f"{where}: {error_text(err)}" if where else error_text(err))
    if missing:
        needs = [f.alias or n for n, f in model.model_fields.items()
                 if f.is_required() and n != "event"]
        note = (f"missing {', '.join(missing)}; a `{name}` event needs "
                f"{', '.join(needs[:-1])} and {needs[-1]}")
        if name == "request" and "request" not in value and "audit" in value:
            note += (" (this decision log line keeps only a digest of its request: the log was "
                     "written with include_request=False, and cannot be replayed)")
        out.insert(0, note)
    return "; ".join(out)


def _has_now(request: Any) -> bool:
    # Only a missing `now` is this reader's business; anything else wrong with the request is
    # decided by the engine (deny, request.invalid), so that a trace can test it.
    return not isinstance(request, dict) or "now" in request


def _json_type(value: Any) -> str:
    return {list: "a list", dict: "an object", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def expected_ttl(expect: ExpectSpec) -> int | None:
    if expect.ttl is None:
        return None
    return int(expect.ttl // timedelta(seconds=1)) if expect.ttl % timedelta(seconds=1) == \
        timedelta(0) else -1  # a fractional ttl never equals a decision's whole seconds


