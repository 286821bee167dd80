"""Request validation fast path: exactly as strict as `agp.model.parse_request`, a fraction of
the cost.

`fast_request(value)` returns a validated request object, or None when it cannot vouch for the
input; the caller then asks pydantic (`parse_request`), which either accepts the request or
produces the error messages. The property that matters, held by a hypothesis test: whenever the
fast path accepts, pydantic accepts too and builds equal values; and on JSON-shaped input the fast
path accepts everything pydantic accepts. Anything unusual (subclasses of dict, list or str,
model instances, non-string keys) is left to pydantic.

The objects have the attributes of the pydantic models (`agp.model.Request`, `Agent`, `Task`,
`Hop`, `Scope`), so that the shared steps (envelope, TTL, environment) run on either.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeGuard, get_args

from agp.model import HopKind, is_tool_name, parse_json_duration, parse_timestamp
from agp.values import INT_BOUND

_REQUEST_KEYS = frozenset(("agent", "task", "chain", "tool", "intent", "args", "data", "target",
                           "context", "now"))
_AGENT_KEYS = frozenset(("id", "attrs"))
_TASK_KEYS = frozenset(("kind", "id", "params", "objective", "started_at"))
_HOP_KEYS = frozenset(("principal", "kind", "at", "scope"))
_SCOPE_KEYS = frozenset(("tools", "intents", "data", "ttl"))
_HOP_KINDS = frozenset(get_args(HopKind))


class FastAgent:
    __slots__ = ("id", "attrs")

    def __init__(self, id: str, attrs: dict[str, Any]):  # noqa: A002 - the field's name
        self.id = id
        self.attrs = attrs


class FastTask:
    __slots__ = ("kind", "id", "params", "objective", "started_at")

    def __init__(self, kind: str, id: str | None, params: dict[str, Any],  # noqa: A002
                 objective: str | None, started_at: datetime | None):
        self.kind = kind
        self.id = id
        self.params = params
        self.objective = objective
        self.started_at = started_at


class FastScope:
    __slots__ = ("tools", "intents", "data", "ttl")

    def __init__(self, tools: list[str] | None, intents: list[str] | None, data: str | None,
                 ttl: timedelta | None):
        self.tools = tools
        self.intents = intents
        self.data = data
        self.ttl = ttl

    def model_dump(self, *, exclude_none: bool = False) -> dict[str, Any]:
        out = {"tools": self.tools, "intents": self.intents, "data": self.data, "ttl": self.ttl}
        if exclude_none:
            return {k: (list(v) if type(v) is list else v) for k, v in out.items()
                    if v is not None}
        return out


class FastHop:
    __slots__ = ("principal", "kind", "at", "scope")

    def __init__(self, principal: str, kind: str, at: datetime | None, scope: FastScope | None):
        self.principal = principal
        self.kind = kind
        self.at = at
        self.scope = scope


class FastRequest:
    __slots__ = ("agent", "task", "chain", "tool", "intent", "args", "data", "target", "context",
                 "now")

    def __init__(self, agent: FastAgent, task: FastTask | None, chain: list[FastHop], tool: str,
                 intent: list[str], args: dict[str, Any], data: list[str],
                 target: dict[str, Any] | None, context: dict[str, Any], now: datetime | None):
        self.agent = agent
        self.task = task
        self.chain = chain
        self.tool = tool
        self.intent = intent
        self.args = args
        self.data = data
        self.target = target
        self.context = context
        self.now = now


_EMPTY: dict[str, Any] = {}
_NO_LIST: list[Any] = []


# The fast path vouches only for small requests: every string at most SMALL_STRING characters,
# every list at most SMALL_LIST items, free-form objects flat (scalar values) and at most
# SMALL_LIST entries. Such a request is far inside agp.limits (at most a few thousand values,
# five levels deep), so it needs no limit walk; anything bigger goes to pydantic, whose model
# applies the limits exactly.
SMALL_STRING = 4096
SMALL_LIST = 64


def _str(value: object) -> TypeGuard[str]:
    return type(value) is str and len(value) <= SMALL_STRING


def _flat(value: object) -> bool:
    """A free-form JSON object (args, context, ...) small and flat enough to vouch for, whose
    numbers are within the bounds (agp.values.number_ok: finite, and not too large a float)."""
    if type(value) is not dict or len(value) > SMALL_LIST:
        return False
    for k, v in value.items():
        if not _str(k):
            return False
        t = type(v)
        if t is str:
            if len(v) > SMALL_STRING:
                return False
        elif t is float:
            if v - v != 0.0:  # NaN and the infinities
                return False
        elif t is int:
            if not -INT_BOUND < v < INT_BOUND:
                return False
        elif not (t is bool or v is None):
            return False
    return True


def _tool(value: object) -> TypeGuard[str]:
    return type(value) is str and len(value) <= SMALL_STRING and is_tool_name(value)


def _object(value: object) -> bool:
    """A JSON object as pydantic's strict `dict[str, Any]` takes it: a dict with string keys."""
    if type(value) is not dict:
        return False
    for k in value:
        if type(k) is not str:
            return False
    return True


