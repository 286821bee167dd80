"""Code generation: one Python function per decision-tree leaf, compiled with `compile()`.

Each leaf (a tool name, refined by a task kind) becomes a function `(R, ID, I, D, NOW, failed)`
(ID: the agent's agp.identity.Identity) that
returns the matching forbids, asks and permits, and the rules whose compiled condition raised or
that the generator left to the reference evaluator (`{index: exception or None}`, or None). Those
rules are then decided by the reference evaluator, which owns error messages and spans (the
evaluation is pure, so doing it twice gives the same answer).

Values are the ones of agp.values and the operations are its functions: generated code only
inlines the common case of an operation (`x <= 500` when `x` is a number) and calls the shared
function for every other case, so both evaluators take the same path whenever it matters.

The generator walks conditions (the AST, see agp.compile.ir) with the one expression visitor,
`agp.syntax.visit.ExprVisitor`: `ExprGen` writes an expression's code, `MayFail` says whether it
can raise, `agp.compile.passes.IsBoolean` whether it is always a bool. Each has a case for every
form of expression, which `tests/test_compile.py` holds them to.

Code is generated per rule, once (`rule_code`: a `RuleCode`), and assembled into the function
of each leaf that runs the rule. A rule's constants (numbers, strings, lists, sets, labels, its
own record) are not written into the text: they are names, `_c<slot>_<k>`, bound in the
function's namespace. So leaves whose rules differ only in constants have the same text, which
is compiled once (`Context.code`); each leaf's function is that code under its own name and
pseudo-filename, over its own namespace. That is what makes generating every leaf at load cheap.

Every function gets its own namespace (a copy of the policy set's, with its constants), a unique
pseudo-filename registered in `linecache` (with comments naming each rule and its position),
and a line map from generated lines back to policy spans: in the namespace
(`agp.compile.debug`, so that a traceback through generated code shows the policy line) and in
`Context.line_maps` (`CompiledEvaluator.locate`, for profiles). The linecache entry and the line
map are dropped when the function is freed, so their number follows the number of live
functions, which the decision tree bounds.
"""

from __future__ import annotations

import itertools
import linecache
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any, TypeGuard

from agp import budget, interp
from agp.compile.debug import LINE_MAP, LineMap
from agp.compile.ir import EFFECTS, IRRule
from agp.compile.passes import is_boolean
from agp.envelope import chain_depth
from agp.glob import compile_glob
from agp.source import Span
from agp.stdlib.builtins import BUILTINS
from agp.syntax import ast
from agp.syntax.names import ROOTS
from agp.syntax.visit import ExprVisitor
from agp.values import (
    Label,
    LabelSet,
    Lattice,
    Missing,
    arith,
    attribute,
    equal,
    has,
    matches,
    member,
    negate,
    order,
    truth,
)

if TYPE_CHECKING:
    from agp.compile.evaluator import Context

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ORDER = frozenset(_FLIP)
_TARGETS = {"forbid": "F", "ask": "A", "permit": "P"}  # the list a matching rule joins
_MISSING = object()

# The function of a leaf: (request, identity, intents, data classes, now, envelope failures) ->
# (forbids, asks, permits, {rule index: exception or None} or None).
LeafFunction = Callable[..., tuple[list[Any], list[Any], list[Any], dict[int, Any] | None]]
Scope = dict[str, str]  # a quantifier's variable -> its Python name


class Unsupported(Exception):
    """An expression the generator leaves to the reference evaluator (rare forms)."""


def _no_target() -> None:
    raise Missing("the request has no `target`")


def _no_task() -> None:
    raise Missing("the request has no `task`")


def _path(value: object, names: tuple[str, ...]) -> object:
    """Read a chain of attributes; _MISSING (what `has` and `is` turn into false) when absent."""
    for n in names:
        if value is _MISSING:
            return value
        if isinstance(value, dict):
            value = value[n] if n in value else _MISSING
        else:
            attribute(value, n)  # raises the reference's error for a non-object
    return value


