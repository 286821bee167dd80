"""Type-checking conditions: every error provable before a request arrives."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agp.check import types as T
from agp.check.types import Type
from agp.diagnostics import Diagnostic, did_you_mean, error, warning
from agp.limits import MAX_DURATION
from agp.stdlib.builtins import BUILTINS
from agp.syntax import ast
from agp.syntax.visit import ExprVisitor, expr_fields
from agp.values import EvalError, arith, duration_ok, number_ok

LABEL_TYPES = {"class": T.CLASS, "intent": T.INTENT, "agent": T.AGENT_NAME, "task": T.TASK_NAME}


@dataclass
class ConditionScope:
    """What names mean inside one rule's conditions."""

    symbols: dict[str, str]  # declared name -> kind ("class" | "intent" | "agent" | "task")
    roots: dict[str, Type]
    diagnostics: list[Diagnostic]
    variables: dict[str, Type] = field(default_factory=dict)
    # Names declared by items that did not parse: their syntax error is reported, and a use of
    # them is no further error.
    unparsed: frozenset[str] = frozenset()
    # The `sum`s (by node identity) whose body is a duration: their sum of no items is `0s`.
    duration_sums: set[int] = field(default_factory=set)


def check_condition(expr: ast.Expr, scope: ConditionScope, clause: str) -> None:
    t = infer(expr, scope)
    if t not in (T.BOOL, T.ANY):
        scope.diagnostics.append(error(
            "type-mismatch", expr.span,
            f"{'an' if clause[0] in 'aeiou' else 'a'} `{clause}` condition must be a boolean, "
            f"not {t}"))


def typed_sums(expr: ast.Expr, scope: ConditionScope) -> ast.Expr:
    """`expr`, checked in `scope`, with the zero of each `sum` of durations set to `0s` (the
    sum of no items has the type of the body, which only the checker knows)."""
    if not scope.duration_sums:
        return expr
    changes: dict[str, object] = {}
    for name in expr_fields(type(expr)):
        old = getattr(expr, name)
        new: object = old
        if isinstance(old, tuple):
            new = tuple(typed_sums(c, scope) for c in old)
            new = old if all(a is b for a, b in zip(new, old, strict=True)) else new
        elif old is not None:
            new = typed_sums(old, scope)
        if new is not old:
            changes[name] = new
    if isinstance(expr, ast.Quant) and id(expr) in scope.duration_sums:
        changes["zero"] = timedelta(0)
    return dataclasses.replace(expr, **changes) if changes else expr  # type: ignore[arg-type]


_SET_ITEMS = {T.CLASS_SET.name: T.CLASS, T.INTENT_SET.name: T.INTENT}


def _ok(t: Type, *names: str) -> bool:
    return t.name == "any" or t.name in names


# ---- values out of bounds -----------------------------------------------------------------------


def check_literal(lit: ast.Literal | ast.DurationLit, diagnostics: list[Diagnostic]) -> bool:
    """Report a number or duration literal outside the bounds of docs/limits.md ("Values")."""
    v = lit.value
    if not isinstance(v, (int, float, timedelta)) or isinstance(v, bool) or _in_bounds(v):
        return True  # a string, a boolean, or a value within the bounds
    kind = "duration" if isinstance(v, timedelta) else "number"
    diagnostics.append(error("out-of-range", lit.span, f"{kind} out of range", _BOUNDS[kind]))
    return False


_BOUNDS = {
    "number": "numbers must be finite and within the range of a float64 (about ±1.8e308)",
    "duration": f"durations are at most {MAX_DURATION.days}d (about 100 years) either way",
}


def _in_bounds(v: int | float | timedelta) -> bool:
    return duration_ok(v) if isinstance(v, timedelta) else number_ok(v)


_NOT_CONSTANT = object()


