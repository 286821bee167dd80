"""The reference evaluator: LANGUAGE.md §5 written as plainly as possible.

Steps 1 (resolve) and 3 (rules) are here; step 2 is the rows of agp.envelope, and steps 4-6
(outcome, TTL, explanation) are agp.steps, shared with the compiled evaluator. Anything faster
(agp.compile) must agree with this module; a property test holds them equal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from agp import budget, envelope
from agp.envelope import Facts, chain_depth, identify
from agp.identity import Identity, IdentityCheck, unverified
from agp.limits import MAX_EVAL_STEPS
from agp.model import (
    Decision,
    HistoryEntry,
    Hop,
    Request,
    RequestError,
    parse_json_duration,
    parse_request,
)
from agp.policy import Policy, RuleInfo, TaskInfo
from agp.stdlib.builtins import BUILTINS
from agp.steps import error_text, invalid, outcome
from agp.syntax import ast
from agp.syntax.visit import ExprVisitor, children
from agp.values import (
    Chain,
    EvalError,
    Label,
    LabelSet,
    Missing,
    arith,
    attribute,
    equal,
    has,
    iterable,
    kind_of,
    matches,
    member,
    negate,
    order,
    show,
    truth,
)

if TYPE_CHECKING:  # the compiled evaluator's requests take the reference's steps too
    from agp.compile.request import FastHop, FastRequest

# The names a condition is evaluated with (§4): those of agp.syntax.names.ROOTS that the request
# has, plus the variables of the quantifiers around it.
Env = dict[str, object]


@dataclass(frozen=True, slots=True)
class Resolved:
    """One request, resolved against the policy (§5 step 1)."""

    request: Request
    now: datetime
    identity: Identity  # who the agent is: `identity.id` is `agent.id` everywhere
    intents: frozenset[str]
    data: frozenset[str]
    task: TaskInfo | None  # the declaration named by task.kind, if any
    env: Env


def decide(policy: Policy, request: Request | dict[str, object], *,
           task_ended: bool = False, store_unavailable: bool = False,
           identity: IdentityCheck = unverified) -> Decision:
    """Decide one request. Never raises on a bad request: it is denied with request.invalid.

    `identity` establishes who the agent is (agp.identity), once, before anything else;
    `task_ended` and `store_unavailable` are what the caller knows of the task's state.
    """
    try:
        req = parse_request(request)
    except RequestError as exc:
        return invalid(policy, exc.errors)
    call = resolve(policy, req, identity)
    failures, messages = envelope.check(
        Facts(policy, req, call.now, call.task, call.intents, call.data, call.identity,
              task_ended, store_unavailable))
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
                   matched["permit"], [*messages, *errors])


# ---- step 1: resolve ----------------------------------------------------------------------------


def resolve(policy: Policy, req: Request, identity: IdentityCheck = unverified) -> Resolved:
    now = req.now or datetime.now(timezone.utc)
    ident = identify(identity, req.agent, now)
    tool_intents, tool_data, durations = tool_labels(policy, req.tool)
    intents = frozenset(req.intent) | tool_intents
    data = frozenset(req.data) | tool_data
    task = policy.tasks.get(req.task.kind) if req.task is not None else None
    return Resolved(req, now, ident, intents, data, task,
                    environment(req, now, ident, intents, data, durations))


def tool_labels(policy: Policy, tool: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """The intents, data classes and duration-typed arguments that the tool declarations matching
    `tool` give a call of it (the task runtime caches them per tool for its history items)."""
    tools = [t for t in policy.tools if t.glob.match(tool)]
    return (frozenset().union(*(t.intents for t in tools)),
            frozenset().union(*(t.data for t in tools)),
            frozenset().union(*(t.durations for t in tools)))


def environment(req: Request | FastRequest, now: datetime, identity: Identity,
                intents: frozenset[str], data: frozenset[str], durations: frozenset[str],
                session: bool = True, names: frozenset[str] | None = None) -> Env:
    """The names of §4 for one request. Without `session`, `task` lacks `seen` and `history`:
    the compiled evaluator's leaves whose rules never read them do not pay for the history.
    With `names`, `args`, `chain` and `task` are built only if among them: the compiled
    evaluator decides here only the rules its code could not, and builds what they read."""
    env: Env = {"tool": req.tool}
    if names is None or "args" in names:
        args = dict(req.args)
        for name in durations & args.keys():
            try:
                args[name] = parse_json_duration(args[name])
            except ValueError:  # not a duration within the bounds: kept, so using it is an error
                pass
        env["args"] = args
    env["intent"] = LabelSet("intent", intents)
    env["data"] = LabelSet("class", data)
    env["agent"] = {"id": identity.id, "attrs": req.agent.attrs, "verified": identity.verified}
    if names is None or "chain" in names:
        hops = [hop_value(h) for h in req.chain]
        chain = Chain(identity.id, depth=chain_depth(hops), hops=hops)
        if hops:
            chain["origin"] = hops[0]
        env["chain"] = chain
    env["context"] = req.context
    env["now"] = now
    if req.target is not None:
        env["target"] = req.target
    if req.task is not None and (names is None or "task" in names):
        t = req.task
        task: dict[str, object] = {"kind": t.kind, "params": t.params}
        if t.id is not None:
            task["id"] = t.id
        if t.objective is not None:
            task["objective"] = t.objective
        if t.started_at is not None:
            task["started_at"] = t.started_at
            task["age"] = now - t.started_at
        if session:
            task["seen"] = LabelSet("class", frozenset(t.seen))
            task["history"] = history_value(t.history, now)
        env["task"] = task
    return env


def history_value(history: Sequence[HistoryEntry],
                  now: datetime) -> list[object]:
    """`task.history` (LANGUAGE.md §6): each earlier call as an object, its `intent` and `data`
    sets like the call's own, and its `age` at this decision's `now`."""
    # Items of a session repeat the same few label lists: one LabelSet each, not one per item.
    sets: dict[tuple[str, ...], LabelSet] = {}
    out: list[object] = []
    for h in history:
        key = ("intent", *h.intent)
        intents = sets.get(key)
        if intents is None:
            intents = sets[key] = LabelSet("intent", frozenset(h.intent))
        key = ("class", *h.data)
        classes = sets.get(key)
        if classes is None:
            classes = sets[key] = LabelSet("class", frozenset(h.data))
        out.append({"tool": h.tool, "intent": intents, "data": classes, "args": h.args,
                    "decision": h.decision, "at": h.at, "age": now - h.at})
    return out


def hop_value(hop: Hop | FastHop) -> dict[str, object]:
    value: dict[str, object] = {"principal": hop.principal, "kind": hop.kind}
    if hop.at is not None:
        value["at"] = hop.at
    if hop.scope is not None:
        value["scope"] = hop.scope.model_dump(exclude_none=True)
    return value


# ---- step 3: rules ------------------------------------------------------------------------------


def in_scope(policy: Policy, rule: RuleInfo, call: Resolved) -> bool:
    req = call.request
    if rule.scoped_on and not (any(g.match(req.tool) for g in rule.on_tools)
                               or rule.on_intents & call.intents):
        return False
    if rule.tasks is not None and (req.task is None or req.task.kind not in rule.tasks):
        return False
    if rule.agents is not None and not any(g.match(call.identity.id) for g in rule.agents):
        return False
    return True


def names_read(rule: RuleInfo) -> frozenset[str]:
    """The names a rule's conditions read (quantifier variables among them): an environment
    that has these as `environment` gives them decides the rule as the whole one does."""
    found: set[str] = set()
    todo = [e for e in (rule.when, rule.unless) if e is not None]
    while todo:
        e = todo.pop()
        if isinstance(e, ast.NameRef):
            found.add(e.name)
        todo.extend(children(e))
    return frozenset(found)


def rule_matches(policy: Policy, rule: RuleInfo, env: Env) -> tuple[bool, EvalError | None]:
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


def evaluate(e: ast.Expr, env: Env, policy: Policy) -> object:
    """The value of an expression: the case of its form in `_Value`. Raises EvalError, with the
    span of the failing part."""
    try:
        # `_Value().visit(e, env, policy)` minus a call: this runs for every node evaluated.
        return _CASES[type(e)](e, env, policy)
    except EvalError as exc:
        if exc.span is None:
            exc.span = e.span
        raise


class _Value(ExprVisitor):
    """The value of each form of expression (§4), its parts evaluated by `evaluate`."""

    def visit_Literal(self, e: ast.Literal, env: Env, policy: Policy) -> object:
        return e.value

    def visit_NameRef(self, e: ast.NameRef, env: Env, policy: Policy) -> object:
        if e.name in env:
            return env[e.name]
        if e.name in ("target", "task"):
            raise Missing(f"the request has no `{e.name}`")
        if e.name in policy.labels:
            return policy.labels[e.name]
        raise EvalError(f"unknown name `{e.name}`")

    def visit_ListExpr(self, e: ast.ListExpr, env: Env, policy: Policy) -> object:
        return [evaluate(i, env, policy) for i in e.items]

    def visit_Attr(self, e: ast.Attr, env: Env, policy: Policy) -> object:
        return attribute(evaluate(e.obj, env, policy), e.name.text)

    def visit_Unary(self, e: ast.Unary, env: Env, policy: Policy) -> object:
        value = evaluate(e.operand, env, policy)
        return (not truth(value, "the operand of `not`")) if e.op == "not" else negate(value)

    def visit_Binary(self, e: ast.Binary, env: Env, policy: Policy) -> object:
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

    def visit_Has(self, e: ast.Has, env: Env, policy: Policy) -> object:
        try:
            obj = evaluate(e.obj, env, policy)
        except Missing:
            return False
        return has(obj, e.field.text)

    def visit_Is(self, e: ast.Is, env: Env, policy: Policy) -> object:
        try:
            obj = evaluate(e.obj, env, policy)
        except Missing:
            return False
        return is_label(obj, policy.labels[e.name.text])

    def visit_Quant(self, e: ast.Quant, env: Env, policy: Policy) -> object:
        return quantify(e, env, policy)

    def visit_Call(self, e: ast.Call, env: Env, policy: Policy) -> object:
        fn = BUILTINS[e.func.text]
        return fn.impl(*(evaluate(a, env, policy) for a in e.args))


_CASES = _Value().cases()


def quantify(e: ast.Quant, env: Env, policy: Policy) -> object:
    """`any`, `all`, `count` and `sum`, over the items their filter keeps. A quantifier that is
    not inside another one owns an evaluation budget (agp.budget) for everything evaluated
    inside it; going over it is an error of the condition.
    """

    def run() -> object:
        items = quantified(evaluate(e.seq, env, policy), quant_size(e))
        scopes = ({**env, e.var.text: x} for x in items)
        kept = scopes if e.filter is None else (
            s for s in scopes if truth(evaluate(e.filter, s, policy), "a quantifier filter"))
        if e.kind == "sum":
            return total((evaluate(e.body, s, policy) for s in kept), e.zero)
        tests = (truth(evaluate(e.body, s, policy), "a quantifier body") for s in kept)
        return QUANTIFIERS[e.kind](tests)

    if budget.active():
        return run()
    try:
        return budget.metered(run)
    except budget.Exhausted:
        raise EvalError(
            f"this quantifier needs more than {MAX_EVAL_STEPS:,} evaluation steps (its "
            "items, those of the quantifiers inside it, and the lists and long strings they "
            "scan); to compare two lists, use subset() or intersects()", e.span) from None


# What `any`, `all` and `count` make of the truths of their body (the compiled evaluator uses
# them too): `any` and `all` stop at the first true and false.
QUANTIFIERS: dict[str, Callable[[Iterable[bool]], object]] = {
    "any": any, "all": all, "count": sum}


def total(values: Iterable[object], zero: object) -> object:
    """`sum`: the first value, then each next one added with `+` (so the value bounds apply);
    `zero` (the checker's, see ast.Quant) when there is none. Starting from the first value
    rather than from `zero` sums durations whose type the checker could not tell."""
    result = zero
    for n, v in enumerate(values):
        if n == 0 and kind_of(v) not in ("number", "duration"):
            raise EvalError(f"`sum` adds numbers or durations, got {kind_of(v)} {show(v)}")
        result = v if n == 0 else arith("+", result, v)
    return result


def quantified(value: object, body_size: int) -> list[object]:
    """The items of a quantifier, paid for when it starts: ITEM_STEPS for each node of the body,
    and one more, per item (agp.budget). The compiled evaluator calls it too."""
    items = iterable(value)
    budget.spend(len(items) * budget.ITEM_STEPS * (1 + body_size))
    return items


def quant_size(e: ast.Quant) -> int:
    """The nodes a quantifier evaluates per item: its filter's and its body's (agp.budget)."""
    return sum(expr_size(c) for c in (e.filter, e.body) if c is not None)


def expr_size(e: ast.Expr) -> int:
    """The number of nodes of an expression (the compiled evaluator calls it too: its IR holds
    the same nodes)."""
    return 1 + sum(map(expr_size, children(e)))


def is_label(obj: object, label: Label) -> bool:
    """`agent is A` (or a hop: `chain.origin is A`) and `task is T`."""
    if not isinstance(obj, dict):
        raise EvalError(f"`is {label.name}` needs an agent, a hop or the task")
    if label.kind == "agent":
        ident = obj.get("id", obj.get("principal"))
        # An agent's label always has its pattern (agp.check.resolve).
        return isinstance(ident, str) and label.glob is not None and label.glob.match(ident)
    return obj.get("kind") == label.name and "params" in obj
