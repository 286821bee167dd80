"""Runtime values and the operations on them, shared by every evaluator.

Values are plain Python: str, int/float (never bool), bool, timedelta (durations), aware datetime
(timestamps), list, dict (objects). Declared names evaluate to `Label`s; the request's `data` and
`intent` are `LabelSet`s; the delegation chain is a `Chain` object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agp.glob import Glob, compile_glob


class EvalError(Exception):
    """An evaluation error: it never allows (a permit does not match, a forbid or ask does)."""

    def __init__(self, message: str, span=None):
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


class Chain(dict):
    """The `chain` object (`depth`, `hops`, `origin`).

    `A in chain` tests every hop and the acting agent (`agent_id`), which belongs to the chain
    even when the request gives no hops.
    """

    __slots__ = ("agent_id",)

    def __init__(self, agent_id: str, **fields):
        super().__init__(**fields)
        self.agent_id = agent_id

    def principals(self) -> list[str]:
        return [h["principal"] for h in self["hops"]] + [self.agent_id]


@dataclass(frozen=True, slots=True)
class Lattice:
    """The data-class order as a table: for each class, the classes at or below it."""

    below: dict[str, frozenset[str]]

    def leq(self, a: str, b: str) -> bool:
        for name in (a, b):
            if name not in self.below:
                raise EvalError(f"unknown data class `{name}`")
        return a in self.below[b]

    def set_leq(self, names, ceiling: str) -> bool:
        """`data <= ceiling`: every class is at or below the ceiling."""
        return all(self.leq(n, ceiling) for n in names)


def kind_of(value) -> str:
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


def show(value) -> str:
    """A short rendering of a value for error messages."""
    text = repr(value) if not isinstance(value, Label) else value.name
    return text if len(text) <= 40 else text[:37] + "..."


def equal(a, b) -> bool:
    """`==`: never fails; values of different types are unequal.

    >>> equal(1, 1.0), equal(True, 1), equal([1, "a"], [1.0, "a"])
    (True, False, True)
    """
    ka = kind_of(a)
    if ka != kind_of(b):
        return False
    if ka == "list":
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if ka == "object":
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return a == b


_ORDERED = ("number", "string", "duration", "timestamp")


def order(op: str, a, b, lattice: Lattice) -> bool:
    """`<`, `<=`, `>`, `>=`. Data classes compare through the lattice."""
    ka, kb = kind_of(a), kind_of(b)
    if ka == kb and ka in _ORDERED:
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        return a >= b
    if ka == "class" and kb == "class":
        return _class_order(op, a.name, b.name, lattice)
    if ka == "class set" and kb == "class":
        return _set_order(op, a.names, b.name, lattice)
    if ka == "class" and kb == "class set":
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


def _set_order(op: str, names, ceiling: str, lattice: Lattice) -> bool:
    # `data <= X` and `data < X`: every class; `data >= X` and `data > X`: some class.
    # An undeclared class is an error whatever the other classes say (and whatever the order
    # of the set): it is never treated as harmless.
    unknown = sorted(n for n in names if n not in lattice.below)
    if unknown:
        raise EvalError(f"unknown data class `{unknown[0]}`")
    if op in ("<=", "<"):
        return all(_class_order(op, n, ceiling, lattice) for n in names)
    return any(_class_order(op, n, ceiling, lattice) for n in names)


def member(item, container) -> bool:
    """`item in container` for lists, the data and intent sets, the chain and strings."""
    kc = kind_of(container)
    if kc == "list":
        return any(equal(item, x) for x in container)
    if isinstance(container, LabelSet):
        if isinstance(item, Label) and item.kind == container.kind:
            return item.name in container.names
        if isinstance(item, str):
            return item in container.names
    elif isinstance(container, Chain):
        if isinstance(item, Label) and item.kind == "agent":
            return any(item.glob.match(p) for p in container.principals())
        if isinstance(item, str):
            return item in container.principals()
    elif kc == "string" and isinstance(item, str):
        return item in container
    raise EvalError(f"cannot test {kind_of(item)} {show(item)} `in` {kc} {show(container)}")


def matches(subject, pattern) -> bool:
    if not isinstance(subject, str) or not isinstance(pattern, str):
        raise EvalError(f"`matches` needs two strings, got {kind_of(subject)} and "
                        f"{kind_of(pattern)}")
    return compile_glob(pattern).match(subject)


def arith(op: str, a, b):
    ka, kb = kind_of(a), kind_of(b)
    if ka == kb and ka in ("number", "duration"):
        return a + b if op == "+" else a - b
    raise EvalError(f"cannot apply `{op}` to {ka} {show(a)} and {kb} {show(b)}")


def negate(a):
    if kind_of(a) in ("number", "duration"):
        return -a
    raise EvalError(f"cannot negate {kind_of(a)} {show(a)}")


def attribute(obj, name: str):
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        raise Missing(f"missing attribute `{name}`")
    raise EvalError(f"cannot read `.{name}` of {kind_of(obj)} {show(obj)}")


def has(obj, name: str) -> bool:
    if isinstance(obj, dict):
        return name in obj
    raise EvalError(f"cannot test `has {name}` on {kind_of(obj)} {show(obj)}")


def truth(value, what: str) -> bool:
    if isinstance(value, bool):
        return value
    raise EvalError(f"{what} must be a boolean, got {kind_of(value)} {show(value)}")


def iterable(value) -> list:
    if kind_of(value) == "list":
        return list(value)
    raise EvalError(f"a quantifier needs a list, got {kind_of(value)} {show(value)}")
