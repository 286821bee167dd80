"""Runtime values and the operations on them, shared by every evaluator.

Values are plain Python: str, int/float (never bool), bool, timedelta (durations), aware datetime
(timestamps), list, dict (objects). Declared names evaluate to `Label`s; the request's `data` and
`intent` are `LabelSet`s; the delegation chain is a `Chain` object.

Every value stays within the bounds of agp.limits (docs/limits.md, "Values"): a number is finite and
`float(n)` does not overflow, a duration is at most MAX_DURATION long, a timestamp lies in
[MIN_TIME, MAX_TIME). Requests are checked on the way in (`json_problem`, `instant`), and an
operation whose result would leave the bounds is an evaluation error (`arith`), so no Python
arithmetic error ever escapes a decision.

The operations take any object and check its kind themselves (a value of the wrong kind is an
EvalError), so values are typed `object`; they narrow with isinstance where they need a type.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeAlias

from agp import budget
from agp.glob import Glob, compile_glob
from agp.limits import MAX_DURATION, MAX_MATCH_WORK, MAX_REQUEST_NODES, MAX_TIME, MIN_TIME
from agp.source import Span

UTC = timezone.utc
# `float(n)` overflows from here on: an int this large rounds to 2**1024, which no float holds.
INT_BOUND = 2**1024 - 2**970


class EvalError(Exception):
    """An evaluation error: it never allows (a permit does not match, a forbid or ask does)."""

    def __init__(self, message: str, span: Span | None = None):
        super().__init__(message)
        self.message = message
        self.span = span


class Missing(EvalError):
    """Reading an attribute that is not there (`has` turns it into false)."""


@dataclass(frozen=True, slots=True)
class Label:
    """A declared name used as a value: a data class, an intent, an agent or a task."""

    kind: str  # "class" | "intent" | "agent" | "task"
    name: str
    glob: Glob | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class LabelSet:
    """The request's `data` (kind "class") or `intent` (kind "intent")."""

    kind: str
    names: frozenset[str]


class Chain(dict[str, object]):
    """The `chain` object (`depth`, `hops`, `origin`).

    `A in chain` tests every hop and the acting agent (`agent_id`), which belongs to the chain
    even when the request gives no hops.
    """

    __slots__ = ("agent_id",)

    def __init__(self, agent_id: str, **fields: object):
        super().__init__(**fields)
        self.agent_id = agent_id

    def principals(self) -> list[str]:
        # The hops are objects with a string `principal` (agp.steps.hop_value builds them).
        hops: list[dict[str, str]] = self["hops"]  # type: ignore[assignment]
        return [h["principal"] for h in hops] + [self.agent_id]


@dataclass(frozen=True, slots=True)
class Lattice:
    """The data-class order as a table: for each class, the classes at or below it."""

    below: dict[str, frozenset[str]]

    def leq(self, a: str, b: str) -> bool:
        for name in (a, b):
            if name not in self.below:
                raise EvalError(f"unknown data class `{name}`")
        return a in self.below[b]

    def set_leq(self, names: Iterable[str], ceiling: str) -> bool:
        """`data <= ceiling`: every class is at or below the ceiling."""
        return all(self.leq(n, ceiling) for n in names)


# ---- bounds -------------------------------------------------------------------------------------


def number_ok(n: float) -> bool:
    """A number within the bounds: finite, and convertible to a float.

    >>> number_ok(10**300), number_ok(10**400), number_ok(float("nan")), number_ok(-0.0)
    (True, False, False, True)
    """
    if isinstance(n, float):
        return math.isfinite(n)
    return -INT_BOUND < n < INT_BOUND


def duration_ok(d: timedelta) -> bool:
    return -MAX_DURATION <= d <= MAX_DURATION


def instant(t: datetime) -> datetime:
    """`t` as a UTC datetime; ValueError when it has no zone or lies outside the bounds.

    Converting first is what makes arithmetic elapsed time: Python adds a duration to, and
    subtracts, datetimes that share a `ZoneInfo` zone as wall-clock times.
    """
    if t.tzinfo is UTC and type(t) is datetime:  # the common case ("...Z"), already converted
        utc = t
    elif t.utcoffset() is None:
        raise ValueError("a timestamp needs a time zone")
    else:
        try:
            utc = t.astimezone(UTC)
        except (OverflowError, ValueError):  # a year-1 or year-9999 time pushed off the calendar
            utc = None
    if utc is None or not MIN_TIME <= utc < MAX_TIME:
        raise ValueError(f"timestamp {t.isoformat()} is outside the supported range "
                         "(1900-01-01T00:00:00Z up to 9000-01-01T00:00:00Z)")
    return utc


