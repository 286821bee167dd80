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

from datetime import datetime
from typing import get_args

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

    def __init__(self, id, attrs):  # noqa: A002 - the field's name
        self.id = id
        self.attrs = attrs


class FastTask:
    __slots__ = ("kind", "id", "params", "objective", "started_at")

    def __init__(self, kind, id, params, objective, started_at):  # noqa: A002
        self.kind = kind
        self.id = id
        self.params = params
        self.objective = objective
        self.started_at = started_at


class FastScope:
    __slots__ = ("tools", "intents", "data", "ttl")

    def __init__(self, tools, intents, data, ttl):
        self.tools = tools
        self.intents = intents
        self.data = data
        self.ttl = ttl

    def model_dump(self, *, exclude_none: bool = False) -> dict:
        out = {"tools": self.tools, "intents": self.intents, "data": self.data, "ttl": self.ttl}
        if exclude_none:
            return {k: (list(v) if type(v) is list else v) for k, v in out.items()
                    if v is not None}
        return out


class FastHop:
    __slots__ = ("principal", "kind", "at", "scope")

    def __init__(self, principal, kind, at, scope):
        self.principal = principal
        self.kind = kind
        self.at = at
        self.scope = scope


class FastRequest:
    __slots__ = ("agent", "task", "chain", "tool", "intent", "args", "data", "target", "context",
                 "now")

    def __init__(self, agent, task, chain, tool, intent, args, data, target, context, now):
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


_EMPTY: dict = {}
_NO_LIST: list = []


# The fast path vouches only for small requests: every string at most SMALL_STRING characters,
# every list at most SMALL_LIST items, free-form objects flat (scalar values) and at most
# SMALL_LIST entries. Such a request is far inside agp.limits (at most a few thousand values,
# five levels deep), so it needs no limit walk; anything bigger goes to pydantic, whose model
# applies the limits exactly.
SMALL_STRING = 4096
SMALL_LIST = 64


def _str(value) -> bool:
    return type(value) is str and len(value) <= SMALL_STRING


def _flat(value) -> bool:
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


def _tool(value) -> bool:
    return type(value) is str and len(value) <= SMALL_STRING and is_tool_name(value)


def _object(value) -> bool:
    """A JSON object as pydantic's strict `dict[str, Any]` takes it: a dict with string keys."""
    if type(value) is not dict:
        return False
    for k in value:
        if type(k) is not str:
            return False
    return True


def _strings(value) -> bool:
    if type(value) is not list or len(value) > SMALL_LIST:
        return False
    for item in value:
        if not _str(item):
            return False
    return True


def _time(value):
    """A timestamp, or the exception class as a marker that the fast path cannot vouch."""
    if type(value) is str or type(value) is datetime:
        try:
            return parse_timestamp(value)
        except ValueError:
            return ValueError
    return ValueError


def _scope(value):
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


def _hop(value):
    if not _object(value) or not value.keys() <= _HOP_KEYS:
        return None
    principal, kind = value.get("principal"), value.get("kind")
    if not _str(principal) or not principal or type(kind) is not str or kind not in _HOP_KINDS:
        return None
    at = value.get("at")
    if at is not None:
        at = _time(at)
        if at is ValueError:
            return None
    scope = value.get("scope")
    if scope is not None:
        scope = _scope(scope)
        if scope is None:
            return None
    return FastHop(principal, kind, at, scope)


def _task(value):
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
        if started is ValueError:
            return None
    return FastTask(kind, ident, params if params is not _EMPTY else {}, objective, started)


def fast_request(value: dict):
    """A validated request, or None when pydantic must decide (and explain) instead."""
    if not value.keys() <= _REQUEST_KEYS:
        return None
    agent = value.get("agent")
    if type(agent) is not dict or not agent.keys() <= _AGENT_KEYS:
        return None
    ident = agent.get("id")
    attrs = agent.get("attrs", _EMPTY)
    tool = value.get("tool")
    if not _str(ident) or not _tool(tool) or not _flat(attrs):
        return None
    intent = value.get("intent", _NO_LIST)
    data = value.get("data", _NO_LIST)
    if (intent is not _NO_LIST and not _strings(intent)) or (
            data is not _NO_LIST and not _strings(data)):
        return None
    args = value.get("args", _EMPTY)
    context = value.get("context", _EMPTY)
    if not _flat(args) or not _flat(context):
        return None
    target = value.get("target")
    if target is not None and not _flat(target):
        return None
    task = value.get("task")
    if task is not None:
        task = _task(task)
        if task is None:
            return None
    chain = value.get("chain", _NO_LIST)
    if chain is _NO_LIST:
        chain = []
    elif type(chain) is not list or len(chain) > SMALL_LIST:
        return None
    elif chain:
        hops = []
        for item in chain:
            hop = _hop(item)
            if hop is None:
                return None
            hops.append(hop)
        chain = hops
    now = value.get("now")
    if now is not None:
        now = _time(now)
        if now is ValueError:
            return None
    return FastRequest(
        FastAgent(ident, attrs if attrs is not _EMPTY else {}), task, chain, tool,
        [] if intent is _NO_LIST else intent, args if args is not _EMPTY else {},
        [] if data is _NO_LIST else data,
        target, context if context is not _EMPTY else {}, now)
