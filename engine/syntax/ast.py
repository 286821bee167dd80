"""The agp AST: frozen, slotted dataclasses whose fields are their children.

Every node carries the `Span` of the text it came from, so that the checker, the CLI and the
editor can underline exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Union

from agp.source import Span


@dataclass(frozen=True, slots=True)
class Name:
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class DurationLit:
    value: timedelta
    span: Span


@dataclass(frozen=True, slots=True)
class Pattern:
    """A tool pattern: a dotted name whose segments may be `*`, or a quoted string."""

    text: str
    span: Span
    quoted: bool = False


# ---- expressions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: object  # str | int | float | bool | timedelta
    span: Span


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class NameRef:
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Attr:
    obj: Expr
    name: Name
    span: Span


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "not" | "-"
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # or and == != < <= > >= in matches + -
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Has:
    obj: Expr
    field: Name
    span: Span


@dataclass(frozen=True, slots=True)
class Is:
    obj: Expr
    name: Name
    span: Span


@dataclass(frozen=True, slots=True)
class Quant:
    kind: str  # "any" | "all" | "count" | "sum"
    var: Name
    seq: Expr
    filter: Expr | None  # `if COND`: only the items for which it holds are considered
    body: Expr
    span: Span
    # The value of a `sum` of no items: `0s` when the checker types its body a duration, else 0
    # (agp.check.exprs.typed_sums sets it; the parser cannot know).
    zero: object = 0


@dataclass(frozen=True, slots=True)
class Call:
    func: Name
    args: tuple[Expr, ...]
    span: Span


Expr = Union[Literal, ListExpr, NameRef, Attr, Unary, Binary, Has, Is, Quant, Call]
# Every form of expression: the cases each `agp.syntax.visit.ExprVisitor` must cover.
EXPR_FORMS = (Literal, ListExpr, NameRef, Attr, Unary, Binary, Has, Is, Quant, Call)


# ---- declarations -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    name: Name
    type: Name
    optional: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Schema:
    fields: tuple[Field, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ModuleDecl:
    name: Name
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class Import:
    module: Name
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class DataclassDecl:
    name: Name
    parents: tuple[Name, ...]
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class IntentDecl:
    names: tuple[Name, ...]
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class AgentDecl:
    name: Name
    pattern: Str
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class ToolDecl:
    pattern: Pattern
    intents: tuple[Name, ...]
    data: tuple[Name, ...]
    args: Schema | None
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class DelegateClause:
    to: tuple[Name, ...] | None
    depth: Literal | None
    span: Span


@dataclass(frozen=True, slots=True)
class TaskDecl:
    name: Name
    params: Schema | None
    tools: tuple[Pattern, ...] | None
    intents: tuple[Name, ...] | None
    ceiling: Name | None
    ttl: DurationLit | None
    delegate: DelegateClause | None
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class Defaults:
    ttl: DurationLit | None
    max_ttl: DurationLit | None
    span: Span
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class OnIntent:
    name: Name
    span: Span


@dataclass(frozen=True, slots=True)
class Rule:
    effect: str  # "permit" | "forbid" | "ask"
    name: Name
    on: tuple[Pattern | OnIntent, ...] | None
    tasks: tuple[Name, ...] | None
    agents: tuple[Name, ...] | None
    when: Expr | None
    unless: Expr | None
    ttl: DurationLit | None
    because: Str | None
    span: Span
    doc: str | None = None


Item = Union[ModuleDecl, Import, DataclassDecl, IntentDecl, AgentDecl, ToolDecl, TaskDecl,
             Defaults, Rule]