def _scalar_problem(v: object) -> str | None:
    """Why a value that is not a container is not a value of the language (None when it is)."""
    if isinstance(v, (str, bool)):
        return None
    if isinstance(v, (int, float)):
        if number_ok(v):
            return None
        if isinstance(v, float):
            return f"number {v!r} is not finite"
        return "number too large (the bound is about 1.8e308, the largest float)"
    if isinstance(v, datetime):
        try:
            instant(v)
        except ValueError as exc:
            return str(exc)
        return None
    if isinstance(v, timedelta):
        if duration_ok(v):
            return None
        return f"duration longer than {MAX_DURATION.days} days"
    return f"a value of Python type {type(v).__name__} is not a JSON value"


def json_problem(value: object) -> str | None:
    """The first value of a free-form object (`args`, `context`, ...) outside the language's
    values, as `.path: problem`; None when every value is fine.

    JSON values, plus aware `datetime` (a timestamp) and `timedelta` (a duration) from Python.
    Iterative, and bounded by MAX_REQUEST_NODES, so deep or cyclic data cannot hang it.

    >>> json_problem({"a": [1, {"b": float("inf")}]})
    '.a[1].b: number inf is not finite'
    """
    # Each entry is (value, parent entry, key or index): the path is spelled out only on failure.
    stack: list[_Entry] = [(value, None, None)]
    nodes = 0
    while stack:
        entry = stack.pop()
        v = entry[0]
        nodes += 1
        if nodes > MAX_REQUEST_NODES:
            return f": more than {MAX_REQUEST_NODES} values"
        if v is None or type(v) is str:
            continue
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    return f"{_path(entry)}: key {show(k)} is not a string"
                stack.append((item, entry, k))
        elif isinstance(v, (list, tuple)):
            stack.extend((item, entry, i) for i, item in enumerate(v))
        else:
            problem = _scalar_problem(v)
            if problem is not None:
                return f"{_path(entry)}: {problem}"
    return None


_Entry: TypeAlias = "tuple[object, _Entry | None, str | int | None]"


def _path(entry: _Entry) -> str:
    parts = []
    parent = entry[1]
    while parent is not None:
        key = entry[2]
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        entry, parent = parent, parent[1]
    return "".join(reversed(parts))


def kind_of(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, timedelta):
        return "duration"
    if isinstance(value, datetime):
        return "timestamp"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, Label):
        return value.kind
    if isinstance(value, LabelSet):
        return "class set" if value.kind == "class" else "intent set"
    if value is None:
        return "null"
    return type(value).__name__


def show(value: object) -> str:
    """A short rendering of a value for error messages."""
    try:
        text = repr(value) if not isinstance(value, Label) else value.name
    except ValueError:  # an int of more than 4,300 digits has no repr
        return "a huge integer"
    return text if len(text) <= 40 else text[:37] + "..."