class _Constant(ExprVisitor):
    """The value of a number or duration made of literals, `+` and `-` (what the compiler folds):
    the value when it lies within the bounds, None when it does not, _NOT_CONSTANT otherwise
    (also when the operands' types differ: that is reported as a type mismatch)."""

    def generic_visit(self, e: ast.Expr, *args: Any) -> Any:
        return _NOT_CONSTANT  # only literals, `+` and `-` are folded

    def visit_Literal(self, e: ast.Literal) -> Any:
        v = e.value
        if isinstance(v, bool) or not isinstance(v, (int, float, timedelta)):  # a string, too
            return _NOT_CONSTANT
        return v if _in_bounds(v) else None

    def visit_Unary(self, e: ast.Unary) -> Any:
        if e.op != "-":
            return _NOT_CONSTANT
        v = self.visit(e.operand)
        return v if v is None or v is _NOT_CONSTANT else -v  # the bounds are symmetric

    def visit_Binary(self, e: ast.Binary) -> Any:
        if e.op not in ("+", "-"):
            return _NOT_CONSTANT
        return _combine(e.op, self.visit(e.left), self.visit(e.right))


_constant = _Constant().visit


def _combine(op: str, a: Any, b: Any) -> Any:
    if a is _NOT_CONSTANT or b is _NOT_CONSTANT or \
            isinstance(a, timedelta) != isinstance(b, timedelta):
        return _NOT_CONSTANT
    if a is None or b is None:
        return None
    try:
        return arith(op, a, b)
    except EvalError:  # out of range
        return None


def _check_constant(e: ast.Binary, s: ConditionScope) -> None:
    """Report `+` or `-` of constants whose result leaves the bounds: it could only fail, at
    every decision, and the compiler folds constants before any decision."""
    a, b = _constant(e.left), _constant(e.right)
    if a is None or b is None or _combine(e.op, a, b) is not None:
        return  # an operand out of range is reported where it is
    kind = "duration" if isinstance(a, timedelta) else "number"
    s.diagnostics.append(error("out-of-range", e.span, "the result is out of range",
                               _BOUNDS[kind]))


# ---- types --------------------------------------------------------------------------------------


def infer(e: ast.Expr, s: ConditionScope) -> Type:
    """The type of an expression; the mistakes found in it are added to `s.diagnostics`."""
    t: Type = _TYPES.visit(e, s)
    return t