def _has_v(value: object, name: str) -> bool:
    return False if value is _MISSING else has(value, name)


def _is_v(value: object, label: Label) -> bool:
    return False if value is _MISSING else interp.is_label(value, label)


def _failed(failed: dict[int, BaseException | None] | None, index: int,
            exc: BaseException | None) -> dict[int, BaseException | None]:
    """Note that rule `index` is the reference's to decide: its compiled condition raised `exc`
    (None: it was not compiled)."""
    if failed is None:
        failed = {}
    failed[index] = exc
    return failed


BASE = {
    "_attribute": attribute, "_equal": equal, "_order": order, "_member": member,
    "_matches": matches, "_arith": arith, "_negate": negate, "_truth": truth,
    "_quantified": interp.quantified, "_metered": budget.metered, "_no_task": _no_task,
    "_chain_depth": chain_depth, "_LabelSet": LabelSet, "_no_target": _no_target, "_path": _path,
    "_has_v": _has_v, "_is_v": _is_v, "_MISSING": _MISSING, "_NUM": (int, float),
    "_total": interp.total, **{f"_{k}": f for k, f in interp.QUANTIFIERS.items()}, "timedelta": timedelta, "datetime": datetime,
    "_environment": interp.environment, "_failed": _failed, "_history": interp.history_value,
}

_counter = itertools.count()


def _root(e: ast.Expr, names: Iterable[str]) -> TypeGuard[ast.NameRef]:
    """Whether `e` is one of the condition names `names` (quantifier variables never are here:
    the analyses below do not look inside quantifiers)."""
    return isinstance(e, ast.NameRef) and e.name in names


class MayFail(ExprVisitor):
    """False only when an expression can never raise (so a decided outcome may skip it)."""

    def _never(self, e: ast.Expr) -> bool:
        return False

    def _maybe(self, e: ast.Expr) -> bool:
        return True

    visit_Literal = _never
    visit_Is = visit_Quant = visit_Call = _maybe

    def visit_NameRef(self, e: ast.NameRef) -> bool:
        return e.name in ("target", "task")

    def visit_Attr(self, e: ast.Attr) -> bool:
        return not (_root(e.obj, ("agent",)) and e.name.text in ("id", "attrs", "verified"))

    def visit_ListExpr(self, e: ast.ListExpr) -> bool:
        return any(self.visit(i) for i in e.items)

    def visit_Unary(self, e: ast.Unary) -> bool:
        return e.op != "not" or not is_boolean(e.operand) or self.visit(e.operand)

    def visit_Binary(self, e: ast.Binary) -> bool:
        if e.op in ("and", "or"):
            return any(not is_boolean(s) or self.visit(s) for s in (e.left, e.right))
        if e.op in ("==", "!=") or (e.op == "in" and isinstance(e.right, ast.ListExpr)):
            return bool(self.visit(e.left) or self.visit(e.right))
        return True

    def visit_Has(self, e: ast.Has) -> bool:
        return not _root(e.obj, ("args", "target", "agent", "task", "context", "chain"))


may_fail: Callable[[ast.Expr], bool] = MayFail().visit


