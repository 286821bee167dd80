"""The evaluation budget: what bounds the work of a quantifier, identically in both evaluators.

Without quantifiers, a condition evaluates each of its nodes once, and no operation does more than
one pass over its operands, so its cost is at most its size times the request's size. Quantifiers
multiply: `any(x in L: any(y in L: x == y))` evaluates its body len(L)**2 times, and a body may
itself scan a list (`x in L`) or a long string. So every quantifier that is not inside another one
gets a budget of MAX_EVAL_STEPS steps for itself and everything evaluated inside it, and the work
spends steps as it is done (a step is a fifth of a microsecond or so of the reference evaluator):

- a quantifier spends ITEM_STEPS * (1 + the number of nodes of its filter and its body) per
  item of its list, when it starts (whether or not it stops early, or its filter skips items):
  the filter and the body are evaluated at most once per item, and their cost grows with their
  size;
- `in` on a list, `subset` and `intersects` spend one step per list item; `==` and `!=` spend
  CONTAINER_STEPS per list or object they compare, and one step per item or field in it;
- an operation that reads a long string (`==`, ordering, `in`, `matches`, the string functions)
  spends one step per STRING_CHUNK characters it may read; strings shorter than that are free.

Spending more than the budget raises `Exhausted`; the reference evaluator turns it into an
evaluation error of the condition (which never allows), and the compiled evaluator hands the rule
to the reference, as for any error. A budget belongs to one quantifier, not to the decision: a
rule's result never depends on which other rules ran first (the compiled evaluator runs forbids
first and skips rules that cannot change the outcome), so both evaluators agree.

Outside quantifiers nothing is counted (`spend` finds no budget and returns), so rules without
quantifiers pay one context-variable read per list scan or long string, nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

from agp.limits import MAX_EVAL_STEPS

ITEM_STEPS = 2  # per item and per node of the body: the reference evaluates a node in ~0.4 us
CONTAINER_STEPS = 10  # a comparison of two lists or objects, before their items: ~2 us
STRING_CHUNK = 64  # characters read per step (a substring search takes up to ~3 ns a character)


class Exhausted(Exception):
    """The budget of the running quantifier is spent (not an EvalError: see `metered`)."""


class _Budget:
    __slots__ = ("left",)

    def __init__(self, steps: int):
        self.left = steps


T = TypeVar("T")

_current: ContextVar[_Budget | None] = ContextVar("agp_budget", default=None)


def spend(steps: int) -> None:
    """Count `steps` against the running quantifier's budget, if any."""
    budget = _current.get()
    if budget is not None:
        budget.left -= steps
        if budget.left < 0:
            raise Exhausted


def spend_text(n: int) -> None:
    """Count reading `n` characters of a string."""
    if n >= STRING_CHUNK:
        spend(n // STRING_CHUNK)


def active() -> bool:
    return _current.get() is not None


def metered(run: Callable[[], T]) -> T:
    """`run()`, under a fresh budget unless one is running (a quantifier inside another).

    Exhausted propagates: the reference evaluator turns it into an EvalError with the span of
    the quantifier that owns the budget; compiled code lets it fail the rule.

    >>> metered(lambda: spend(MAX_EVAL_STEPS))
    >>> metered(lambda: spend(MAX_EVAL_STEPS + 1))
    Traceback (most recent call last):
    agp.budget.Exhausted
    """
    if _current.get() is not None:
        return run()
    token = _current.set(_Budget(MAX_EVAL_STEPS))
    try:
        return run()
    finally:
        _current.reset(token)
