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

Code is generated once per rule *form* (`Forms`: the rule with its literals abstracted, see
`shape`), bound to each rule's own constants (a `RuleCode`), and assembled into the function of
each leaf that runs the rule. A rule's constants (numbers, strings, lists, sets, labels, its
own record) are not written into the text: they are names, `_c<slot>_<k>`, bound in the
function's namespace. So leaves whose rules differ only in constants have the same text, which
is compiled once (`Context.code`); each leaf's function is that code under its own name and
pseudo-filename, over its own namespace. That is what makes generating every leaf at load cheap.

Every function gets its own namespace (its constants, over the names all functions share as
their `__builtins__`: `BASE`), a unique pseudo-filename registered in `linecache` (with comments
naming each rule and its position), and a line map from generated lines back to policy spans:
in the namespace (`agp.compile.debug`, so that a traceback through generated code shows the
policy line) and in `Context.line_maps` (`CompiledEvaluator.locate`, for profiles). The text and
the line map are made when first read (`_Lines`): loading generates thousands of functions whose
lines nobody reads. The linecache entry and the line map are dropped when the function is freed,
so their number follows the number of live functions, which the decision tree bounds.
"""

from __future__ import annotations

import builtins
import dataclasses
import itertools
import linecache
import re
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any, TypeGuard

from agp import budget, interp
from agp.compile.debug import LINE_MAP, LineMap, Text
from agp.compile.ir import EFFECTS, IRRule, interned
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


_SHARED = {
    "_attribute": attribute, "_equal": equal, "_order": order, "_member": member,
    "_matches": matches, "_arith": arith, "_negate": negate, "_truth": truth,
    "_quantified": interp.quantified, "_metered": budget.metered, "_no_task": _no_task,
    "_chain_depth": chain_depth, "_LabelSet": LabelSet, "_no_target": _no_target, "_path": _path,
    "_has_v": _has_v, "_is_v": _is_v, "_MISSING": _MISSING, "_NUM": (int, float),
    "_total": interp.total, **{f"_{k}": f for k, f in interp.QUANTIFIERS.items()}, "timedelta": timedelta, "datetime": datetime,
    "_environment": interp.environment, "_failed": _failed, "_history": interp.history_value,
}
# The namespace every generated function starts from (each gets a copy, with its constants).
# What all of them read (the functions above, and Python's builtins) is one dict, shared as the
# functions' `__builtins__`: a name a function's own namespace lacks is looked up there, as fast
# (the interpreter specialises both lookups alike). Copying those ~45 names into every
# function's namespace instead made each several times larger, for 5,000 leaves at load.
BASE: dict[str, Any] = {"__builtins__": {**builtins.__dict__, **_SHARED}}

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

    def __init__(self, labels: dict[str, Label], lattice: Lattice, holes: dict[int, int]):
        self.labels = labels
        self.lattice = lattice
        self.holes = holes  # id of a hole node of the rule's form (`shape`) -> its position
        self.n = 0
        self.uses: set[str] = set()  # roots the leaf's preamble must bind
        self.recipes: list[Recipe] = []  # where each constant comes from, in their names' order
        self._consts: dict[object, str] = {}

    def recipe(self, recipe: Recipe, key: object) -> str:
        """The name of a constant of the rule: `_c<slot>_<k>`, the slot written SLOT until the
        rule takes its place in a function."""
        name = self._consts.get(key)
        if name is None:
            name = f"_c{SLOT}_{len(self.recipes)}"
            self._consts[key] = name
            self.recipes.append(recipe)
        return name

    def const(self, value: object, key: object = None) -> str:
        """A constant that the form fixes (it depends only on what the form's key holds)."""
        return self.recipe(("fixed", value), key if key is not None else (type(value), value))

    def hole(self, kind: str, node: ast.Expr) -> str:
        """A constant made from a hole of the form (a literal, or a list of literals): each rule
        of the form binds its own (`bind`)."""
        i = self.holes[id(node)]
        return self.recipe((kind, i), (kind, i))

    def rule_part(self, kind: str, j: int = 0) -> str:
        """A constant made from the rule itself rather than its conditions (`bind`)."""
        return self.recipe((kind, j), (kind, j))

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
        return self.literal(e.value, e)

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
        return self.hole("tuple", e)

    def literal(self, v: object, node: ast.Expr | None = None) -> str:
        """A literal value: from the hole `node` of the form, or fixed by the form (None)."""
        # Numbers and strings too are constants, not text: rules that differ only in them then
        # share their code (RuleCode). The form's key holds booleans and null (`shape`).
        if isinstance(v, bool) or v is None:
            return repr(v)
        return self.const(v) if node is None else self.hole("value", node)

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
        if isinstance(right, ast.Literal) and type(right.value) is str and walrus:
            g = self.hole("matcher", right)
            t = self.tmp()
            s = self.visit(left, scope, walrus)
            return f"({g}.match({t}) if type({t} := {s}) is str else " \
                   f"_matches({t}, {self.literal(right.value, right)}))"
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
                lit = self.literal(v, right)
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
        t, lit = self.tmp(), self.literal(b.value, b)
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
            s = self.hole("set", right)
            test = "is str"
        elif all(type(v) in (int, float) for v in values):
            s = self.hole("set", right)
            test = "in _NUM"
        else:
            return None
        item = self.visit(left, scope, True)
        return f"({t} in {s} if type({t} := {item}) {test} else _member({t}, {lst}))"

    def label_membership(self, left: ast.Expr, root: str, scope: Scope) -> str | None:
        """`"x" in intent`, `pii in data`: a set lookup when the name is known at compile time."""
        want = "intent" if root == "intent" else "class"
        name = None
        if isinstance(left, ast.Literal) and type(left.value) is str:
            name = self.literal(left.value, left)
        elif isinstance(left, ast.NameRef) and left.name not in scope and left.name not in ROOTS:
            lb = self.labels.get(left.name)
            if lb is not None and lb.kind == want:
                name = self.literal(lb.name)
        if name is None:
            return None
        self.uses.add(root)
        return f"({name} in {'I' if want == 'intent' else 'D'})"


def _values(e: ast.ListExpr) -> list[object]:
    return [i.value for i in e.items if isinstance(i, ast.Literal)]


def _agents_test(gen: ExprGen, patterns: Sequence[str]) -> str:
    exact = any("*" not in p and "?" not in p for p in patterns)
    tests = [f"AID in {gen.rule_part('agents')}"] if exact else []
    globs = sum("*" in p or "?" in p for p in patterns)
    tests += [f"{gen.rule_part('agent_glob', j)}.match(AID)" for j in range(globs)]
    return " or ".join(tests) if tests else "False"


def _agent_parts(patterns: Sequence[str]) -> tuple[frozenset[str], list[str]]:
    """The exact agent patterns of a rule, and its globs in order (`_agents_test`)."""
    exact = frozenset(p for p in patterns if "*" not in p and "?" not in p)
    return exact, [p for p in patterns if p not in exact]


# The slot of a rule in its function, in the text of the rule's code until the function is
# assembled. A NUL never appears in what repr() writes, nor in anything else the generator writes.
SLOT = "\x00"

# A line of a rule's code: as compiled (comments name no rule, so that rules that differ only in
# constants share the text), as shown (linecache, tracebacks, `agp compile --emit python`), and
# the policy span it comes from.
Line = tuple[str, str, Span]

# Where a constant of a rule's code comes from: ("fixed", value) for a value the form fixes;
# (kind, i) for a value made from the rule's i-th hole (kind: value, tuple, set, matcher) or
# from the rule itself (index, record, dyn, agents, agent_glob). `bind` makes the values.
Recipe = tuple[Any, ...]


# ---- forms: a rule's code keyed by its shape, literals abstracted -----------------------------
#
# Generating a rule's code (`ExprGen`) costs about 50 µs; policy sets repeat a few shapes of rule
# many times over with other constants. So the generator runs once per *form*: the rule with its
# literals abstracted to their kinds (`shape`). It writes no literal into the text (each is a
# constant, named), and its decisions depend on a literal's type only (and on the value of a
# boolean or null, which the key keeps): every rule of the form has the same text, and binds its
# own constants by the form's recipes. The tests hold a rule's code from its form equal to the
# code generated for the rule alone.

_BOOL_NULL = (True, False, None)


def _literal_kind(v: object) -> object:
    return v if v is True or v is False or v is None else type(v)


def _list_kind(values: Sequence[object]) -> str:
    """What the generator tells apart in a list of literals (`literal_membership`)."""
    if not values:
        return "empty"
    if all(type(v) is str for v in values):
        return "str"
    return "num" if all(type(v) in (int, float) for v in values) else "other"


# The fields of each form of expression but its span, and how `_shape` reads them.
_FIELDS = {form: tuple(f.name for f in dataclasses.fields(form) if f.name != "span")
           for form in ast.EXPR_FORMS}


def _shape(e: Any, holes: list[ast.Expr]) -> object:
    """The key of an expression with its literals abstracted; its holes appended in order.
    (The commonest forms first, written out: this runs once per rule.)"""
    t = type(e)
    if t is ast.Binary:
        return (t, e.op, _shape(e.left, holes), _shape(e.right, holes))
    if t is ast.Attr:
        return (t, _shape(e.obj, holes), e.name.text)
    if t is ast.NameRef:
        return e.name
    if t is ast.Literal:
        holes.append(e)
        return ("L", _literal_kind(e.value))
    if t is ast.ListExpr and all(type(i) is ast.Literal for i in e.items):
        holes.append(e)
        return ("LL", _list_kind(_values(e)))
    fields = _FIELDS.get(t)
    if fields is not None:
        return (t, *[_shape(getattr(e, f), holes) for f in fields])
    if t is tuple:
        return tuple([_shape(x, holes) for x in e])
    if t is ast.Name:
        return e.text
    return e  # a string, null, a quantifier's zero: part of the form as it is


def cond_shape(rule: IRRule) -> tuple[object, list[ast.Expr]]:
    """The key of a rule's form but for its `on intent` guard (see `shape`), and its holes (the
    literals and lists of literals, in order). For a rule with its own AST only."""
    holes: list[ast.Expr] = []
    agents = None
    if rule.agents is not None:
        exact, globs = _agent_parts(rule.agents)
        agents = (bool(exact), len(globs))
    return (rule.effect, agents, _shape(rule.when, holes), _shape(rule.unless, holes)), holes


def hole_value(e: ast.Expr) -> object:
    """What a rule binds from one of its holes: a literal's value, or a list's as a tuple."""
    if isinstance(e, ast.Literal):
        return e.value
    assert isinstance(e, ast.ListExpr)
    return tuple(_values(e))


def hole_kind(value: object) -> object:
    """What the form's key holds of a hole's value (`_shape`): a bundle checks its rules' holes
    against their form's by it."""
    if type(value) is tuple:
        return ("LL", _list_kind(value))
    return ("L", _literal_kind(value))


def shape(rule: IRRule, dyn: frozenset[str] | None) -> tuple[object, tuple[object, ...]]:
    """The key of a rule's form (what its code's text depends on) and its holes' values."""
    ref = rule.form
    if ref is not None:  # read from a bundle (agp.compile.ir.FormRef)
        return (ref.key, dyn is None), ref.holes
    key, holes = cond_shape(rule)
    return (key, dyn is None), tuple([hole_value(h) for h in holes])


def bind(recipes: Sequence[Recipe], holes: Sequence[Any], rule: IRRule,
         dyn: frozenset[str] | None, record: object,
         sets: dict[tuple[str, ...], frozenset[str]] | None = None) -> tuple[object, ...]:
    """The values of a rule's constants, by its form's recipes (`holes`: the values of its
    holes, `hole_value`; `sets`: the sets of strings made so far, shared, see
    `agp.compile.ir.interned`)."""
    out: list[object] = []
    for kind, x in recipes:
        if kind == "fixed":
            out.append(x)
        elif kind in ("value", "tuple"):
            out.append(holes[x])
        elif kind == "set":
            items = holes[x]
            # Only strings: 1 and 1.0 are equal, but `--emit python` shows them apart.
            out.append(interned(items, sets) if sets is not None and
                       all(type(v) is str for v in items) else frozenset(items))
        elif kind == "matcher":
            out.append(_matcher(holes[x]))
        elif kind == "index":
            out.append(rule.index)
        elif kind == "record":
            out.append(record)
        elif kind == "dyn":
            out.append(dyn)
        else:
            assert rule.agents is not None
            exact, globs = _agent_parts(rule.agents)
            out.append(exact if kind == "agents" else compile_glob(globs[x]))
    return tuple(out)


class _Costly:
    """The matcher of a pattern whose matching is not linear: the shared function, which may
    refuse a long subject (so the code is the same whatever the pattern)."""

    __slots__ = ("pattern",)

    def __init__(self, pattern: str):
        self.pattern = pattern

    def match(self, subject: str) -> bool:
        return matches(subject, self.pattern)


def _matcher(pattern: str) -> object:
    glob = compile_glob(pattern)
    return glob if glob.linear else _Costly(pattern)


@dataclass(frozen=True, slots=True)
class Form:
    """The code of every rule of one form: its lines as compiled, which of them carry a
    comment naming the policy (0: the rule's heading, 1: its condition, None: neither), the
    span each comes from (0: the rule's, 1: its first condition's), and its constants' recipes."""

    lines: tuple[tuple[str, int | None], ...]
    recipes: tuple[Recipe, ...]
    uses: frozenset[str]
    text: str  # the lines joined: what leaves share (a str keeps its hash)
    session: bool


@dataclass(frozen=True, slots=True)
class RuleCode:
    """One rule's code, generated once and assembled into every function that runs the rule.

    Its constants are named `_c<slot>_<k>` (the slot written SLOT): the text depends only on the
    rule's form, so the functions of leaves whose rules differ only in constants are the same
    text, compiled once (`Context.code`), each bound to its own constants. The lines as shown
    (with comments naming the rule) and their spans are made only when read (`lines`).
    """

    values: tuple[object, ...]  # constant k's value
    uses: frozenset[str]  # the request's parts the rule reads (agp.compile.codegen._preamble)
    form: str  # the lines as compiled, joined: what leaves share (a str keeps its hash)
    # Whether the reference evaluator, deciding the rule when its code raised or was not
    # written, needs the task's session in its environment (agp.interp.environment).
    session: bool
    rule: IRRule
    code: Form  # the rule's form

    @property
    def label(self) -> str:
        """`effect name`, for tracebacks (agp.compile.debug.LineMap)."""
        return f"{self.rule.effect} {self.rule.name}"

    @property
    def lines(self) -> tuple[Line, ...]:
        """The rule's lines: as compiled, as shown, and the policy span each comes from."""
        rule = self.rule
        span, ref = rule.span, rule.form
        where = span
        if ref is not None:
            where = ref.where
        elif rule.when is not None or rule.unless is not None:
            where = (rule.when if rule.when is not None else rule.unless).span  # type: ignore[union-attr]
        heading = f"# {rule.effect} {rule.name!r} at {str(span)!r}"
        at = f"  # at {str(where)!r}"
        return tuple((text, heading if note == 0 else text + at if note == 1 else text,
                      where if note == 1 else span) for text, note in self.code.lines)


class Forms:
    """The forms of one policy set's rules and leaves, each generated once."""

    LEAVES = 1024  # leaf forms kept (like Context.FUNCTIONS: unmentioned names can add some)

    def __init__(self, labels: dict[str, Label], lattice: Lattice):
        self.labels = labels
        self.lattice = lattice
        self.rules: dict[object, Form] = {}  # bounded by the policy's rules
        self.sets: dict[tuple[str, ...], frozenset[str]] = {}  # bounded likewise (`bind`)
        self.leaves: dict[tuple[object, ...], _LeafForm] = {}

    def rule_code(self, rule: IRRule, dyn: frozenset[str] | None, record: object) -> RuleCode:
        """The code of one rule: its form's, with its own constants and policy positions."""
        key, holes = shape(rule, dyn)
        form = self.rules.get(key)
        ref = rule.form
        if form is None:  # generated from the rule, or from the first rule of its form
            example = rule if ref is None else ref.example
            form = self.rules[key] = _form(example, dyn, cond_shape(example)[1], self.labels,
                                           self.lattice)
        return RuleCode(bind(form.recipes, holes, rule, dyn, record, self.sets), form.uses,
                        form.text, form.session, rule, form)


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


def _form(rule: IRRule, dyn: frozenset[str] | None, holes: list[ast.Expr],
          labels: dict[str, Label], lattice: Lattice) -> Form:
    """The code of a rule's form, generated from the rule: its guards (the request's intents,
    its agent), then its test."""
    gen = ExprGen(labels, lattice, {id(h): i for i, h in enumerate(holes)})
    idx = gen.rule_part("index")
    lines: list[tuple[str, int | None]] = [("# rule", 0)]
    guards = []
    if dyn is not None:
        gen.uses.add("intent")
        guards.append(f"not {gen.rule_part('dyn')}.isdisjoint(I)")
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
        lines.append((f"if {' and '.join(guards)}:", None))
        pad = "    "
    match = f"{_TARGETS[rule.effect]}.append({gen.rule_part('record')})"
    if conds is None:
        lines.append((f"{pad}X = _failed(X, {idx}, None)", None))
    elif not conds:
        lines.append((pad + match, None))
    else:
        test = " and ".join(f"({c})" for c, _ in conds)
        lines += [(f"{pad}try:", None), (f"{pad}    if {test}:", 1),
                  (f"{pad}        {match}", None), (f"{pad}except Exception as _e:", None),
                  (f"{pad}    X = _failed(X, {idx}, _e)", None)]
    return Form(tuple(lines), tuple(gen.recipes), frozenset(gen.uses),
                "\n".join(text for text, _ in lines),
                conds is None or not gen.uses.isdisjoint(("session", "reads_session")))


def rule_code(rule: IRRule, dyn: frozenset[str] | None, record: object,
              labels: dict[str, Label], lattice: Lattice) -> RuleCode:
    """The code of one rule generated for it alone (the tests compare it with its form's)."""
    return Forms(labels, lattice).rule_code(rule, dyn, record)


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


@dataclass(frozen=True, slots=True)
class _LeafForm:
    """What every leaf function of one text shares: the code, and where each rule starts."""

    code: CodeType
    pre: tuple[str, ...]  # the preamble's lines, indented
    starts: tuple[int, ...]  # the first generated line of each rule's code
    names: tuple[tuple[str, ...], ...]  # each rule's constants' names
    reads_now: bool


def _leaf_form(codes: Sequence[RuleCode], durations: frozenset[str], ctx: Context,
               ) -> _LeafForm:
    forms = ctx.forms
    uses = frozenset().union(*(c.uses for c in codes))
    key = (bool(durations), uses, *(c.form for c in codes))
    found = forms.leaves.get(key)
    if found is not None:
        return found
    pre = tuple("    " + p for p in _preamble(uses, durations))
    compiled, starts, names = [_HEAD, *pre], [], []
    for slot, rc in enumerate(codes):
        s = str(slot)
        starts.append(len(compiled) + 1)
        names.append(tuple(f"_c{s}_{k}" for k in range(len(rc.values))))
        compiled += ["    " + text.replace(SLOT, s) for text, _ in rc.code.lines]
    compiled.append("    return F, A, P, X")
    # The text is ours (constants are names, never text): a NOW in it is the argument.
    now = any(_NOW.search(line) for line in compiled[1:])
    found = _LeafForm(ctx.code((pre, *(c.form for c in codes)), compiled), pre, tuple(starts),
                      tuple(names), now)
    if len(forms.leaves) >= forms.LEAVES:
        forms.leaves.pop(next(iter(forms.leaves)), None)
    forms.leaves[key] = found
    return found


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
    lf = _leaf_form(codes, durations, ctx)
    # A namespace per function, not one per policy set: when the function is dropped (a leaf
    # memo evicts it, a reload replaces the evaluator) its constants go with it.
    ns = dict(ctx.namespace)
    ns["_DURATIONS"] = durations
    for names, rc in zip(lf.names, codes, strict=True):
        ns.update(zip(names, rc.values, strict=True))
    name = f"leaf_{n}"
    lines = ns[LINE_MAP] = _Lines(name, lf, tuple(codes))
    filename = f"<agp {ctx.hash[7:19]} leaf {n}>"
    fn = FunctionType(_renamed(lf.code, filename, name), ns, name)
    fn.reads_now = lf.reads_now  # type: ignore[attr-defined]
    # Its lines and line map are made when first read (a traceback, `locate`): see _Lines.
    linecache.cache[filename] = (0, None, Text(lines), filename)  # type: ignore[assignment]
    ctx.line_maps[filename] = lines
    weakref.finalize(fn, _forget, filename, ctx.line_maps).atexit = False  # nothing to tidy then
    return fn


class _Lines(LineMap):
    """The line map and the text shown of one leaf function, made when first read."""

    __slots__ = ("_name", "_form", "_codes")

    def __init__(self, name: str, form: _LeafForm, codes: tuple[RuleCode, ...]):
        super().__init__(form.starts)
        self._name = name
        self._form = form
        self._codes = codes

    def make(self) -> tuple[dict[int, Span], tuple[str, ...], list[str]]:
        lf = self._form
        shown = [f"def {self._name}(R, ID, I, D, NOW, failed):\n", *[p + "\n" for p in lf.pre]]
        spans: dict[int, Span] = {}
        for slot, rc in enumerate(self._codes):
            line, s = lf.starts[slot], str(slot)
            for _, comment, span in rc.lines:
                shown.append("    " + comment.replace(SLOT, s) + "\n")
                spans[line] = span
                line += 1
        shown.append("    return F, A, P, X\n")
        return spans, tuple(c.label for c in self._codes), shown


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


def _forget(filename: str, line_maps: dict[str, Mapping[int, Span]]) -> None:
    """A generated function was freed: so are its linecache entry and its line map."""
    linecache.cache.pop(filename, None)
    line_maps.pop(filename, None)