class ExprGen(ExprVisitor):
    """Python source for the expressions of one leaf function: `visit(e, scope, walrus)`.

    `scope` maps the variables of the quantifiers around `e` to their Python names; `walrus`
    says whether the code may bind temporaries with `:=` (not inside a quantifier's generator).
    """

    def __init__(self, labels: dict[str, Label], lattice: Lattice):
        self.labels = labels
        self.lattice = lattice
        self.n = 0
        self.uses: set[str] = set()  # roots the leaf's preamble must bind
        self.values: list[object] = []  # the constants, in the order of their names
        self._consts: dict[object, str] = {}

    def const(self, value: object, key: object = None) -> str:
        """The name of a constant of the rule: `_c<slot>_<k>`, the slot written SLOT until the
        rule takes its place in a function."""
        key = key if key is not None else (type(value), value)
        name = self._consts.get(key)
        if name is None:
            name = f"_c{SLOT}_{len(self.values)}"
            self._consts[key] = name
            self.values.append(value)
        return name

    def tmp(self) -> str:
        self.n += 1
        return f"_t{self.n}"

    def boolean(self, e: ast.Expr, scope: Scope, walrus: bool, what: str) -> str:
        code: str = self.visit(e, scope, walrus)
        if is_boolean(e):
            return code
        if walrus:  # the common case inline: a call costs more than the test
            t = self.tmp()
            return f"({t} if type({t} := {code}) is bool else _truth({t}, {what!r}))"
        return f"_truth({code}, {what!r})"

    # -- one case per form ----------------------------------------------------------------------

    def visit_Literal(self, e: ast.Literal, scope: Scope, walrus: bool) -> str:
        return self.literal(e.value)

    def visit_ListExpr(self, e: ast.ListExpr, scope: Scope, walrus: bool) -> str:
        if all(isinstance(i, ast.Literal) for i in e.items):
            return self.literal_list(e)
        return "[" + ", ".join(self.visit(i, scope, walrus) for i in e.items) + "]"

    def visit_NameRef(self, e: ast.NameRef, scope: Scope, walrus: bool) -> str:
        return self.name(e.name, scope)

    def visit_Attr(self, e: ast.Attr, scope: Scope, walrus: bool) -> str:
        obj, name = e.obj, e.name.text
        root = obj.name if isinstance(obj, ast.NameRef) and obj.name not in scope else None
        if root == "agent" and name in ("id", "verified"):
            return f"ID.{name}"  # the identity check's, not the request's
        if root == "agent" and name == "attrs":
            self.uses.add("agent")
            return "AG.attrs"
        if root == "chain" and name == "depth":
            return "_chain_depth(R.chain)"
        if root == "task" and name in ("params", "kind"):
            return f"(R.task.{name} if R.task is not None else _no_task())"
        # The session is read straight from the request: a leaf that does not read it never
        # converts the history (agp.interp.environment's `session`).
        if root == "task" and name == "seen":
            self.uses.add("reads_session")  # no preamble: for RuleCode.session
            return "(_LabelSet('class', frozenset(R.task.seen)) if R.task is not None " \
                   "else _no_task())"
        if root == "task" and name == "history":
            self.uses.add("reads_session")
            return "(_history(R.task.history, NOW) if R.task is not None else _no_task())"
        if root == "task":  # another field of the task: the environment without the session
            self.uses.add("task")
            o = "E['task']"
        else:
            o = self.visit(obj, scope, walrus)
        k = repr(name)
        if walrus:
            t = self.tmp()
            return f"({t}[{k}] if type({t} := {o}) is dict and {k} in {t} else " \
                   f"_attribute({t}, {k}))"
        return f"_attribute({o}, {k})"

    def visit_Unary(self, e: ast.Unary, scope: Scope, walrus: bool) -> str:
        if e.op == "not":
            return f"(not {self.boolean(e.operand, scope, walrus, 'the operand of `not`')})"
        return f"_negate({self.visit(e.operand, scope, walrus)})"

    def visit_Binary(self, e: ast.Binary, scope: Scope, walrus: bool) -> str:
        op, left, right = e.op, e.left, e.right
        if op in ("and", "or"):
            what = f"an operand of `{op}`"
            return f"({self.boolean(left, scope, walrus, what)} {op} " \
                   f"{self.boolean(right, scope, walrus, what)})"
        if op in ("==", "!="):
            code = self.equality(left, right, scope, walrus)
            return code if op == "==" else f"(not {code})"
        if op in _ORDER:
            return self.ordering(op, left, right, scope, walrus)
        if op == "in":
            return self.membership(left, right, scope, walrus)
        if op == "matches":
            return self.matching(left, right, scope, walrus)
        if op in ("+", "-"):
            return f"_arith({op!r}, {self.visit(left, scope, walrus)}, " \
                   f"{self.visit(right, scope, walrus)})"
        raise Unsupported(op)

    def visit_Has(self, e: ast.Has, scope: Scope, walrus: bool) -> str:
        return f"_has_v({self.tolerant(e.obj, scope)}, {e.field.text!r})"

    def visit_Is(self, e: ast.Is, scope: Scope, walrus: bool) -> str:
        label = self.labels.get(e.name.text)
        if label is None:
            raise Unsupported("unknown label")
        obj = e.obj
        if isinstance(obj, ast.NameRef) and obj.name not in scope:
            if obj.name == "agent" and label.kind == "agent":
                assert label.glob is not None
                return f"{self.const(label.glob, key=('glob', label.glob.pattern))}.match(ID.id)"
            if obj.name == "task" and label.kind == "task":
                self.uses.add("task_kind")
                return f"(K == {label.name!r})"
        return f"_is_v({self.tolerant(obj, scope)}, {self.const(label, ('label', e.name.text))})"

    def visit_Quant(self, e: ast.Quant, scope: Scope, walrus: bool) -> str:
        var = f"_q{self.tmp()}"
        seq = self.visit(e.seq, scope, False)
        inner = {**scope, e.var.text: var}
        kept = "" if e.filter is None else \
            f" if {self.boolean(e.filter, inner, False, 'a quantifier filter')}"
        items = f"for {var} in _quantified({seq}, {interp.quant_size(e)}){kept}"
        if e.kind == "sum":
            code = f"_total(({self.visit(e.body, inner, False)} {items}), " \
                   f"{self.literal(e.zero)})"
        else:
            body = self.boolean(e.body, inner, False, "a quantifier body")
            code = f"_{e.kind}({body} {items})"
        # One not inside another owns an evaluation budget, as in the reference (agp.budget);
        # `_metered` checks at run time too, like the reference does.
        return code if scope else f"_metered(lambda: {code})"

    def visit_Call(self, e: ast.Call, scope: Scope, walrus: bool) -> str:
        fn = BUILTINS.get(e.func.text)
        if fn is None:
            raise Unsupported(f"unknown function {e.func.text!r}")
        impl = self.const(fn.impl, key=("fn", e.func.text))
        return f"{impl}({', '.join(self.visit(a, scope, walrus) for a in e.args)})"

    # -- parts ----------------------------------------------------------------------------------

    def literal_list(self, e: ast.ListExpr) -> str:
        # Keyed by the node, not its text: a list literal may be megabytes long, and the IR
        # outlives the generation of the function.
        return self.const(tuple(_values(e)), key=("list", id(e)))

    def literal(self, v: object) -> str:
        # Numbers and strings too are constants, not text: rules that differ only in them then
        # share their code (RuleCode).
        if isinstance(v, bool) or v is None:
            return repr(v)
        return self.const(v)

    def name(self, n: str, scope: Scope) -> str:
        if n in scope:
            return scope[n]
        if n in ROOTS:
            self.uses.add(n)
            if n == "task":  # the whole task object, its session included
                self.uses.add("session")
            return {
                "tool": "R.tool", "args": "ARGS", "intent": '_LabelSet("intent", I)',
                "data": '_LabelSet("class", D)', "target": "(T if T is not None else _no_target())",
                "agent": '{"id": ID.id, "attrs": AG.attrs, "verified": ID.verified}',
                "task": "E['task']", "chain": "E['chain']", "context": "R.context", "now": "NOW",
            }[n]
        label = self.labels.get(n)
        if label is None:
            raise Unsupported(f"unknown name {n!r}")
        return self.const(label, key=("label", n))

    def tolerant(self, e: ast.Expr, scope: Scope) -> str:
        """The value of an object for `has` and `is`: _MISSING instead of a Missing error."""
        names = []
        while isinstance(e, ast.Attr):
            names.append(e.name.text)
            e = e.obj
        if not isinstance(e, ast.NameRef):
            raise Unsupported("`has` or `is` on a computed object")
        if e.name in scope:
            root = scope[e.name]
        elif e.name == "target":
            self.uses.add("target")
            root = "(T if T is not None else _MISSING)"
        elif e.name == "task":
            self.uses.add("task")
            if not names or names[-1] in ("seen", "history"):  # `task has seen`, `task.seen ...`
                self.uses.add("session")
            root = "E.get('task', _MISSING)"
        else:
            root = self.name(e.name, scope)
        if not names:
            return root
        return f"_path({root}, {tuple(reversed(names))!r})"

    def matching(self, left: ast.Expr, right: ast.Expr, scope: Scope, walrus: bool) -> str:
        pattern = right.value if isinstance(right, ast.Literal) else None
        glob = compile_glob(pattern) if type(pattern) is str else None
        if glob is not None and walrus and glob.linear:  # `_matches` may refuse the others
            g = self.const(glob, key=("glob", pattern))
            t = self.tmp()
            s = self.visit(left, scope, walrus)
            return f"({g}.match({t}) if type({t} := {s}) is str else " \
                   f"_matches({t}, {self.literal(pattern)}))"
        return f"_matches({self.visit(left, scope, walrus)}, {self.visit(right, scope, walrus)})"

    def equality(self, left: ast.Expr, right: ast.Expr, scope: Scope, walrus: bool) -> str:
        if isinstance(left, ast.Literal) and not isinstance(right, ast.Literal):
            left, right = right, left  # equal() is symmetric
        if isinstance(right, ast.Literal):
            v = right.value
            if isinstance(v, bool):
                return f"({self.visit(left, scope, walrus)} is {v!r})"
            if walrus and (type(v) is str or type(v) in (int, float)):
                test = "is str" if type(v) is str else "in _NUM"
                t = self.tmp()
                lit = self.literal(v)
                return f"({t} == {lit} if type({t} := {self.visit(left, scope, walrus)}) " \
                       f"{test} else _equal({t}, {lit}))"
        return f"_equal({self.visit(left, scope, walrus)}, {self.visit(right, scope, walrus)})"

    def ordering(self, op: str, left: ast.Expr, right: ast.Expr, scope: Scope,
                 walrus: bool) -> str:
        lat = self.const(self.lattice, key=("lattice",))
        for a, b, o in ((left, right, op), (right, left, _FLIP[op])):
            # `data OP class`, written either way round: a table lookup when every class of the
            # request is declared (otherwise the shared function decides, and may fail).
            if _root(a, ("data",)) and "data" not in scope and isinstance(b, ast.NameRef) \
                    and b.name not in scope and self._is_class(b.name):
                return self.data_order(o, b.name, lat)
        if walrus:
            for a, b, flip in ((left, right, False), (right, left, True)):
                code = self.literal_order(op, a, b, flip, lat, scope)
                if code is not None:
                    return code
        return f"_order({op!r}, {self.visit(left, scope, walrus)}, " \
               f"{self.visit(right, scope, walrus)}, {lat})"

    def data_order(self, op: str, cls: str, lat: str) -> str:
        """`data OP cls`, as set operations on D with the shared function as fallback."""
        self.uses.add("data")
        below = self.lattice.below
        if op in ("<=", "<"):
            ok = frozenset(n for n in below if n in below[cls] and (op == "<=" or n != cls))
            test = f"D <= {self.const(ok, key=('set', op, cls))}"
        else:
            above = frozenset(n for n in below if cls in below[n] and (op == ">=" or n != cls))
            test = f"not D.isdisjoint({self.const(above, key=('set', op, cls))})"
        known = self.const(frozenset(below), key=("known",))
        label = self.const(self.labels[cls], key=("label", cls))
        return f"({test} if D <= {known} else _order({op!r}, _LabelSet('class', D), " \
               f"{label}, {lat}))"

    def literal_order(self, op: str, a: ast.Expr, b: ast.Expr, flip: bool, lat: str,
                      scope: Scope) -> str | None:
        """`a op b` (or `b op a` when `flip`) inlined for a literal `b` of an ordered type."""
        if not isinstance(b, ast.Literal):
            return None
        test = {str: "is str", int: "in _NUM", float: "in _NUM",
                timedelta: "is timedelta"}.get(type(b.value))
        if test is None:
            return None
        t, lit = self.tmp(), self.literal(b.value)
        av = self.visit(a, scope, True)
        expr = f"{lit} {op} {t}" if flip else f"{t} {op} {lit}"
        args = f"{lit}, {t}" if flip else f"{t}, {lit}"
        return f"({expr} if type({t} := {av}) {test} else _order({op!r}, {args}, {lat}))"

    def _is_class(self, name: str) -> bool:
        lb = self.labels.get(name)
        return lb is not None and lb.kind == "class"

    def membership(self, left: ast.Expr, right: ast.Expr, scope: Scope, walrus: bool) -> str:
        if isinstance(right, ast.ListExpr) and right.items and walrus \
                and all(isinstance(i, ast.Literal) for i in right.items):
            code = self.literal_membership(left, right, scope)
            if code is not None:
                return code
        if _root(right, ("intent", "data")) and right.name not in scope:
            code = self.label_membership(left, right.name, scope)
            if code is not None:
                return code
        return f"_member({self.visit(left, scope, walrus)}, {self.visit(right, scope, walrus)})"

    def literal_membership(self, left: ast.Expr, right: ast.ListExpr, scope: Scope) -> str | None:
        values = _values(right)
        lst = self.literal_list(right)
        t = self.tmp()
        if all(type(v) is str for v in values):
            s = self.const(frozenset(values), key=("strs", id(right)))
            test = "is str"
        elif all(type(v) in (int, float) for v in values):
            s = self.const(frozenset(values), key=("nums", id(right)))
            test = "in _NUM"
        else:
            return None
        item = self.visit(left, scope, True)
        return f"({t} in {s} if type({t} := {item}) {test} else _member({t}, {lst}))"

    def label_membership(self, left: ast.Expr, root: str, scope: Scope) -> str | None:
        """`"x" in intent`, `pii in data`: a set lookup when the name is known at compile time."""
        want = "intent" if root == "intent" else "class"
        names = None
        if isinstance(left, ast.Literal) and type(left.value) is str:
            names = left.value
        elif isinstance(left, ast.NameRef) and left.name not in scope and left.name not in ROOTS:
            lb = self.labels.get(left.name)
            if lb is not None and lb.kind == want:
                names = lb.name
        if names is None:
            return None
        self.uses.add(root)
        return f"({self.literal(names)} in {'I' if want == 'intent' else 'D'})"


