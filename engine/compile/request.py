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

import linecache
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeGuard, get_args

from agp.limits import MAX_LIST_LENGTH, MAX_REQUEST_NODES
from agp.model import (
    HistoryView,
    HopKind,
    SessionSummary,
    is_tool_name,
    parse_json_duration,
    parse_timestamp,
)
from agp.values import INT_BOUND

_REQUEST_KEYS = frozenset(("agent", "task", "chain", "tool", "intent", "args", "data", "target",
                           "context", "now"))
_AGENT_KEYS = frozenset(("id", "svid", "attrs"))
_TASK_KEYS = frozenset(("kind", "id", "params", "objective", "started_at", "seen", "history"))
_ITEM_KEYS = frozenset(("tool", "intent", "data", "args", "decision", "at"))
_DECIDED = frozenset(("allow", "deny", "ask"))
_HOP_KEYS = frozenset(("principal", "kind", "at", "scope"))
_SCOPE_KEYS = frozenset(("tools", "intents", "data", "ttl"))
_HOP_KINDS = frozenset(get_args(HopKind))


class FastAgent:
    __slots__ = ("id", "svid", "attrs")

    def __init__(self, id: str | None, svid: str | None,  # noqa: A002 - the field's name
                 attrs: dict[str, Any]):
        self.id = id
        self.svid = svid
        self.attrs = attrs


class FastHistoryItem:
    __slots__ = ("tool", "intent", "data", "args", "decision", "at")

    def __init__(self, tool: str, intent: list[str], data: list[str], args: dict[str, Any],
                 decision: str, at: datetime):
        self.tool = tool
        self.intent = intent
        self.data = data
        self.args = args
        self.decision = decision
        self.at = at


_NO_HISTORY = HistoryView((), 0, SessionSummary.EMPTY)


class FastTask:
    __slots__ = ("kind", "id", "params", "objective", "started_at", "seen", "history")

    def __init__(self, kind: str, id: str | None, params: dict[str, Any],  # noqa: A002
                 objective: str | None, started_at: datetime | None, seen: list[str],
                 history: HistoryView):
        self.kind = kind
        self.id = id
        self.params = params
        self.objective = objective
        self.started_at = started_at
        self.seen = seen
        self.history = history


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


# Two checks are text, so that the validators of whole requests (below) inline them where a
# call would cost as much as the tests; `_flat` and `_strings` are the same text as functions.
# `{v}` is the value checked; `return None` declines.
_FLAT = """
    if type({v}) is not dict or len({v}) > SMALL_LIST:
        return None
    for _k, _v in {v}.items():
        if type(_k) is not str or len(_k) > SMALL_STRING:
            return None
        _t = type(_v)
        if _t is str:
            if len(_v) > SMALL_STRING:
                return None
        elif _t is int:
            if not -INT_BOUND < _v < INT_BOUND:
                return None
        elif _t is float:
            if _v - _v != 0.0:  # NaN and the infinities
                return None
        elif not (_t is bool or _v is None):
            return None"""
_STRINGS = """
    if type({v}) is not list or len({v}) > SMALL_LIST:
        return None
    for _x in {v}:
        if type(_x) is not str or len(_x) > SMALL_STRING:
            return None"""


def _generated(name: str, source: str, namespace: dict[str, Any]) -> Any:
    """The function `name` that `source` (our own text) defines, its text kept in linecache for
    tracebacks and profiles."""
    filename = f"<agp request {name}>"
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return namespace[name]


_BOUNDS = {"SMALL_LIST": SMALL_LIST, "SMALL_STRING": SMALL_STRING, "INT_BOUND": INT_BOUND}
# A free-form JSON object (args, context, ...) small and flat enough to vouch for, whose numbers
# are within the bounds (agp.values.number_ok: finite, and not too large a float); a list of
# strings (the list, and each string, small enough to vouch for). True, or None.
_flat: Callable[[object], bool | None] = _generated(
    "flat", "def flat(value):" + _FLAT.format(v="value") + "\n    return True\n", dict(_BOUNDS))
_strings: Callable[[object], bool | None] = _generated(
    "strings", "def strings(value):" + _STRINGS.format(v="value") + "\n    return True\n",
    dict(_BOUNDS))


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


# A history is vouched for up to this many values (agp.limits counts every value of a request):
# with the rest of a fast-path request far below MAX_REQUEST_NODES - HISTORY_NODES, the whole
# request stays within the limit without walking it.
HISTORY_NODES = MAX_REQUEST_NODES // 2


def _history(value: object) -> HistoryView | None:
    """A task's `history`, checked item by item in one pass that also sums up what the envelope
    reads of it (agp.model.SessionSummary). Its items become light objects, not values: the
    rules that read `task.history` convert them (agp.interp.history_value)."""
    if type(value) is not list or len(value) > MAX_LIST_LENGTH:
        return None
    items = []
    nodes = 1
    intents: set[str] = set()
    classes: set[str] = set()
    latest: datetime | None = None
    for item in value:
        if type(item) is not dict or not item.keys() <= _ITEM_KEYS:
            return None
        tool, decision = item.get("tool"), item.get("decision")
        intent, data = item.get("intent", _NO_LIST), item.get("data", _NO_LIST)
        args, at = item.get("args", _EMPTY), item.get("at")
        if not _tool(tool) or type(decision) is not str or decision not in _DECIDED or \
                at is None or not _flat(args):
            return None
        if (intent is not _NO_LIST and not _strings(intent)) or (
                data is not _NO_LIST and not _strings(data)):
            return None
        at = _time(at)
        if at is None:
            return None
        nodes += 1 + len(item) + len(intent) + len(data) + len(args)
        if nodes > HISTORY_NODES:
            return None
        intents.update(intent)
        classes.update(data)
        if latest is None or at > latest:
            latest = at
        items.append(FastHistoryItem(tool, [] if intent is _NO_LIST else intent,
                                     [] if data is _NO_LIST else data,
                                     args if args is not _EMPTY else {}, decision, at))
    return HistoryView(items, len(items),
                       SessionSummary(frozenset(intents), frozenset(classes), latest))


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
    seen = value.get("seen", _NO_LIST)
    if seen is not _NO_LIST and not _strings(seen):
        return None
    history = value.get("history")
    if history is None:
        history = _NO_HISTORY if "history" not in value else None
    else:
        history = _history(history)
    if history is None:
        return None
    return FastTask(kind, ident, params if params is not _EMPTY else {}, objective, started,
                    [] if seen is _NO_LIST else seen, history)


