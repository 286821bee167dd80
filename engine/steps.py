"""LANGUAGE.md §5 steps 2, 4, 5 and 6: the envelope, the outcome, the TTL and the explanation.

The one implementation of these steps, shared by the reference evaluator (agp.interp, which adds
steps 1 and 3: resolving the request and evaluating rules) and the compiled one (agp.compile).
It takes plain arguments, so that either evaluator's request objects fit, and exits early for the
commonest request (no task, no chain), where every check but `request.unknown` is vacuous.
"""

from __future__ import annotations

from datetime import timedelta

from agp.glob import compile_glob
from agp.limits import MAX_MATCH_WORK
from agp.model import Decision
from agp.values import EvalError

ENVELOPE_CODES = (
    "request.invalid", "request.unknown", "task.unknown", "task.expired", "task.ended",
    "scope.tool", "scope.intent", "scope.data", "delegation.mismatch", "delegation.cycle",
    "delegation.depth", "delegation.to", "delegation.scope", "delegation.expired",
)
_SECOND = timedelta(seconds=1)
_UNKNOWN = ("request.unknown",)


def envelope_codes(policy, req, now, task, intents, data, task_ended: bool) -> tuple | list:
    """The codes of the failed envelope checks, in the order of the table of §5.

    `req` is a validated request (agp.Request or the compiled evaluator's equivalent), `task` the
    declaration named by `req.task.kind` (None when absent or unknown), `intents` and `data` the
    resolved sets of §5 step 1.
    """
    chain = req.chain
    if not chain and req.task is None:
        # Without a chain and a task only `request.unknown` can fail.
        below, declared = policy.lattice.below, policy.intents
        for name in req.data:
            if name not in below:
                return _UNKNOWN
        for name in req.intent:
            if name not in declared:
                return _UNKNOWN
        return ()
    failed: set[str] = set()

    if invalid_times(req, now, task):
        failed.add("request.invalid")
    if unknown_labels(policy, req):
        failed.add("request.unknown")

    if req.task is not None and task is None:
        failed.add("task.unknown")
    if task is not None:
        started = req.task.started_at
        # Elapsed time against the TTL, never `started + ttl`: that sum can leave the calendar.
        if task.ttl is not None and started is not None and now - started >= task.ttl:
            failed.add("task.expired")
        if task_ended:
            failed.add("task.ended")
        if task.tools is not None and not any(g.match(req.tool) for g in task.tools):
            failed.add("scope.tool")
        if task.intents is not None and not intents <= task.intents:
            failed.add("scope.intent")
        if task.ceiling is not None and not within(policy, data, task.ceiling):
            failed.add("scope.data")

    principals = [h.principal for h in chain]
    if chain and principals[-1] != req.agent.id:
        failed.add("delegation.mismatch")
    if len(set(principals)) != len(principals):
        failed.add("delegation.cycle")
    if task is not None:
        depth = chain_depth(chain)
        if task.depth is not None and depth > task.depth:
            failed.add("delegation.depth")
        # The first hop that is not a human, however the others are labelled (kinds are exactly
        # human, agent, service: a chain cannot skip this check by naming its agents otherwise).
        first_agent = next((i for i, h in enumerate(chain) if h.kind != "human"), None)
        later = chain[first_agent + 1 :] if first_agent is not None else []
        if later and (not task.delegate or (task.delegate_to is not None and not all(
                any(g.match(h.principal) for g in task.delegate_to) for h in later))):
            failed.add("delegation.to")
    for h in chain:
        s = h.scope
        if s is None:
            continue
        if s.tools is not None and not any(_scope_has(p, req.tool) for p in s.tools):
            failed.add("delegation.scope")
        if s.intents is not None and not intents <= set(s.intents):
            failed.add("delegation.scope")
        if s.data is not None and not within(policy, data, s.data):
            failed.add("delegation.scope")
        if s.ttl is not None and h.at is not None and now - h.at >= s.ttl:
            failed.add("delegation.expired")
    return [code for code in ENVELOPE_CODES if code in failed]


def _scope_has(pattern: str, tool: str) -> bool:
    """Whether a hop scope's pattern (from the request) matches the tool. A pattern that would
    cost more than `matches` allows (MAX_MATCH_WORK) matches nothing: the scope then refuses."""
    glob = compile_glob(pattern)
    return glob.work(len(tool)) <= MAX_MATCH_WORK and glob.match(tool)


def invalid_times(req, now, task) -> list[str]:
    """The envelope's `request.invalid` checks (those that need `now` or the task declaration),
    as the messages of the decision's `errors`; empty when the request passes them."""
    out = []
    for i, h in enumerate(req.chain):
        if h.at is None:
            if h.scope is not None and h.scope.ttl is not None:
                out.append(f"request.invalid: chain[{i}]: a hop whose scope has a `ttl` needs `at`")
        elif h.at > now:
            out.append(f"request.invalid: chain[{i}].at: {_iso(h.at)} is later than now; "
                       "nothing is delegated in the future")
    if req.task is not None:
        started = req.task.started_at
        if started is None:
            if task is not None and task.ttl is not None:
                out.append(f"request.invalid: task.started_at: task `{req.task.kind}` has a "
                           "`ttl`, so the request must say when the task started")
        elif started > now:
            out.append(f"request.invalid: task.started_at: {_iso(started)} is later than now; "
                       "nothing starts in the future")
    return out