def _values(e: ast.ListExpr) -> list[object]:
    return [i.value for i in e.items if isinstance(i, ast.Literal)]


def _agents_test(gen: ExprGen, patterns: Sequence[str]) -> str:
    exact = frozenset(p for p in patterns if "*" not in p and "?" not in p)
    tests = []
    if exact:
        tests.append(f"AID in {gen.const(exact, key=('agents', tuple(sorted(exact))))}")
    for p in patterns:
        if p not in exact:
            tests.append(f"{gen.const(compile_glob(p), key=('glob', p))}.match(AID)")
    return " or ".join(tests) if tests else "False"


# The slot of a rule in its function, in the text of the rule's code until the function is
# assembled. A NUL never appears in what repr() writes, nor in anything else the generator writes.
SLOT = "\x00"

# A line of a rule's code: as compiled (comments name no rule, so that rules that differ only in
# constants share the text), as shown (linecache, tracebacks, `agp compile --emit python`), and
# the policy span it comes from.
Line = tuple[str, str, Span]


@dataclass(frozen=True, slots=True)
class RuleCode:
    """One rule's code, generated once and assembled into every function that runs the rule.

    Its constants are named `_c<slot>_<k>` (the slot written SLOT): the text depends only on the
    rule's form, so the functions of leaves whose rules differ only in constants are the same
    text, compiled once (`Context.code`), each bound to its own constants.
    """

    lines: tuple[Line, ...]
    values: tuple[object, ...]  # constant k's value
    uses: frozenset[str]  # the request's parts the rule reads (agp.compile.codegen._preamble)
    form: str  # the lines as compiled, joined: what leaves share (a str keeps its hash)
    # Whether the reference evaluator, deciding the rule when its code raised or was not
    # written, needs the task's session in its environment (agp.interp.environment).
    session: bool = True