# ---- the request itself: one function per set of fields present ------------------------------
#
# A service sees requests of a few shapes (the same fields, again and again). Each set of fields
# a request may carry gets its own validator, generated on first use: it reads the fields present
# by key and tests each once, where a single function for every shape would look up and test the
# absent ones too and check the keys against the allowed ones. There are at most 2**8 such sets
# (`agent` and `tool` are required), so the memo is bounded by construction; a set with another
# key is refused without generating anything.

_FIELDS = ("agent", "tool", "intent", "data", "args", "context", "target", "task", "chain", "now")

# What each field present adds to the validator (its value is the local of the same name; the
# free-form objects and the label lists are checked together after these lines). Every `return
# None` declines: pydantic then decides, and explains.
_CHECKS = {
    "agent": """
    if type(agent) is not dict or not agent.keys() <= _AGENT_KEYS:
        return None
    ident = agent.get("id")
    svid = agent.get("svid")
    if ident is None:
        if svid is None:
            return None
    elif type(ident) is not str or len(ident) > SMALL_STRING:
        return None
    if svid is not None and (type(svid) is not str or len(svid) > SMALL_STRING):
        return None
    attrs = agent.get("attrs", _EMPTY)""",
    # The common tool name needs no regular expression (agp.model.is_tool_name says why).
    "tool": """
    if type(tool) is not str or len(tool) > SMALL_STRING or not (
            tool.isprintable() and " " not in tool and tool or is_tool_name(tool)):
        return None""",
    "task": """
    if task is not None:
        task = _task(task)
        if task is None:
            return None""",
    "chain": """
    chain = _chain(chain)
    if chain is None:
        return None""",
    "now": """
    if now is not None:
        now = _time(now)
        if now is None:
            return None""",
}
# What an absent field is (fresh values, as pydantic gives: nothing may share a request's parts).
_ABSENT = {"intent": "[]", "data": "[]", "args": "{}", "context": "{}", "target": "None",
           "task": "None", "chain": "[]", "now": "None"}
_FREE = ("args", "context")  # free-form objects (with `agent.attrs`, and `target` unless null)
_LABELS = ("intent", "data")

ShapeCheck = Callable[[dict[str, Any]], "FastRequest | None"]
_SHAPES: dict[frozenset[str], ShapeCheck] = {}


def _shape_source(name: str, fields: frozenset[str]) -> str:
    """The text of the function `name`, the validator of requests with exactly these fields
    (`agent` and `tool` among them)."""
    present = [f for f in _FIELDS if f in fields]
    lines = [f"def {name}(value):", *(f"    {f} = value[{f!r}]" for f in present)]
    lines += [_CHECKS[f] for f in present if f in _CHECKS]
    lines.append(_FLAT.format(v="attrs"))
    lines += [_FLAT.format(v=f) for f in _FREE if f in fields]
    if "target" in fields:
        lines.append("    if target is not None:" + _FLAT.format(v="target").replace("\n", "\n    "))
    lines += [_STRINGS.format(v=f) for f in _LABELS if f in fields]
    args = [f if f in fields else _ABSENT[f] for f in
            ("task", "chain", "tool", "intent", "args", "data", "target", "context", "now")]
    lines.append("    return FastRequest(FastAgent(ident, svid, {} if attrs is _EMPTY else attrs), "
                 + ", ".join(args) + ")")
    return "\n".join(lines) + "\n"


def _shape(value: dict[str, Any]) -> ShapeCheck | None:
    """The validator of `value`'s set of fields, generated the first time it is seen; None for a
    set that no valid request has (an unknown field, or no `agent` or `tool`)."""
    given = frozenset(value)
    if not given <= _REQUEST_KEYS or "agent" not in given or "tool" not in given:
        return None
    fields = frozenset(f for f in _FIELDS if f in given)  # our own strings, not the caller's keys
    check = _SHAPES.get(fields)
    if check is None:
        name = "_".join(f for f in _FIELDS if f in fields)
        check = _SHAPES[fields] = _generated(name, _shape_source(name, fields), dict(_NAMESPACE))
    return check


_NAMESPACE = {**_BOUNDS, "_AGENT_KEYS": _AGENT_KEYS, "_EMPTY": _EMPTY,
              "is_tool_name": is_tool_name, "_task": _task, "_chain": _chain, "_time": _time,
              "FastRequest": FastRequest, "FastAgent": FastAgent}


def fast_request(value: dict[str, Any]) -> FastRequest | None:
    """A validated request, or None when pydantic must decide (and explain) instead."""
    # The set of fields keys the validator: building it costs what checking the keys against
    # the allowed ones did.
    check = _SHAPES.get(frozenset(value))
    if check is None:
        check = _shape(value)
        if check is None:
            return None
    return check(value)
