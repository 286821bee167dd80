"""LANGUAGE.md §5 steps 4, 5 and 6: the outcome, the TTL and the explanation.

The one implementation of these steps, shared by the reference evaluator (agp.interp, which adds
steps 1 and 3: resolving the request and evaluating rules) and the compiled one (agp.compile).
Step 2, the envelope, is agp.envelope (the compiled evaluator has its own: agp.compile.envelope).
It takes plain arguments, so that either evaluator's request objects fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from agp.model import Decision

if TYPE_CHECKING:
    from agp.envelope import RequestView
    from agp.policy import Policy, TaskInfo
    from agp.values import EvalError

_SECOND = timedelta(seconds=1)


class Matched(Protocol):
    """A matching rule as steps 4-6 read it (agp.policy.RuleInfo, or the compiled evaluator's
    record of it)."""

    @property
    def name(self) -> str: ...
    @property
    def ttl(self) -> timedelta | None: ...
    @property
    def because(self) -> str | None: ...


def invalid(policy: Policy, errors: list[str]) -> Decision:
    """The decision for a request that does not have the documented shape."""
    return make_decision("deny", 0, ["request.invalid"], [],
                         [f"request.invalid: {e}" for e in errors], policy.hash)


def error_text(rule: Matched, problem: EvalError) -> str:
    """How an evaluation error appears in a decision's `errors`: `RULE: file:line:col: message`."""
    return f"{rule.name}: {problem.span}: {problem.message}"


def grant_ttl(policy: Policy, req: RequestView, now: datetime, task: TaskInfo | None,
              permits: Sequence[Matched]) -> int:
    """§5 step 5: the smallest bound, in whole seconds rounded down."""
    bounds = [r.ttl if r.ttl is not None else policy.default_ttl for r in permits]
    if not permits:
        bounds.append(policy.default_ttl)
    # Remaining lifetimes as the TTL minus the elapsed time, never `start + ttl - now`: that sum
    # can leave the calendar.
    started = req.task.started_at if req.task is not None else None
    if task is not None and task.ttl is not None and started is not None:
        bounds.append(task.ttl - (now - started))
    for h in req.chain:
        if h.scope is not None and h.scope.ttl is not None and h.at is not None:
            bounds.append(h.scope.ttl - (now - h.at))
    if policy.max_ttl is not None:
        bounds.append(policy.max_ttl)
    return max(0, min(bounds) // _SECOND)


def outcome(policy: Policy, req: RequestView, now: datetime, task: TaskInfo | None,
            failures: Sequence[str], forbids: Sequence[Matched], asks: Sequence[Matched],
            permits: Sequence[Matched], errors: list[str]) -> Decision:
    """§5 steps 4-6: the decision word, its TTL and its explanation. `failures` are the failed
    envelope checks; `errors` their messages, then the rules' evaluation errors."""
    if failures or forbids:
        return decision(policy, "deny", 0, failures, forbids, errors)
    if asks:
        return decision(policy, "ask", grant_ttl(policy, req, now, task, permits), (), asks, errors)
    if permits:
        return decision(policy, "allow", grant_ttl(policy, req, now, task, permits), (), permits,
                        errors)
    return decision(policy, "deny", 0, ("default.deny",), (), errors)


_FIELDS = frozenset(Decision.model_fields)


def decision(policy: Policy, word: str, ttl: int, codes: Sequence[str],
             rules: Sequence[Matched], errors: list[str]) -> Decision:
    return make_decision(word, ttl, [*codes, *(r.name for r in rules)],
                         [r.because for r in rules if r.because is not None], errors, policy.hash)


def make_decision(word: str, ttl: int, rules: list[str], reasons: list[str], errors: list[str],
                  policy_hash: str, _new: Any = object.__new__, _set: Any = object.__setattr__,
                  _cls: type[Decision] = Decision, _fields: frozenset[str] = _FIELDS) -> Decision:
    """A Decision built from values that are valid by construction, without re-validating them.

    This is what `Decision.model_construct` does, minus its generic field loop (3x faster).
    """
    d: Decision = _new(_cls)
    _set(d, "__dict__", {"decision": word, "ttl": ttl, "rules": rules, "reasons": reasons,
                         "errors": errors, "policy": policy_hash})
    _set(d, "__pydantic_fields_set__", set(_fields))
    _set(d, "__pydantic_extra__", None)
    _set(d, "__pydantic_private__", None)
    return d