def _conditions(gen: ExprGen, rule: IRRule) -> list[tuple[str, ast.Expr]] | None:
    """The Python tests of the rule's `when` and `unless`; None when the generator cannot write
    one (the reference evaluator then decides the rule)."""
    conds = []
    try:
        if rule.when is not None:
            conds.append((gen.boolean(rule.when, {}, True, "a condition"), rule.when))
        if rule.unless is not None:
            conds.append(("not " + gen.boolean(rule.unless, {}, True, "a condition"),
                          rule.unless))
    except Unsupported:
        return None
    return conds


def rule_code(rule: IRRule, dyn: frozenset[str] | None, record: object,
              labels: dict[str, Label], lattice: Lattice) -> RuleCode:
    """The code of one rule: its guards (the request's intents, its agent), then its test."""
    gen = ExprGen(labels, lattice)
    span = rule.span
    idx = gen.const(rule.index, key=("index",))
    lines: list[Line] = [("# rule", f"# {rule.effect} {rule.name!r} at {str(span)!r}", span)]
    guards = []
    if dyn is not None:
        gen.uses.add("intent")
        guards.append(f"not {gen.const(dyn, key=('oi',))}.isdisjoint(I)")
    if rule.agents is not None:
        gen.uses.add("aid")
        guards.append(f"({_agents_test(gen, rule.agents)})")
    conds = _conditions(gen, rule)
    if rule.effect != "forbid" and conds is not None and not any(
            may_fail(e) or not is_boolean(e) for _, e in conds):
        # The outcome is already deny: a rule that cannot fail changes nothing.
        guards.insert(0, "not (failed or F)")
    pad = ""
    if guards:
        text = f"if {' and '.join(guards)}:"
        lines.append((text, text, span))
        pad = "    "
    match = f"{_TARGETS[rule.effect]}.append({gen.const(record, key=('rule',))})"

    def line(text: str, where: Span = span, comment: str = "") -> None:
        lines.append((pad + text, pad + text + comment, where))

    if conds is None:
        line(f"X = _failed(X, {idx}, None)")
    elif not conds:
        line(match)
    else:
        test, where = " and ".join(f"({c})" for c, _ in conds), conds[0][1].span
        line("try:")
        line(f"    if {test}:", where, f"  # at {str(where)!r}")
        line(f"        {match}")
        line("except Exception as _e:")
        line(f"    X = _failed(X, {idx}, _e)")
    return RuleCode(tuple(lines), tuple(gen.values), frozenset(gen.uses),
                    "\n".join(text for text, _, _ in lines),
                    session=conds is None or not gen.uses.isdisjoint(("session", "reads_session")))


