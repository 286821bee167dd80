"""Compiler passes: pure functions from IR rules to IR rules, run in the order of PASSES.

Each pass takes and returns `(rules, ir)` where `rules` is a list of `(index, rule)` pairs: the
index is the rule's position in the policy (decisions list rules in that order, and the error
path finds the rule's AST by it). No pass grows an expression, so none needs a size budget.
"""

from __future__ import annotations

from agp.compile.ir import literal_value, td_out
from agp.values import EvalError, Label, Lattice, arith, equal, negate, order

_BOOL_OPS = frozenset(("and", "or", "==", "!=", "<", "<=", ">", ">=", "in", "matches"))


def is_boolean(x) -> bool:
    """Whether the expression's value, when it has one, is always a bool (so no truth check)."""
    tag = x[0]
    if tag == "lit":
        return isinstance(x[1], bool)
    if tag == "bin":
        return x[1] in _BOOL_OPS
    if tag == "un":
        return x[1] == "not"
    return tag in ("has", "is", "quant")


def _lit(value, span):
    from datetime import timedelta

    return ["lit", {"us": td_out(value)} if isinstance(value, timedelta) else value, span]


def _class_label(x, ir) -> Label | None:
    if x[0] == "name":
        lb = ir["labels"].get(x[1])
        if lb is not None and lb[0] == "class":
            return Label("class", x[1])
    return None


def fold(x, ir, lattice: Lattice):
    """Constant folding: literal arithmetic and comparisons, class-vs-class lattice tests,
    `not` of a literal, and `and`/`or` with a literal first operand (only where the result
    keeps the same value and the same errors)."""
    if x is None:
        return None
    tag = x[0]
    if tag == "list":
        return ["list", [fold(i, ir, lattice) for i in x[1]], x[2]]
    if tag == "attr":
        return ["attr", fold(x[1], ir, lattice), *x[2:]]
    if tag in ("has", "is"):
        return [tag, fold(x[1], ir, lattice), *x[2:]]
    if tag == "quant":
        # Left as written: a quantifier spends evaluation budget per node of its body and for
        # the work inside it (agp.budget), which the reference evaluator counts on the
        # unfolded condition; folding inside would make the two evaluators count differently.
        return x
    if tag == "call":
        return ["call", x[1], x[2], [fold(a, ir, lattice) for a in x[3]], x[4]]
    if tag == "un":
        operand = fold(x[2], ir, lattice)
        if operand[0] == "lit":
            v = literal_value(operand[1])
            if x[1] == "not" and isinstance(v, bool):
                return _lit(not v, x[3])
            if x[1] == "-":
                try:
                    return _lit(negate(v), x[3])
                except EvalError:
                    pass
        return ["un", x[1], operand, x[3]]
    if tag == "bin":
        op = x[1]
        left = fold(x[2], ir, lattice)
        right = fold(x[3], ir, lattice)
        if op in ("and", "or") and left[0] == "lit" and isinstance(left[1], bool):
            if left[1] is (op == "or"):  # `false and X`, `true or X`: X is never evaluated
                return _lit(left[1], x[4])
            if is_boolean(right):  # `true and X` is X when X is a boolean (or an error)
                return right
        if left[0] == "lit" and right[0] == "lit":
            a, b = literal_value(left[1]), literal_value(right[1])
            try:
                if op == "==":
                    return _lit(equal(a, b), x[4])
                if op == "!=":
                    return _lit(not equal(a, b), x[4])
                if op in ("+", "-"):
                    return _lit(arith(op, a, b), x[4])
                if op in ("<", "<=", ">", ">="):
                    return _lit(order(op, a, b, lattice), x[4])
            except EvalError:
                pass
        if op in ("<", "<=", ">", ">="):
            a, b = _class_label(left, ir), _class_label(right, ir)
            if a is not None and b is not None:
                return _lit(order(op, a, b, lattice), x[4])
        return ["bin", op, left, right, x[4]]
    return x


def fold_constants(rules, ir):
    # First: every later stage (pruning, the tree, code generation) sees the simplest conditions.
    lattice = Lattice({k: frozenset(v) for k, v in ir["lattice"].items()})
    out = []
    for i, r in rules:
        r = dict(r, when=fold(r["when"], ir, lattice), unless=fold(r["unless"], ir, lattice))
        out.append((i, r))
    return out, ir


def prune_dead_rules(rules, ir):
    # After folding, so that conditions that became literals are seen: a rule whose `when` is
    # false can neither match nor fail (its `unless` is never evaluated); a `when` that is true
    # or an `unless` that is false is no test at all.
    out = []
    for i, r in rules:
        when, unless = r["when"], r["unless"]
        if when is not None and when[0] == "lit" and when[1] is False:
            continue
        if when is not None and when[0] == "lit" and when[1] is True:
            r = dict(r, when=None)
        if unless is not None and unless[0] == "lit" and unless[1] is False:
            r = dict(r, unless=None)
        out.append((i, r))
    return out, ir


PASSES = (fold_constants, prune_dead_rules)


def optimise(ir: dict) -> list[tuple[int, dict]]:
    rules = list(enumerate(ir["rules"]))
    for p in PASSES:
        rules, ir = p(rules, ir)
    return rules