class _Types(ExprVisitor):
    """The type of each form of expression, and the errors that can be proven of it."""

    def visit_Literal(self, e: ast.Literal, s: ConditionScope) -> Type:
        v = e.value
        if isinstance(v, bool):
            return T.BOOL
        if isinstance(v, str):
            return T.STRING
        check_literal(e, s.diagnostics)
        return T.NUMBER if isinstance(v, (int, float)) else T.DURATION

    def visit_ListExpr(self, e: ast.ListExpr, s: ConditionScope) -> Type:
        elems = {infer(i, s) for i in e.items}
        return T.list_of(elems.pop() if len(elems) == 1 else T.ANY)

    def visit_NameRef(self, e: ast.NameRef, s: ConditionScope) -> Type:
        if e.name in s.variables:
            return s.variables[e.name]
        if e.name in s.roots:
            return s.roots[e.name]
        kind = s.symbols.get(e.name)
        if kind is not None:
            return LABEL_TYPES[kind]
        if e.name in s.unparsed:
            return T.ANY
        if e.name in BUILTINS:
            s.diagnostics.append(error("unknown-name", e.span,
                                       f"`{e.name}` is a function: call it as `{e.name}(...)`"))
            return T.ANY
        candidates = [*s.variables, *s.roots, *s.symbols]
        s.diagnostics.append(error("unknown-name", e.span, f"unknown name `{e.name}`",
                                   did_you_mean(e.name, candidates)))
        return T.ANY

    def visit_Attr(self, e: ast.Attr, s: ConditionScope) -> Type:
        t = infer(e.obj, s)
        if t.fields is not None:
            ft = t.field(e.name.text)
            if ft is None:
                _unknown_field(e.name, t, s, e.obj)
                return T.ANY
            return ft
        if _ok(t, "object"):
            return T.ANY
        s.diagnostics.append(error("type-mismatch", e.name.span,
                                   f"cannot read field `{e.name.text}` of {t}"))
        return T.ANY

    def visit_Unary(self, e: ast.Unary, s: ConditionScope) -> Type:
        t = infer(e.operand, s)
        if e.op == "not":
            if not _ok(t, "bool"):
                s.diagnostics.append(error("type-mismatch", e.operand.span,
                                           f"`not` needs a boolean, not {t}"))
            return T.BOOL
        if not _ok(t, "number", "duration"):
            s.diagnostics.append(error("type-mismatch", e.operand.span, f"cannot negate {t}"))
            return T.ANY
        return t

    def visit_Binary(self, e: ast.Binary, s: ConditionScope) -> Type:
        d = s.diagnostics
        op = e.op
        if op in ("and", "or"):
            for side in (e.left, e.right):
                t = infer(side, s)
                if not _ok(t, "bool"):
                    d.append(error("type-mismatch", side.span, f"`{op}` needs booleans, not {t}"))
            return T.BOOL
        lt, rt = infer(e.left, s), infer(e.right, s)
        if op in ("==", "!="):
            if "any" not in (lt.name, rt.name) and lt.name != rt.name:
                always = "false" if op == "==" else "true"
                hint = None
                if {lt.name, rt.name} == {"string", "task name"}:
                    hint = "to test the task's kind, write `task is NAME`"
                d.append(warning("type-mismatch", e.span,
                                 f"comparing {lt} with {rt} is always {always}", hint))
            return T.BOOL
        if op in ("<", "<=", ">", ">="):
            if "any" not in (lt.name, rt.name) and (lt.name, rt.name) not in T.ORDERED:
                d.append(error("type-mismatch", e.span,
                               f"cannot compare {lt} with {rt} using `{op}`"))
            return T.BOOL
        if op in ("+", "-"):
            if "any" in (lt.name, rt.name):
                return rt if lt.name == "any" else lt
            if lt.name != rt.name or lt.name not in ("number", "duration"):
                d.append(error("type-mismatch", e.span, f"cannot apply `{op}` to {lt} and {rt}"))
                return T.ANY
            _check_constant(e, s)
            return lt
        if op == "matches":
            for side, t in ((e.left, lt), (e.right, rt)):
                if not _ok(t, "string"):
                    d.append(error("type-mismatch", side.span,
                                   f"`matches` needs strings, not {t}"))
            return T.BOOL
        if op == "in":
            _check_in(e, lt, rt, s)
            return T.BOOL
        raise TypeError(op)  # pragma: no cover

    def visit_Has(self, e: ast.Has, s: ConditionScope) -> Type:
        t = infer(e.obj, s)
        if t.fields is not None and t.field(e.field.text) is None:
            _unknown_field(e.field, t, s, e.obj)
        elif not _ok(t, "object", "chain"):
            s.diagnostics.append(error("type-mismatch", e.obj.span,
                                       f"`has` needs an object, not {t}"))
        return T.BOOL

    def visit_Is(self, e: ast.Is, s: ConditionScope) -> Type:
        t = infer(e.obj, s)
        kind = s.symbols.get(e.name.text)
        if kind == "agent":
            if not (t.name == "any" or t.field("id") is not None
                    or t.field("principal") is not None):
                s.diagnostics.append(error("type-mismatch", e.obj.span,
                                           f"`is AGENT` tests `agent` or a chain hop, not {t}"))
        elif kind == "task":
            if not (t.name == "any" or t.field("params") is not None):
                s.diagnostics.append(error("type-mismatch", e.obj.span,
                                           f"`is TASK` tests `task`, not {t}"))
        elif kind is not None or e.name.text not in s.unparsed:
            agents_tasks = [n for n, k in s.symbols.items() if k in ("agent", "task")]
            msg = (f"`{e.name.text}` is a {kind}, not an agent or a task" if kind
                   else f"unknown agent or task `{e.name.text}`")
            s.diagnostics.append(error("unknown-name", e.name.span, msg,
                                       did_you_mean(e.name.text, agents_tasks)))
        return T.BOOL

    def visit_Quant(self, e: ast.Quant, s: ConditionScope) -> Type:
        seq = infer(e.seq, s)
        if not _ok(seq, "list", T.CLASS_SET.name, T.INTENT_SET.name):
            s.diagnostics.append(error("type-mismatch", e.seq.span,
                                       f"`{e.kind}` needs a list or a set, not {seq}"))
        # A set's items are its names, as labels: data classes or intents (agp.values.iterable).
        elem = seq.elem if seq.name == "list" and seq.elem is not None else \
            _SET_ITEMS.get(seq.name, T.ANY)
        inner = ConditionScope(s.symbols, s.roots, s.diagnostics,
                               {**s.variables, e.var.text: elem}, s.unparsed, s.duration_sums)
        if e.filter is not None:
            check_condition(e.filter, inner, "if")
        if e.kind != "sum":
            check_condition(e.body, inner, e.kind)
            return T.NUMBER if e.kind == "count" else T.BOOL
        t = infer(e.body, inner)
        if not _ok(t, "number", "duration"):
            s.diagnostics.append(error("type-mismatch", e.body.span,
                                       f"`sum` adds numbers or durations, not {t}"))
            return T.ANY
        if t == T.DURATION:
            s.duration_sums.add(id(e))
        return t  # a number, a duration, or any: the body's

    def visit_Call(self, e: ast.Call, s: ConditionScope) -> Type:
        fn = BUILTINS.get(e.func.text)
        arg_types = [infer(a, s) for a in e.args]
        if fn is None:
            s.diagnostics.append(error("unknown-function", e.func.span,
                                       f"unknown function `{e.func.text}`",
                                       did_you_mean(e.func.text, BUILTINS)))
            return T.ANY
        if len(e.args) != len(fn.params):
            s.diagnostics.append(error("type-mismatch", e.span,
                                       f"`{fn.name}` takes {len(fn.params)} argument(s), "
                                       f"got {len(e.args)}", f"signature: {fn.signature}"))
            return _RETURNS[fn.returns]
        for arg, t, accepted in zip(e.args, arg_types, fn.params, strict=True):
            if accepted != ("any",) and not _ok(t, *accepted):
                s.diagnostics.append(error(
                    "type-mismatch", arg.span,
                    f"`{fn.name}` expects {' or '.join(accepted)} here, not {t}",
                    f"signature: {fn.signature}"))
        return _RETURNS[fn.returns]