def _preamble(uses: frozenset[str], durations: frozenset[str]) -> list[str]:
    """The request's parts the leaf's rules read, bound once at the top of the function."""
    pre = ["F = []", "A = []", "P = []", "X = None"]
    if "agent" in uses:
        pre.append("AG = R.agent")
    if "aid" in uses:
        pre.append("AID = ID.id")
    if "task_kind" in uses:
        pre.append("K = R.task.kind if R.task is not None else None")
    if "target" in uses:
        pre.append("T = R.target")
    if uses & {"task", "chain"} or ("args" in uses and durations):
        pre.append(f"E = _environment(R, NOW, ID, I, D, _DURATIONS, {'session' in uses})")
    if "args" in uses:
        pre.append("ARGS = E['args']" if durations else "ARGS = R.args")
    return pre


_HEAD = "def leaf(R, ID, I, D, NOW, failed):"
_NOW = re.compile(r"\bNOW\b")


def generate_leaf(rules: Sequence[tuple[IRRule, frozenset[str] | None]],
                  durations: frozenset[str], ctx: Context) -> LeafFunction:
    """The function deciding `rules`, compiled, with its source registered in linecache and its
    line map in `ctx.line_maps` for as long as the function lives.

    `rules` are one leaf's candidate rules for one task kind, as (rule, the `on intent` names
    the request itself must name, or None), in policy order; forbids and asks are emitted before
    permits. `durations` are the duration arguments of the tool declarations the leaf matches.
    The code depends on nothing else (no tool name, no task kind), so leaves share it.
    """
    n = next(_counter)
    ordered = sorted(rules, key=lambda c: EFFECTS.index(c[0].effect))  # stable: policy order
    codes = [ctx.rule_code(rule, dyn) for rule, dyn in ordered]
    pre = ["    " + p for p in _preamble(frozenset().union(*(c.uses for c in codes)), durations)]
    # A namespace per function, not one per policy set: when the function is dropped (a leaf
    # memo evicts it, a reload replaces the evaluator) its constants go with it.
    ns = dict(ctx.namespace)
    ns["_DURATIONS"] = durations
    compiled, shown = [_HEAD, *pre], [f"def leaf_{n}(R, ID, I, D, NOW, failed):", *pre]
    spans: dict[int, Span] = {}
    starts, names = [], []
    for slot, ((rule, _), rc) in enumerate(zip(ordered, codes, strict=True)):
        s = str(slot)
        for k, value in enumerate(rc.values):
            ns[f"_c{s}_{k}"] = value
        starts.append(len(compiled) + 1)
        names.append(f"{rule.effect} {rule.name}")
        for text, comment, span in rc.lines:
            compiled.append("    " + text.replace(SLOT, s))
            shown.append("    " + comment.replace(SLOT, s))
            spans[len(compiled)] = span
    compiled.append("    return F, A, P, X")
    shown.append("    return F, A, P, X")
    ns[LINE_MAP] = LineMap(spans, tuple(starts), tuple(names))
    filename = f"<agp {ctx.hash[7:19]} leaf {n}>"
    # The text is a function of the preamble and the rules' forms: they key the compiled code.
    form = (tuple(pre), *(c.form for c in codes))
    code = _renamed(ctx.code(form, compiled), filename, f"leaf_{n}")
    fn = FunctionType(code, ns, f"leaf_{n}")
    # The text is ours (constants are names, never text): a NOW in it is the argument.
    fn.reads_now = any(_NOW.search(line) for line in compiled[1:])  # type: ignore[attr-defined]
    linecache.cache[filename] = (0, None, [line + "\n" for line in shown], filename)
    ctx.line_maps[filename] = spans
    weakref.finalize(fn, _forget, filename, ctx.line_maps).atexit = False  # nothing to tidy then
    return fn


