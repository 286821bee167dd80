"""The reference evaluator: LANGUAGE.md §5 written as plainly as possible.

Steps 1 (resolve) and 3 (rules) are here; steps 2 and 4-6 (envelope, outcome, TTL) are
agp.steps, shared with the compiled evaluator. Anything faster (agp.compile) must agree with
this module; a property test holds them equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from agp import budget
from agp.model import Decision, Request, RequestError, parse_json_duration, parse_request
from agp.policy import Policy, RuleInfo, TaskInfo
from agp.stdlib.builtins import BUILTINS
from agp.steps import chain_depth, envelope_codes, error_text, invalid, outcome
from agp.syntax import ast
from agp.values import (
    Chain,
    EvalError,
    LabelSet,
    Missing,
    arith,
    attribute,
    equal,
    has,
    iterable,
    matches,
    member,
    negate,
    order,
    truth,
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


def decide(policy: Policy, request: Request | dict, *, task_ended: bool = False) -> Decision:
    """Decide one request. Never raises on a bad request: it is denied with request.invalid."""
    try:
        req = parse_request(request)
    except RequestError as exc:
        return invalid(policy, exc.errors)
    call = resolve(policy, req)
    failures = envelope_codes(policy, req, call.now, call.task, call.intents, call.data,
                              task_ended)
    matched: dict[str, list[RuleInfo]] = {"permit": [], "forbid": [], "ask": []}
    errors: list[str] = []
    for rule in policy.rules:
        if not in_scope(policy, rule, call):
            continue
        hit, problem = rule_matches(policy, rule, call.env)
        if problem is not None:
            errors.append(error_text(rule, problem))
        if hit:
            matched[rule.effect].append(rule)
    return outcome(policy, req, call.now, call.task, failures, matched["forbid"], matched["ask"],
                   matched["permit"], errors)


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
        try:
            args[name] = parse_json_duration(args[name])
        except ValueError:  # not a duration within the bounds: kept, so using it as one is an error
            pass
    hops = [hop_value(h) for h in req.chain]
    chain = Chain(req.agent.id, depth=chain_depth(hops), hops=hops)
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
        return quantify(e, env, policy)
    if isinstance(e, ast.Call):
        fn = BUILTINS[e.func.text]
        return fn.impl(*(evaluate(a, env, policy) for a in e.args))
    raise EvalError(f"cannot evaluate {type(e).__name__}")


def quantify(e: ast.Quant, env: dict, policy: Policy) -> bool:
    """`any` and `all`. A quantifier that is not inside another one owns an evaluation budget
    (agp.budget) for everything evaluated inside it; going over it is an error of the condition.
    """

    def run() -> bool:
        test = any if e.kind == "any" else all
        items = quantified(evaluate(e.seq, env, policy), expr_size(e.body))
        return test(truth(evaluate(e.body, {**env, e.var.text: x}, policy), "a quantifier body")
                    for x in items)

    if budget.active():
        return run()
    try:
        return budget.metered(run)
    except budget.Exhausted:
        raise EvalError(
            f"this quantifier needs more than {budget.MAX_EVAL_STEPS:,} evaluation steps (its "
            "items, those of the quantifiers inside it, and the lists and long strings they "
            "scan); to compare two lists, use subset() or intersects()", e.span) from None


def quantified(value, body_size: int) -> list:
    """The items of a quantifier, paid for when it starts: ITEM_STEPS for each node of the body,
    and one more, per item (agp.budget). The compiled evaluator calls it too."""
    items = iterable(value)
    budget.spend(len(items) * budget.ITEM_STEPS * (1 + body_size))
    return items


def expr_size(e: ast.Expr) -> int:
    """The number of nodes of an expression (agp.compile.codegen.ir_size counts the same on the
    IR, which has one node per AST node)."""
    if isinstance(e, ast.ListExpr):
        return 1 + sum(expr_size(i) for i in e.items)
    if isinstance(e, (ast.Attr, ast.Has, ast.Is)):
        return 1 + expr_size(e.obj)
    if isinstance(e, ast.Unary):
        return 1 + expr_size(e.operand)
    if isinstance(e, ast.Binary):
        return 1 + expr_size(e.left) + expr_size(e.right)
    if isinstance(e, ast.Quant):
        return 1 + expr_size(e.seq) + expr_size(e.body)
    if isinstance(e, ast.Call):
        return 1 + sum(expr_size(a) for a in e.args)
    return 1  # a literal or a name


def is_label(obj, label) -> bool:
    """`agent is A` (or a hop: `chain.origin is A`) and `task is T`."""
    if not isinstance(obj, dict):
        raise EvalError(f"`is {label.name}` needs an agent, a hop or the task")
    if label.kind == "agent":
        ident = obj.get("id", obj.get("principal"))
        return isinstance(ident, str) and label.glob.match(ident)
    return obj.get("kind") == label.name and "params" in obj