def equal(a: object, b: object) -> bool:
    """`==`: never fails; values of different types are unequal.

    >>> equal(1, 1.0), equal(True, 1), equal([1, "a"], [1.0, "a"])
    (True, False, True)
    """
    t = type(a)
    if t is type(b):  # the most common cases, before kind_of
        if t is int or t is float:
            return a == b
        if t is str:
            if len(a) == len(b):  # type: ignore[arg-type]  # both are str
                budget.spend_text(len(a))  # type: ignore[arg-type]
            return a == b
    if kind_of(a) != kind_of(b):
        return False
    # Same kind: each isinstance test below holds for both or for neither.
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        budget.spend(budget.CONTAINER_STEPS + len(a))  # agp.budget: the container, its items
        return len(a) == len(b) and all(map(equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        budget.spend(budget.CONTAINER_STEPS + len(a))
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, str) and isinstance(b, str) and len(a) == len(b):
        budget.spend_text(len(a))  # only when the lengths agree are the characters compared
    if isinstance(a, datetime) and isinstance(b, datetime):
        # as instants: Python compares two times of one zone as wall-clock times
        return a.astimezone(UTC) == b.astimezone(UTC)
    return a == b


_ORDERED = ("number", "string", "duration", "timestamp")
# Typed with Any operands: `order` pairs two values of one ordered kind, which mypy cannot see.
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def order(op: str, a: object, b: object, lattice: Lattice) -> bool:
    """`<`, `<=`, `>`, `>=`. Data classes compare through the lattice."""
    ka, kb = kind_of(a), kind_of(b)
    if ka == kb and ka in _ORDERED:
        if isinstance(a, datetime) and isinstance(b, datetime):  # as instants (see `equal`)
            a, b = a.astimezone(UTC), b.astimezone(UTC)
        elif isinstance(a, str) and isinstance(b, str):
            budget.spend_text(min(len(a), len(b)))
        return _COMPARE[op](a, b)
    if isinstance(a, Label) and isinstance(b, Label) and ka == kb == "class":
        return _class_order(op, a.name, b.name, lattice)
    if isinstance(a, LabelSet) and isinstance(b, Label) and ka == "class set" and kb == "class":
        return _set_order(op, a.names, b.name, lattice)
    if isinstance(a, Label) and isinstance(b, LabelSet) and ka == "class" and kb == "class set":
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
        return _set_order(flipped, b.names, a.name, lattice)
    raise EvalError(f"cannot order {ka} {show(a)} and {kb} {show(b)} with `{op}`")


def _class_order(op: str, a: str, b: str, lattice: Lattice) -> bool:
    if op == "<=":
        return lattice.leq(a, b)
    if op == ">=":
        return lattice.leq(b, a)
    if op == "<":
        return a != b and lattice.leq(a, b)
    return a != b and lattice.leq(b, a)


def _set_order(op: str, names: frozenset[str], ceiling: str, lattice: Lattice) -> bool:
    # `data <= X` and `data < X`: every class; `data >= X` and `data > X`: some class.
    # An undeclared class is an error whatever the other classes say (and whatever the order
    # of the set): it is never treated as harmless.
    unknown = sorted(n for n in names if n not in lattice.below)
    if unknown:
        raise EvalError(f"unknown data class `{unknown[0]}`")
    if op in ("<=", "<"):
        return all(_class_order(op, n, ceiling, lattice) for n in names)
    return any(_class_order(op, n, ceiling, lattice) for n in names)


def member(item: object, container: object) -> bool:
    """`item in container` for lists, the data and intent sets, the chain and strings."""
    kc = kind_of(container)
    if isinstance(container, (list, tuple)):
        budget.spend(len(container))
        if type(item) is str:  # Python's `==` then is `equal`: no other value equals a string
            return item in container
        return any(equal(item, x) for x in container)
    if isinstance(container, LabelSet):
        if isinstance(item, Label) and item.kind == container.kind:
            return item.name in container.names
        if isinstance(item, str):
            return item in container.names
    elif isinstance(container, Chain):
        principals = container.principals()
        budget.spend(len(principals))  # the hops and the acting agent
        if isinstance(item, Label) and item.kind == "agent" and item.glob is not None:
            return any(item.glob.match(p) for p in principals)
        if isinstance(item, str):
            return item in principals
    elif isinstance(container, str) and isinstance(item, str):
        budget.spend_text(len(container))
        return item in container
    raise EvalError(f"cannot test {kind_of(item)} {show(item)} `in` {kc} {show(container)}")


def matches(subject: object, pattern: object) -> bool:
    if not isinstance(subject, str) or not isinstance(pattern, str):
        raise EvalError(f"`matches` needs two strings, got {kind_of(subject)} and "
                        f"{kind_of(pattern)}")
    glob = compile_glob(pattern)
    if glob.work(len(subject)) > MAX_MATCH_WORK:  # a pattern from a request (docs/limits.md)
        raise EvalError(f"pattern too costly for a subject of {len(subject)} characters: with "
                        f"`?` between other characters, matching takes up to "
                        f"{glob.work(len(subject))} steps (the limit is {MAX_MATCH_WORK})")
    return glob.match(subject)


def arith(op: str, a: object, b: object) -> float | timedelta:
    """`+` and `-` on two numbers or two durations; a result outside the bounds is an error.

    >>> arith("+", 10**300, 0.5)
    1e+300
    >>> arith("+", 1e308, 1e308)
    Traceback (most recent call last):
    agp.values.EvalError: `1e+308 + 1e+308` is out of range
    """
    ka, kb = kind_of(a), kind_of(b)
    if ka == kb and ka in ("number", "duration"):
        x: Any = a  # two numbers or two durations (checked above): mypy cannot pair the types
        try:
            result: float | timedelta | None = x + b if op == "+" else x - b
        except OverflowError:  # an int too large for the float it meets
            result = None
        if isinstance(result, timedelta) and duration_ok(result):
            return result
        if isinstance(result, (int, float)) and number_ok(result):
            return result
        raise EvalError(f"`{show(a)} {op} {show(b)}` is out of range")
    raise EvalError(f"cannot apply `{op}` to {ka} {show(a)} and {kb} {show(b)}")


def negate(a: object) -> float | timedelta:
    if isinstance(a, (int, float, timedelta)) and not isinstance(a, bool):
        return -a
    raise EvalError(f"cannot negate {kind_of(a)} {show(a)}")


def attribute(obj: object, name: str) -> object:
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        raise Missing(f"missing attribute `{name}`")
    raise EvalError(f"cannot read `.{name}` of {kind_of(obj)} {show(obj)}")


def has(obj: object, name: str) -> bool:
    if isinstance(obj, dict):
        return name in obj
    raise EvalError(f"cannot test `has {name}` on {kind_of(obj)} {show(obj)}")


def truth(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    raise EvalError(f"{what} must be a boolean, got {kind_of(value)} {show(value)}")


def iterable(value: object) -> list[object]:
    """The items a quantifier takes: a list's in its order; a set's (`data`, `intent`,
    `task.seen`, a history item's `data`) as labels in name order, so that an item compares
    through the lattice (`c >= restricted`) and is found in other sets (`c in task.seen`)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, LabelSet):
        return [Label(value.kind, name) for name in sorted(value.names)]
    raise EvalError(f"a quantifier needs a list, got {kind_of(value)} {show(value)}")
