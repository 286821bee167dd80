"""Compiler passes: pure functions from Program to Program, run in the order of PASSES.

A pass returns a new Program and shares every node it does not change. Rules keep their
`index` (their position in the policy set) when a pass drops others: decisions list rules in that
order, and the error path finds a rule's original conditions by it. No pass grows an
expression, so none needs a size budget.

>>> from agp.compile.ir import policy_to_ir
>>> from agp.loader import check_sources
>>> from agp.source import Source
>>> text = "permit a on t when 2 > 1 and args.n > 1\\npermit b on t when 1 > 2"
>>> policy, _ = check_sources([Source("p.agp", text)])
>>> [(r.index, r.name, r.when.op) for r in optimise(policy_to_ir(policy)).rules]
[(0, 'a', '>')]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TypeGuard

from agp.compile.ir import IRLabel, IRRule, Program, lattice_of
from agp.syntax import ast
from agp.syntax.visit import ExprVisitor
from agp.values import EvalError, Label, Lattice, arith, equal, negate, order

_BOOL_OPS = frozenset(("and", "or", "==", "!=", "<", "<=", ">", ">=", "in", "matches"))
_ORDER = frozenset(("<", "<=", ">", ">="))


class IsBoolean(ExprVisitor):
    """Whether an expression's value, when it has one, is always a bool (so no truth check)."""

    def visit_Literal(self, e: ast.Literal) -> bool:
        return isinstance(e.value, bool)

    def visit_Binary(self, e: ast.Binary) -> bool:
        return e.op in _BOOL_OPS

    def visit_Unary(self, e: ast.Unary) -> bool:
        return e.op == "not"

    def _always(self, e: ast.Expr) -> bool:
        return True

    def _never(self, e: ast.Expr) -> bool:
        return False

    def visit_Quant(self, e: ast.Quant) -> bool:
        return e.kind in ("any", "all")

    visit_Has = visit_Is = _always
    visit_ListExpr = visit_NameRef = visit_Attr = visit_Call = _never


is_boolean: Callable[[ast.Expr], bool] = IsBoolean().visit


def _same(new: tuple[ast.Expr, ...], old: tuple[ast.Expr, ...]) -> bool:
    # By identity: a list literal may have a million items, and its nodes never change.
    return all(a is b for a, b in zip(new, old, strict=True))


def _is_literal_bool(e: ast.Expr) -> TypeGuard[ast.Literal]:
    return isinstance(e, ast.Literal) and isinstance(e.value, bool)


class Fold(ExprVisitor):
    """Constant folding: literal arithmetic and comparisons, class-vs-class lattice tests, `not`
    of a literal, and `and`/`or` with a literal first operand, only where the result keeps the
    same value and the same errors. Nodes that do not change are returned as they are."""

    def __init__(self, labels: Mapping[str, IRLabel], lattice: Lattice):
        self.labels = labels
        self.lattice = lattice

    def visit_Literal(self, e: ast.Literal) -> ast.Expr:
        return e

    visit_NameRef = visit_Literal

    def visit_Quant(self, e: ast.Quant) -> ast.Expr:
        # Left as written: a quantifier spends evaluation budget per node of its body and for
        # the work inside it (agp.budget), which the reference evaluator counts on the
        # unfolded condition; folding inside would make the two evaluators count differently.
        return e

    def visit_ListExpr(self, e: ast.ListExpr) -> ast.Expr:
        items = tuple(self.visit(i) for i in e.items)
        return e if _same(items, e.items) else dataclasses.replace(e, items=items)

    def visit_Call(self, e: ast.Call) -> ast.Expr:
        args = tuple(self.visit(a) for a in e.args)
        return e if _same(args, e.args) else dataclasses.replace(e, args=args)

    def _object(self, e: ast.Attr | ast.Has | ast.Is) -> ast.Expr:
        obj = self.visit(e.obj)
        return e if obj is e.obj else dataclasses.replace(e, obj=obj)

    visit_Attr = visit_Has = visit_Is = _object

    def visit_Unary(self, e: ast.Unary) -> ast.Expr:
        operand = self.visit(e.operand)
        if isinstance(operand, ast.Literal):
            v = operand.value
            if e.op == "not" and isinstance(v, bool):
                return ast.Literal(not v, e.span)
            if e.op == "-":
                try:
                    return ast.Literal(negate(v), e.span)
                except EvalError:
                    pass
        return e if operand is e.operand else dataclasses.replace(e, operand=operand)

    def visit_Binary(self, e: ast.Binary) -> ast.Expr:
        left: ast.Expr = self.visit(e.left)
        right: ast.Expr = self.visit(e.right)
        if e.op in ("and", "or") and _is_literal_bool(left):
            if left.value is (e.op == "or"):  # `false and X`, `true or X`: X is never evaluated
                return ast.Literal(left.value, e.span)
            if is_boolean(right):  # `true and X` is X when X is a boolean (or an error)
                return right
        folded = self._constant(e.op, left, right)
        if folded is not None:
            return ast.Literal(folded, e.span)
        if left is e.left and right is e.right:
            return e
        return dataclasses.replace(e, left=left, right=right)

    def _constant(self, op: str, left: ast.Expr, right: ast.Expr) -> object | None:
        """The value of `left op right` when both are known and it cannot fail, else None."""
        if isinstance(left, ast.Literal) and isinstance(right, ast.Literal):
            a, b = left.value, right.value
            try:
                if op == "==":
                    return equal(a, b)
                if op == "!=":
                    return not equal(a, b)
                if op in ("+", "-"):
                    return arith(op, a, b)
                if op in _ORDER:
                    return order(op, a, b, self.lattice)
            except EvalError:
                return None
        if op in _ORDER:
            a, b = self._class(left), self._class(right)
            if a is not None and b is not None:
                return order(op, a, b, self.lattice)
        return None

    def _class(self, e: ast.Expr) -> Label | None:
        if isinstance(e, ast.NameRef):
            label = self.labels.get(e.name)
            if label is not None and label.kind == "class":
                return Label("class", e.name)
        return None

    def fold(self, e: ast.Expr | None) -> ast.Expr | None:
        if e is None:
            return None
        folded: ast.Expr = self.visit(e)
        return folded


Pass = Callable[[Program], Program]


def _rules(program: Program, rules: list[IRRule]) -> Program:
    return dataclasses.replace(program, rules=tuple(rules))


def fold_constants(program: Program) -> Program:
    # First: every later stage (pruning, the tree, code generation) sees the simplest conditions.
    fold = Fold(program.labels, lattice_of(program)).fold
    rules = []
    for r in program.rules:
        when, unless = fold(r.when), fold(r.unless)
        changed = when is not r.when or unless is not r.unless
        rules.append(dataclasses.replace(r, when=when, unless=unless) if changed else r)
    return _rules(program, rules)


def _literally(e: ast.Expr | None, value: bool) -> bool:
    return isinstance(e, ast.Literal) and e.value is value


def prune_dead_rules(program: Program) -> Program:
    # After folding, so that conditions that became literals are seen: a rule whose `when` is
    # false can neither match nor fail (its `unless` is never evaluated); a `when` that is true
    # or an `unless` that is false is no test at all.
    rules = []
    for r in program.rules:
        if _literally(r.when, False):
            continue
        if _literally(r.when, True):
            r = dataclasses.replace(r, when=None)
        if _literally(r.unless, False):
            r = dataclasses.replace(r, unless=None)
        rules.append(r)
    return _rules(program, rules)


PASSES: tuple[Pass, ...] = (fold_constants, prune_dead_rules)


def optimise(program: Program) -> Program:
    for run in PASSES:
        program = run(program)
    return program

