"""The evaluation budget (issue 16, item 11; docs/limits.md, "Evaluation cost"): a quantifier
that would work too long is an evaluation error of its condition, the same in both evaluators,
and nothing outside quantifiers is counted. Behaviour only: the times are in
bench/worst_request.py."""

from __future__ import annotations

import pytest

import agp
from agp import budget, interp
from agp.compile import compile_policy, evaluator
from agp.limits import MAX_EVAL_STEPS, MAX_LIST_LENGTH
from agp.loader import check_sources
from agp.source import Source

HEADER = """
agent a "spiffe://x/a"
tool t { args { a?: list, b?: list, s?: string } }
"""


@pytest.fixture(autouse=True)
def strict_fallback(monkeypatch):
    # Compiled code may raise only where the reference reports an error.
    monkeypatch.setattr(evaluator, "CHECK_FALLBACK", True)


def decide(rules: str, **args):
    """The decision of both evaluators, which must be equal."""
    policy, diagnostics = check_sources([Source("p.agp", HEADER + rules)])
    assert policy is not None, diagnostics
    request = {"agent": {"id": "spiffe://x/a"}, "tool": "t", "args": args,
               "now": "2026-11-28T09:00:00Z"}
    want = agp.Engine(policy, compiled=False).decide(request)
    assert agp.Engine(policy, evaluator=compile_policy(policy)).decide(request) == want
    return want


def words(n: int, prefix: str = "w") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


NESTED = 'any(x in args.a: any(y in args.a: x == y and x == "zz"))'


def test_nested_quantifiers_over_a_long_list_are_an_error_that_never_allows():
    # The reproduction (3,000 items: 7-32 s per decision before).
    d = decide(f"forbid f on t when {NESTED}\npermit p on t when {NESTED.replace('any', 'all')}"
               f" or true", a=words(3000))
    assert d.decision == "deny" and d.rules == ["f"]
    assert len(d.errors) == 1  # `all(...) or true`: `all` is false at the first item
    assert d.errors[0].startswith("f: p.agp:4:20: this quantifier needs more than 1,000,000 "
                                  "evaluation steps")
    assert "subset() or intersects()" in d.errors[0]
    d = decide(f"permit p on t when not {NESTED}", a=words(3000))
    assert d.decision == "deny" and d.rules == ["default.deny"] and "evaluation steps" in \
        d.errors[0]


def test_the_error_points_at_the_outermost_quantifier():
    d = decide("forbid f on t when true and all(x in args.a: any(y in args.a: y == x) "
               "and true)", a=words(2000))
    assert d.errors == [
        "f: p.agp:4:29: this quantifier needs more than 1,000,000 evaluation steps (its items, "
        "those of the quantifiers inside it, and the lists and long strings they scan); to "
        "compare two lists, use subset() or intersects()"]


def per_item(condition: str) -> int:
    """What a quantifier written `condition` spends per item: ITEM_STEPS per node of its body,
    and one more."""
    policy, _ = check_sources([Source("p.agp", HEADER + f"forbid f on t when {condition}\n")])
    return budget.ITEM_STEPS * (1 + interp.expr_size(policy.rules[0].when.body))


def test_a_budget_exactly_spent_is_enough_and_one_more_step_is_not(monkeypatch):
    # 10 items, and each body scans a list of 7 (a step per item scanned).
    cond = "any(x in args.a: x in args.b and false)"
    assert per_item(cond) == budget.ITEM_STEPS * 7  # and, in, x, args.b (2 nodes), false
    monkeypatch.setattr(budget, "MAX_EVAL_STEPS", 10 * per_item(cond) + 10 * 7)
    assert decide(f"forbid f on t when {cond}", a=words(10), b=words(7, "v")).errors == []
    for a, b in ((10, 8), (11, 7)):
        d = decide(f"forbid f on t when {cond}", a=words(a), b=words(b, "v"))
        assert "evaluation steps" in d.errors[0]


def test_a_bigger_body_costs_more_per_item(monkeypatch):
    small, big = "any(x in args.a: false)", "any(x in args.a: x == \"a\" or x == \"b\")"
    assert (per_item(small), per_item(big)) == (2 * budget.ITEM_STEPS, 8 * budget.ITEM_STEPS)
    monkeypatch.setattr(budget, "MAX_EVAL_STEPS", 10 * per_item(small))
    assert decide(f"forbid f on t when {small}", a=words(10)).errors == []
    assert "evaluation steps" in decide(f"forbid f on t when {big}", a=words(3)).errors[0]