def reads_now(fn: LeafFunction) -> bool:
    """Whether a leaf function reads its NOW argument (when nothing else needs the time, the
    evaluator then does not take it for a request without `now`)."""
    return getattr(fn, "reads_now", True)


def compile_leaf(lines: list[str]) -> CodeType:
    """The code of the function that `lines` (a leaf's text as compiled) define."""
    # Our own source: the IR's strings enter it only as constants, never as text.
    module = compile("\n".join(lines) + "\n", "<agp leaf>", "exec")
    return next(c for c in module.co_consts if isinstance(c, CodeType))


def _renamed(code: CodeType, filename: str, name: str | None = None) -> CodeType:
    """A copy of shared code under the function's own pseudo-filename (and name), nested code
    (quantifiers' generators and lambdas) included. Each function also gets its own copy of the
    bytecode, so the interpreter's specialisation of one never fights another's namespace."""
    consts = code.co_consts
    if any(isinstance(c, CodeType) for c in consts):
        consts = tuple(_renamed(c, filename) if isinstance(c, CodeType) else c for c in consts)
    if name is None:
        return code.replace(co_filename=filename, co_consts=consts)
    return code.replace(co_filename=filename, co_consts=consts, co_name=name, co_qualname=name)


def _forget(filename: str, line_maps: dict[str, dict[int, Span]]) -> None:
    """A generated function was freed: so are its linecache entry and its line map."""
    linecache.cache.pop(filename, None)
    line_maps.pop(filename, None)
