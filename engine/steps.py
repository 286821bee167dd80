"""LANGUAGE.md §5 steps 4, 5 and 6: the outcome, the TTL and the explanation.

The one implementation of these steps, shared by the reference evaluator (agp.interp, which adds
steps 1 and 3: resolving the request and evaluating rules) and the compiled one (agp.compile).
Step 2, the envelope, is agp.envelope (the compiled evaluator has its own: agp.compile.envelope).
It takes plain arguments, so that either evaluator's request objects fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from agp.model import Decision, make_decision

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


def rule_seconds(policy: Policy, ttl: timedelta | None) -> int:
    """A permit's own bound on the TTL, in whole seconds: its `ttl` (or the default) within the
    maximum. For a request without a task and a chain the TTL is the least of its permits'
    (rounding down commutes with taking the least), which the compiled evaluator precomputes."""
    bound = ttl if ttl is not None else policy.default_ttl
    if policy.max_ttl is not None and policy.max_ttl < bound:
        bound = policy.max_ttl
    return max(0, bound // _SECOND)


def outcome(policy: Policy, req: RequestView, now: datetime | None, task: TaskInfo | None,
            failures: Sequence[str], forbids: Sequence[Matched], asks: Sequence[Matched],
            permits: Sequence[Matched], errors: list[str], ttl: int | None = None) -> Decision:
    """§5 steps 4-6: the decision word, its TTL and its explanation. `failures` are the failed
    envelope checks; `errors` their messages, then the rules' evaluation errors. `ttl`: the TTL
    of an ask or allow when the caller knows it already (see `rule_seconds`); `now` is read only
    without it (the compiled evaluator does not take the time when nothing reads it)."""
    if ttl is None and not failures and not forbids and (asks or permits):
        if now is None:  # a defect of the caller, never a request's
            raise ValueError("outcome: the TTL of a grant needs the decision's time")
        ttl = grant_ttl(policy, req, now, task, permits)
    return decided(policy.hash, failures, forbids, asks, permits, errors, ttl or 0)


def decided(policy_hash: str, failures: Sequence[str], forbids: Sequence[Matched],
            asks: Sequence[Matched], permits: Sequence[Matched], errors: list[str],
            ttl: int) -> Decision:
    """`outcome` once the TTL of a grant is known (`ttl`, unused on a deny): the compiled
    evaluator calls it directly for a request without a task and a chain, whose TTL it
    precomputes."""
    rules: Sequence[Matched]
    if failures or forbids:
        word, ttl, names, rules = "deny", 0, [*failures], forbids
    elif asks:
        word, names, rules = "ask", [], asks
    elif permits:
        word, names, rules = "allow", [], permits
    else:
        return make_decision("deny", 0, ["default.deny"], [], errors, policy_hash)
    reasons = []
    for r in rules:
        names.append(r.name)
        if r.because is not None:
            reasons.append(r.because)
    return make_decision(word, ttl, names, reasons, errors, policy_hash)