def _strings(value: object) -> bool:
    if type(value) is not list or len(value) > SMALL_LIST:
        return False
    for item in value:
        if not _str(item):
            return False
    return True


def _time(value: object) -> datetime | None:
    """A timestamp (`value` is not None), or None when the fast path cannot vouch for it."""
    if type(value) is str or type(value) is datetime:
        try:
            return parse_timestamp(value)
        except ValueError:
            return None
    return None


def _scope(value: Any) -> FastScope | None:
    if not _object(value) or not value.keys() <= _SCOPE_KEYS:
        return None
    tools, intents = value.get("tools"), value.get("intents")
    data, ttl = value.get("data"), value.get("ttl")
    if (tools is not None and not _strings(tools)) or (intents is not None and not
                                                       _strings(intents)):
        return None
    if data is not None and not _str(data):
        return None
    if ttl is not None:
        if type(ttl) not in (str, int, float):
            return None
        try:
            ttl = parse_json_duration(ttl)
        except ValueError:
            return None
    return FastScope(None if tools is None else list(tools),
                     None if intents is None else list(intents), data, ttl)


def _hop(value: Any) -> FastHop | None:
    if not _object(value) or not value.keys() <= _HOP_KEYS:
        return None
    principal, kind = value.get("principal"), value.get("kind")
    if not _str(principal) or not principal or type(kind) is not str or kind not in _HOP_KINDS:
        return None
    at = value.get("at")
    if at is not None:
        at = _time(at)
        if at is None:
            return None
    scope = value.get("scope")
    if scope is not None:
        scope = _scope(scope)
        if scope is None:
            return None
    return FastHop(principal, kind, at, scope)


def _chain(value: object) -> list[FastHop] | None:
    """The hops of a `chain` the request gives."""
    if type(value) is not list or len(value) > SMALL_LIST:
        return None
    hops = []
    for item in value:
        hop = _hop(item)
        if hop is None:
            return None
        hops.append(hop)
    return hops


def _agent(value: Any) -> FastAgent | None:
    if type(value) is not dict or not value.keys() <= _AGENT_KEYS:
        return None
    ident = value.get("id")
    attrs = value.get("attrs", _EMPTY)
    if not _str(ident) or not _flat(attrs):
        return None
    return FastAgent(ident, attrs if attrs is not _EMPTY else {})


def _task(value: Any) -> FastTask | None:
    if not _object(value) or not value.keys() <= _TASK_KEYS:
        return None
    kind = value.get("kind")
    ident, objective = value.get("id"), value.get("objective")
    if not _str(kind) or (ident is not None and not _str(ident)) or (
            objective is not None and not _str(objective)):
        return None
    params = value.get("params", _EMPTY)
    if not _flat(params):
        return None
    started = value.get("started_at")
    if started is not None:
        started = _time(started)
        if started is None:
            return None
    return FastTask(kind, ident, params if params is not _EMPTY else {}, objective, started)


def fast_request(value: dict[str, Any]) -> FastRequest | None:
    """A validated request, or None when pydantic must decide (and explain) instead."""
    if not value.keys() <= _REQUEST_KEYS:
        return None
    agent = _agent(value.get("agent"))
    tool = value.get("tool")
    if agent is None or not _tool(tool):
        return None
    intent = value.get("intent", _NO_LIST)
    data = value.get("data", _NO_LIST)
    if (intent is not _NO_LIST and not _strings(intent)) or (
            data is not _NO_LIST and not _strings(data)):
        return None
    args = value.get("args", _EMPTY)
    context = value.get("context", _EMPTY)
    target = value.get("target")
    if not _flat(args) or not _flat(context) or (target is not None and not _flat(target)):
        return None
    task = value.get("task")
    if task is not None:
        task = _task(task)
        if task is None:
            return None
    chain = value.get("chain", _NO_LIST)
    # Most requests have no chain: they pay for no call.
    chain = [] if chain is _NO_LIST else _chain(chain)
    if chain is None:
        return None
    now = value.get("now")
    if now is not None:
        now = _time(now)
        if now is None:
            return None
    return FastRequest(agent, task, chain, tool, [] if intent is _NO_LIST else intent,
                       args if args is not _EMPTY else {}, [] if data is _NO_LIST else data,
                       target, context if context is not _EMPTY else {}, now)
