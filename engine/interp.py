"""The reference evaluator: LANGUAGE.md §5 written as plainly as possible.

Anything faster (agp.compile) must agree with this module; a property test holds them equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from agp.model import Decision, Request, RequestError, parse_request
from agp.policy import Policy, RuleInfo, TaskInfo
from agp.stdlib.builtins import BUILTINS
from agp.syntax import ast
from agp.syntax.parser import parse_duration
from agp.values import (Chain, EvalError, LabelSet, Missing, arith, attribute, equal, has,
                        iterable, matches, member, negate, order, truth)

ENVELOPE_CODES = (
    "request.invalid", "request.unknown", "task.unknown", "task.expired", "task.ended",
    "scope.tool", "scope.intent", "scope.data", "delegation.mismatch", "delegation.cycle",
    "delegation.depth", "delegation.to", "delegation.scope", "delegation.expired",
)


@dataclass(frozen=True, slots=True)
class Call:
    """One request, resolved against the policy (§5 step 1)."""

    request: Request
    now: datetime
    intents: frozenset[str]
    data: frozenset[str]
    task: TaskInfo | None  # the declaration named by task.kind, if any
    env: dict  # the names of a condition (§4)


def invalid(policy: Policy, errors: list[str]) -> Decision:
    return Decision(decision="deny", ttl=0, rules=["request.invalid"], reasons=[],
                    errors=[f"request.invalid: {e}" for e in errors], policy=policy.hash)


def decide(policy: Policy, request: Request | dict, *, task_ended: bool = False) -> Decision:
    """Decide one request. Never raises on a bad request: it is denied with request.invalid."""
    try:
        req = parse_request(request)
    except RequestError as exc:
        return invalid(policy, exc.errors)
    call = resolve(policy, req)
    failures = envelope(policy, call, task_ended)
    matched: dict[str, list[RuleInfo]] = {"permit": [], "forbid": [], "ask": []}
    errors: list[str] = []
    for rule in policy.rules:
        if not in_scope(policy, rule, call):
            continue
        hit, problem = rule_matches(policy, rule, call.env)
        if problem is not None:
            errors.append(f"{rule.name}: {problem.span}: {problem.message}")
        if hit:
            matched[rule.effect].append(rule)
    return outcome(policy, call, failures, matched, errors)


# ---- step 1: resolve ----------------------------------------------------------------------------


def resolve(policy: Policy, req: Request) -> Call:
    now = req.now or datetime.now(timezone.utc)
    tools = [t for t in policy.tools if t.glob.match(req.tool)]
    intents = frozenset(req.intent).union(*(t.intents for t in tools))
    data = frozenset(req.data).union(*(t.data for t in tools))
    task = policy.tasks.get(req.task.kind) if req.task is not None else None
    durations = frozenset().union(*(t.durations for t in tools))
    return Call(req, now, intents, data, task, environment(req, now, intents, data, durations))


def environment(req: Request, now: datetime, intents, data, durations) -> dict:
    args = dict(req.args)
    for name in durations & args.keys():
        value = args[name]
        parsed = parse_duration(value) if isinstance(value, str) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            parsed = timedelta(seconds=value)
        if parsed is not None:
            args[name] = parsed
    hops = [hop_value(h) for h in req.chain]
    chain = Chain(req.agent.id, depth=max(len(hops) - 1, 0), hops=hops)
    if hops:
        chain["origin"] = hops[0]
    env = {
        "tool": req.tool, "args": args, "intent": LabelSet("intent", intents),
        "data": LabelSet("class", data), "agent": {"id": req.agent.id, "attrs": req.agent.attrs},
        "chain": chain, "context": req.context, "now": now,
    }
    if req.target is not None:
        env["target"] = req.target
    if req.task is not None:
        t = req.task
        task = {"kind": t.kind, "params": t.params}
        if t.id is not None:
            task["id"] = t.id
        if t.objective is not None:
            task["objective"] = t.objective
        if t.started_at is not None:
            task["started_at"] = t.started_at
            task["age"] = now - t.started_at
        env["task"] = task
    return env


def hop_value(hop) -> dict:
    value = {"principal": hop.principal, "kind": hop.kind}
    if hop.at is not None:
        value["at"] = hop.at
    if hop.scope is not None:
        value["scope"] = hop.scope.model_dump(exclude_none=True)
    return value


# ---- step 2: the envelope -------------------------------------------------------------------------


def envelope(policy: Policy, call: Call, task_ended: bool) -> list[str]:
    """The codes of the failed envelope checks, in the order of the table of §5."""
    req, now, task = call.request, call.now, call.task
    chain = req.chain
    failed: set[str] = set()

    if any(h.scope is not None and h.scope.ttl is not None and h.at is None for h in chain):
        failed.add("request.invalid")
    if task is not None and task.ttl is not None and req.task.started_at is None:
        failed.add("request.invalid")

    named_classes = set(req.data) | {h.scope.data for h in chain if h.scope and h.scope.data}
    named_intents = set(req.intent).union(*(h.scope.intents for h in chain
                                            if h.scope and h.scope.intents))
    if not named_classes <= policy.lattice.below.keys() or not named_intents <= policy.intents:
        failed.add("request.unknown")

    if req.task is not None and task is None:
        failed.add("task.unknown")
    if task is not None:
        started = req.task.started_at
        if task.ttl is not None and started is not None and now >= started + task.ttl:
            failed.add("task.expired")
        if task_ended:
            failed.add("task.ended")
        if task.tools is not None and not any(g.match(req.tool) for g in task.tools):
            failed.add("scope.tool")
        if task.intents is not None and not call.intents <= task.intents:
            failed.add("scope.intent")
        if task.ceiling is not None and not _within(policy, call.data, task.ceiling):
            failed.add("scope.data")

    principals = [h.principal for h in chain]
    if chain and principals[-1] != req.agent.id:
        failed.add("delegation.mismatch")
    if len(set(principals)) != len(principals):
        failed.add("delegation.cycle")
    if task is not None:
        depth = max(len(chain) - 1, 0)
        if task.depth is not None and depth > task.depth:
            failed.add("delegation.depth")
        first_agent = next((i for i, h in enumerate(chain) if h.kind == "agent"), None)
        later = chain[first_agent + 1 :] if first_agent is not None else []
        if later and (not task.delegate or (task.delegate_to is not None and not all(
                any(g.match(h.principal) for g in task.delegate_to) for h in later))):
            failed.add("delegation.to")
    for h in chain:
        s = h.scope
        if s is None:
            continue
        if s.tools is not None and not any(_glob(p).match(req.tool) for p in s.tools):
            failed.add("delegation.scope")
        if s.intents is not None and not call.intents <= set(s.intents):
            failed.add("delegation.scope")
        if s.data is not None and not _within(policy, call.data, s.data):
            failed.add("delegation.scope")
        if s.ttl is not None and h.at is not None and now >= h.at + s.ttl:
            failed.add("delegation.expired")
    return [code for code in ENVELOPE_CODES if code in failed]


def _within(policy: Policy, data, ceiling: str) -> bool:
    try:
        return policy.lattice.set_leq(data, ceiling)
    except EvalError:  # an undeclared class is never within a ceiling
        return False


def _glob(pattern: str):
    from agp.glob import compile_glob

    return compile_glob(pattern)


# ---- step 3: rules ------------------------------------------------------------------------------


def in_scope(policy: Policy, rule: RuleInfo, call: Call) -> bool:
    req = call.request
    if rule.scoped_on and not (any(g.match(req.tool) for g in rule.on_tools)
                               or rule.on_intents & call.intents):
        return False
    if rule.tasks is not None and (req.task is None or req.task.kind not in rule.tasks):
        return False
    if rule.agents is not None and not any(g.match(req.agent.id) for g in rule.agents):
        return False
    return True


def rule_matches(policy: Policy, rule: RuleInfo, env: dict) -> tuple[bool, EvalError | None]:
    """Whether the rule's condition holds; an error makes a permit miss and a forbid/ask match."""
    try:
        if rule.when is not None and not truth(evaluate(rule.when, env, policy), "a condition"):
            return False, None
        if rule.unless is not None and truth(evaluate(rule.unless, env, policy), "a condition"):
            return False, None
        return True, None
    except EvalError as exc:
        return rule.effect != "permit", exc
    except RecursionError:
        return rule.effect != "permit", EvalError("expression too deep", rule.decl.span)