_TYPES = _Types()
_RETURNS = {"string": T.STRING, "number": T.NUMBER, "bool": T.BOOL}


def _unknown_field(name: ast.Name, t: Type, s: ConditionScope, obj: ast.Expr) -> None:
    what = _describe_object(obj)
    s.diagnostics.append(error("unknown-field", name.span,
                               f"{what} has no field `{name.text}`",
                               did_you_mean(name.text, [f for f, _ in t.fields or ()])))


def _describe_object(obj: ast.Expr) -> str:
    text = obj.span.text
    if text == "args":
        return "the args schema of the rule's tools"
    if text == "task.params":
        return "the params schema of the rule's tasks"
    return f"`{text}`"


def _check_in(e: ast.Binary, lt: Type, rt: Type, s: ConditionScope) -> None:
    accepted: dict[str, tuple[str, ...] | None] = {
        "list": None,
        "data": ("data class", "string"),
        "intents": ("intent", "string"),
        "chain": ("agent name", "string"),
        "string": ("string",),
    }
    if rt.name == "any":
        return
    if rt.name not in accepted:
        s.diagnostics.append(error("type-mismatch", e.right.span,
                                   f"`in` needs a list, `data`, `intent`, `chain` or a string "
                                   f"on its right, not {rt}"))
        return
    allowed = accepted[rt.name]
    if allowed is not None and not _ok(lt, *allowed):
        s.diagnostics.append(error("type-mismatch", e.left.span,
                                   f"cannot look for {lt} in {rt}"))