def test_a_quantifier_pays_for_all_its_items_even_when_it_stops_early(monkeypatch):
    cond = "any(x in args.a: true)"
    monkeypatch.setattr(budget, "MAX_EVAL_STEPS", 5 * per_item(cond))
    assert decide(f"forbid f on t when {cond}", a=words(5)).rules == ["f"]
    d = decide(f"forbid f on t when {cond}", a=words(6))
    assert d.rules == ["f"] and "evaluation steps" in d.errors[0]


def test_each_outermost_quantifier_has_its_own_budget(monkeypatch):
    monkeypatch.setattr(budget, "MAX_EVAL_STEPS", 10 * per_item("any(x in args.a: false)"))
    ten = words(10)
    # Side by side: 10 items each, within budget twice.
    assert decide("forbid f on t when any(x in args.a: false) or all(y in args.a: false)",
                  a=ten).errors == []
    # In two rules: the same.
    assert decide("forbid f on t when any(x in args.a: false)\n"
                  "forbid g on t when any(x in args.a: false)", a=ten).errors == []
    # Nested: the inner one spends from the outer one's budget.
    assert "evaluation steps" in decide(
        "forbid f on t when any(x in args.a: any(y in [1]: false))", a=words(4)).errors[0]


def test_long_strings_in_a_body_spend_steps(monkeypatch):
    s = "x" * (budget.STRING_CHUNK * 100)  # 100 steps each time the body reads it whole
    for body in ('"y" in args.s', 'lower(args.s) == "x"', 'args.s matches "*y*"',
                 "args.s == args.s", "args.s < args.s"):
        cond = f"any(x in args.a: {body} and false)"
        monkeypatch.setattr(budget, "MAX_EVAL_STEPS", 3 * per_item(cond) + 3 * 100)
        assert decide(f"forbid f on t when {cond}", a=words(3), s=s).errors == [], body
        d = decide(f"forbid f on t when {cond}", a=words(4), s=s)
        assert "evaluation steps" in d.errors[0], body


def test_deep_equality_in_a_body_spends_steps(monkeypatch):
    nested = [[1, 2]] * 5  # `==`: the list and its 5 items, then each item and its 2 numbers
    cost = budget.CONTAINER_STEPS + 5 + 5 * (budget.CONTAINER_STEPS + 2)
    cond = "any(x in args.a: args.b == args.b and false)"
    monkeypatch.setattr(budget, "MAX_EVAL_STEPS", 2 * per_item(cond) + 2 * cost)
    assert decide(f"forbid f on t when {cond}", a=words(2), b=nested).errors == []
    d = decide(f"forbid f on t when {cond}", a=words(2), b=nested + [[1, 2]])
    assert "evaluation steps" in d.errors[0]


def test_nothing_is_counted_outside_quantifiers():
    # Far more work than a quantifier may do, but linear: no budget applies.
    big = words(MAX_LIST_LENGTH)
    d = decide('forbid f on t when args.a == args.b and subset(args.a, args.b) and '
               'intersects(args.a, args.b) and "w9999" in args.a and contains(args.a, "zz")',
               a=big, b=list(big))
    assert d.errors == [] and d.rules == ["default.deny"]
    assert MAX_LIST_LENGTH * 3 < MAX_EVAL_STEPS < MAX_LIST_LENGTH ** 2


def test_a_single_quantifier_over_the_longest_list_fits():
    # 10,000 items with a body of 10 nodes that scans a list of 2: about a quarter of the budget.
    d = decide('forbid f on t when any(x in args.a: endswith(x, "@evil.io") or x in ["a", "b"])',
               a=words(MAX_LIST_LENGTH))
    assert d.errors == [] and d.rules == ["default.deny"]


@pytest.mark.parametrize("cond", ['any(x in args.a if x == "a": true)',
                                  'all(x in args.a if x == "a": false)',
                                  'count(x in args.a if x == "a": true) > 5',
                                  'sum(x in args.a if x == "a": 1) > 5'])
def test_filters_count_and_sum_are_charged_like_any_and_all(monkeypatch, cond):
    # Per item, the nodes of the filter (3) and of the body (1), and one more: paid when the
    # quantifier starts, for the items its filter skips too.
    steps = budget.ITEM_STEPS * (1 + 3 + 1)
    monkeypatch.setattr(budget, "MAX_EVAL_STEPS", 5 * steps)
    assert decide(f"forbid f on t when {cond}", a=words(5)).errors == []
    assert "evaluation steps" in decide(f"forbid f on t when {cond}", a=words(6)).errors[0]