def evaluate(e: ast.Expr, env: dict, policy: Policy):
    """The value of an expression. Raises EvalError, with the span of the failing part."""
    try:
        return _evaluate(e, env, policy)
    except EvalError as exc:
        if exc.span is None:
            exc.span = e.span
        raise


def _evaluate(e: ast.Expr, env: dict, policy: Policy):
    if isinstance(e, ast.Literal):
        return e.value
    if isinstance(e, ast.NameRef):
        if e.name in env:
            return env[e.name]
        if e.name in ("target", "task"):
            raise Missing(f"the request has no `{e.name}`")
        if e.name in policy.labels:
            return policy.labels[e.name]
        raise EvalError(f"unknown name `{e.name}`")
    if isinstance(e, ast.ListExpr):
        return [evaluate(i, env, policy) for i in e.items]
    if isinstance(e, ast.Attr):
        return attribute(evaluate(e.obj, env, policy), e.name.text)
    if isinstance(e, ast.Unary):
        value = evaluate(e.operand, env, policy)
        return (not truth(value, "the operand of `not`")) if e.op == "not" else negate(value)
    if isinstance(e, ast.Binary):
        op = e.op
        if op == "and":
            return truth(evaluate(e.left, env, policy), "an operand of `and`") and truth(
                evaluate(e.right, env, policy), "an operand of `and`")
        if op == "or":
            return truth(evaluate(e.left, env, policy), "an operand of `or`") or truth(
                evaluate(e.right, env, policy), "an operand of `or`")
        left, right = evaluate(e.left, env, policy), evaluate(e.right, env, policy)
        if op == "==":
            return equal(left, right)
        if op == "!=":
            return not equal(left, right)
        if op in ("<", "<=", ">", ">="):
            return order(op, left, right, policy.lattice)
        if op == "in":
            return member(left, right)
        if op == "matches":
            return matches(left, right)
        return arith(op, left, right)
    if isinstance(e, ast.Has):
        try:
            obj = evaluate(e.obj, env, policy)
        except Missing:
            return False
        return has(obj, e.field.text)
    if isinstance(e, ast.Is):
        try:
            obj = evaluate(e.obj, env, policy)
        except Missing:
            return False
        return is_label(obj, policy.labels[e.name.text])
    if isinstance(e, ast.Quant):
        test = any if e.kind == "any" else all
        items = iterable(evaluate(e.seq, env, policy))
        return test(truth(evaluate(e.body, {**env, e.var.text: x}, policy), "a quantifier body")
                    for x in items)
    if isinstance(e, ast.Call):
        fn = BUILTINS[e.func.text]
        return fn.impl(*(evaluate(a, env, policy) for a in e.args))
    raise EvalError(f"cannot evaluate {type(e).__name__}")