def unknown_labels(policy, req) -> list[str]:
    """The envelope's `request.unknown` check: one message per undeclared data class or intent
    that the request names (in `data`, `intent` or a hop's scope); empty when there is none."""
    below, declared = policy.lattice.below, policy.intents
    chain = req.chain
    classes = list(req.data)
    intents = list(req.intent)
    for h in chain:
        if h.scope is not None:
            if h.scope.data is not None:
                classes.append(h.scope.data)
            if h.scope.intents:
                intents.extend(h.scope.intents)
    return [*(f"request.unknown: data class `{n}` is not declared"
              for n in dict.fromkeys(classes) if n not in below),
            *(f"request.unknown: intent `{n}` is not declared"
              for n in dict.fromkeys(intents) if n not in declared)]


def envelope_errors(policy, req, now, task, codes) -> list[str]:
    """What the decision's `errors` says about the failed envelope checks whose code alone does
    not say what to fix: which time is wrong, which label or task kind is unknown."""
    out = []
    if "request.invalid" in codes:
        out.extend(invalid_times(req, now, task))
    if "request.unknown" in codes:
        out.extend(unknown_labels(policy, req))
    if "task.unknown" in codes:
        out.append(f"task.unknown: task kind `{req.task.kind}` is not declared")
    return out


def _iso(t) -> str:
    return t.isoformat().replace("+00:00", "Z")


def invalid(policy, errors: list[str]) -> Decision:
    """The decision for a request that does not have the documented shape."""
    return make_decision("deny", 0, ["request.invalid"], [],
                         [f"request.invalid: {e}" for e in errors], policy.hash)


def error_text(rule, problem) -> str:
    """How an evaluation error appears in a decision's `errors`: `RULE: file:line:col: message`."""
    return f"{rule.name}: {problem.span}: {problem.message}"


def chain_depth(chain) -> int:
    """`chain.depth`: hand-offs from the origin (`[alice, bot]` is 1; an empty chain is 0)."""
    return max(len(chain) - 1, 0)


def within(policy, data, ceiling: str) -> bool:
    try:
        return policy.lattice.set_leq(data, ceiling)
    except EvalError:  # an undeclared class is never within a ceiling
        return False


def grant_ttl(policy, req, now, task, permits) -> int:
    """§5 step 5: the smallest bound, in whole seconds rounded down."""
    bounds = [r.ttl if r.ttl is not None else policy.default_ttl for r in permits]
    if not permits:
        bounds.append(policy.default_ttl)
    # Remaining lifetimes as the TTL minus the elapsed time (see envelope_codes).
    if task is not None and task.ttl is not None and req.task.started_at is not None:
        bounds.append(task.ttl - (now - req.task.started_at))
    for h in req.chain:
        if h.scope is not None and h.scope.ttl is not None and h.at is not None:
            bounds.append(h.scope.ttl - (now - h.at))
    if policy.max_ttl is not None:
        bounds.append(policy.max_ttl)
    return max(0, min(bounds) // _SECOND)


def outcome(policy, req, now, task, failures, forbids, asks, permits, errors) -> Decision:
    """§5 steps 4-6: the decision word, its TTL and its explanation."""
    if failures:
        errors = [*envelope_errors(policy, req, now, task, failures), *errors]
    if failures or forbids:
        return decision(policy, "deny", 0, failures, forbids, errors)
    if asks:
        return decision(policy, "ask", grant_ttl(policy, req, now, task, permits), (), asks, errors)
    if permits:
        return decision(policy, "allow", grant_ttl(policy, req, now, task, permits), (), permits,
                        errors)
    return decision(policy, "deny", 0, ("default.deny",), (), errors)


_FIELDS = frozenset(Decision.model_fields)


def decision(policy, word, ttl, codes, rules, errors) -> Decision:
    return make_decision(word, ttl, [*codes, *(r.name for r in rules)],
                         [r.because for r in rules if r.because is not None], errors, policy.hash)


def make_decision(word: str, ttl: int, rules: list, reasons: list, errors: list,
                  policy_hash: str, _new=object.__new__, _set=object.__setattr__,
                  _cls=Decision, _fields=_FIELDS) -> Decision:
    """A Decision built from values that are valid by construction, without re-validating them.

    This is what `Decision.model_construct` does, minus its generic field loop (3x faster).
    """
    d = _new(_cls)
    _set(d, "__dict__", {"decision": word, "ttl": ttl, "rules": rules, "reasons": reasons,
                         "errors": errors, "policy": policy_hash})
    _set(d, "__pydantic_fields_set__", set(_fields))
    _set(d, "__pydantic_extra__", None)
    _set(d, "__pydantic_private__", None)
    return d