def is_label(obj, label) -> bool:
    """`agent is A` (or a hop: `chain.origin is A`) and `task is T`."""
    if not isinstance(obj, dict):
        raise EvalError(f"`is {label.name}` needs an agent, a hop or the task")
    if label.kind == "agent":
        ident = obj.get("id", obj.get("principal"))
        return isinstance(ident, str) and label.glob.match(ident)
    return obj.get("kind") == label.name and "params" in obj


# ---- steps 4-6: outcome, TTL, explanation -----------------------------------------------------


def outcome(policy: Policy, call: Call, failures: list[str], matched: dict, errors: list[str]
            ) -> Decision:
    forbids, asks, permits = matched["forbid"], matched["ask"], matched["permit"]
    if failures or forbids:
        return _decision(policy, "deny", 0, failures, forbids, errors)
    if asks:
        return _decision(policy, "ask", grant_ttl(policy, call, permits), [], asks, errors)
    if permits:
        return _decision(policy, "allow", grant_ttl(policy, call, permits), [], permits, errors)
    return _decision(policy, "deny", 0, ["default.deny"], [], errors)


def _decision(policy, word, ttl, codes, rules, errors) -> Decision:
    return Decision(decision=word, ttl=ttl, rules=[*codes, *(r.name for r in rules)],
                    reasons=[r.because for r in rules if r.because is not None],
                    errors=errors, policy=policy.hash)


def grant_ttl(policy: Policy, call: Call, permits: list[RuleInfo]) -> int:
    """§5 step 5: the smallest bound, in whole seconds rounded down."""
    bounds = [r.ttl if r.ttl is not None else policy.default_ttl for r in permits]
    if not permits:
        bounds.append(policy.default_ttl)
    req, now = call.request, call.now
    if call.task is not None and call.task.ttl is not None and req.task.started_at is not None:
        bounds.append(req.task.started_at + call.task.ttl - now)
    for h in req.chain:
        if h.scope is not None and h.scope.ttl is not None and h.at is not None:
            bounds.append(h.at + h.scope.ttl - now)
    if policy.max_ttl is not None:
        bounds.append(policy.max_ttl)
    return max(0, min(bounds) // timedelta(seconds=1))
