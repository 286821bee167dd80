"""`agp analyze -p POLICY`: what a policy's rules can never do, proved by the solver.

Four kinds of finding, each a warning at the rule's name (the codes of docs/analyze.md):

- `never-matches`: no request satisfies the rule's scope and condition;
- `shadowed-permit`: the permit matches, but never decides: whenever it matches, the envelope
  fails, a forbid matches, or an ask matches;
- `shadowed-ask`: likewise for an ask (the envelope or a forbid);
- `equivalent-rule`: the rule matches exactly the requests that an earlier rule of the same
  effect (and, for permits, the same TTL) matches.

Each is an absence the solver proved (unsat), so it holds although parts of the encoding are
over-approximated; it holds within the bounds of the request space (encode.Bounds). A check that
runs out of time is reported (`analysis-timeout`) rather than taken for either answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import z3  # type: ignore[import-untyped]  # z3 ships no type information

from agp.analyze.encode import (
    Approximation,
    Bounds,
    Encoding,
    Leaf,
    encode,
    envelope_at,
    space_for,
)
from agp.analyze.witness import Solver, request_of
from agp.diagnostics import Diagnostic, Related, warning
from agp.model import RequestError, parse_request
from agp.policy import Policy, RuleInfo
from agp.syntax import ast
from agp.syntax.visit import walk
from agp.values import EvalError

# At most this many forbids are tried one by one to name the one that shadows a rule.
NAMED_FORBIDS = 20

CODES = {
    "never-matches": "the rule's scope and condition are unsatisfiable: it never matches",
    "shadowed-permit": "the permit matches but never decides (the envelope, a forbid or an ask "
                       "always covers it)",
    "shadowed-ask": "the ask matches but never decides (the envelope or a forbid always covers "
                    "it)",
    "equivalent-rule": "the rule matches exactly the requests an earlier rule matches",
    "analysis-timeout": "the solver ran out of time on a check: nothing is claimed about it",
}


@dataclass(frozen=True, slots=True)
class Report:
    """The findings about one policy, and what they hold under."""

    diagnostics: tuple[Diagnostic, ...]
    approximations: tuple[Approximation, ...]
    bounds: Bounds
    checks: int  # solver checks run
    complete: bool = True  # False: `stop` ended it early; the findings so far still hold


def analyze(policy: Policy, *, timeout: float = 10.0,
            rules: Callable[[RuleInfo], bool] = lambda r: True,
            stop: Callable[[], bool] = lambda: False) -> Report:
    """Every finding about `policy` (`rules` selects the rules to report on), each check with a
    budget of `timeout` seconds. `stop` is asked before each rule: when it says so (a newer edit
    in the editor, a budget spent), the report ends there, incomplete."""
    space = space_for([policy])
    enc = encode(space, policy)
    solver = Solver(space, timeout)
    named = _Named(solver, enc)
    out: list[Diagnostic] = []
    witnesses: dict[str, dict[str, Any]] = {}
    checks = 0
    complete = True
    # rule name -> a request on which the evaluator shows the rule deciding: nothing to prove
    decided: dict[str, dict[str, Any]] = {}
    for rule in policy.rules:
        if not rules(rule):
            continue
        if stop():
            complete = False
            break
        if rule.name in decided:
            witnesses[rule.name] = decided[rule.name]
            continue
        # One check for a rule that decides (most of them): it matches, and nothing that comes
        # before it in the outcome (the envelope, a forbid; an ask, for a permit) does.
        checks += 1
        pin, shape = named.pin(rule)
        first, model = solver.first(
            (named.decides(rule, leaf) for leaf in _leaves_for(policy, rule, space.tool_names)),
            *named.decides(rule), *pin, tool=shape, chain=not named.chain_free(rule))
        if first == "sat":
            assert model is not None
            witnesses[rule.name] = request_of(space, model)
            _deciding(policy, witnesses[rule.name], decided)
            continue
        # It never decides, or the check ran out of time: which of the weaker claims holds.
        checks += 1
        verdict, model = solver.witness(named.match[rule.name], *pin, tool=shape)
        if verdict != "sat":
            out.append(_finding(rule, "never-matches" if verdict == "unsat" else None,
                                f"rule `{rule.name}` can never match: no request satisfies "
                                "its scope and condition"))
            continue
        assert model is not None
        witnesses[rule.name] = request_of(space, model)
        if rule.effect == "forbid":
            continue
        if rule.effect == "permit":  # the envelope and forbids, or the asks?
            checks += 1
            verdict = solver.check(named.match[rule.name], *pin, named.envelope_ok,
                                   named.no_forbid, tool=shape)
            if verdict == "sat":
                out.append(_finding(rule, "shadowed-permit" if first == "unsat" else None,
                                    f"permit `{rule.name}` never decides: whenever it matches, "
                                    "an ask matches too"))
                continue
        else:
            verdict = first
        out.append(_finding(rule, None if verdict == "unknown" else f"shadowed-{rule.effect}",
                            _shadow_message(named, rule), related=named.covering(rule)))
    if complete:
        out.extend(_equivalent(policy, named, witnesses, rules, stop))
        complete = not stop()
    return Report(tuple(out), tuple(dict.fromkeys(enc.approximations)),
                  Bounds(space.hops), checks, complete)


class _Named:
    """The formulas every check reads."""

    def __init__(self, solver: Solver, enc: Encoding) -> None:
        self.solver, self.enc = solver, enc
        self.match = enc.matches
        self.envelope_ok = z3.Not(enc.failed)
        self.no_forbid = z3.Not(enc.effect("forbid"))
        self.no_ask = z3.Not(enc.effect("ask"))
        self.near: dict[object, list[RuleInfo]] = {}  # scope -> the forbids and asks it may meet
        self.by_tool: dict[str | None, list[RuleInfo]] | None = None  # forbids and asks
        self.order = {id(r): i for i, r in enumerate(enc.policy.rules)}

    def decides(self, rule: RuleInfo, leaf: Leaf | None = None) -> list[z3.BoolRef]:
        """The rule matches and decides: a forbid always; an ask when the envelope and the
        forbids let it; a permit when the asks let it too. Only the forbids and asks whose
        scope may meet the rule's are named: the others cannot match with it, and a big set
        would otherwise give every check the whole policy to read. In a `leaf`, the request
        is in it, and the envelope is only the leaf's."""
        match = self.match[rule.name]
        at = [] if leaf is None else leaf.facts(self.enc.space)
        if rule.effect == "forbid":
            return [match, *at]
        near = self.meets(rule)
        no_forbid = z3.Not(self.enc.space.any(self.match[r.name] for r in near
                                              if r.effect == "forbid"))
        envelope_ok = self.envelope_ok if leaf is None else z3.Not(envelope_at(self.enc, leaf))
        out = [match, *at, envelope_ok, no_forbid]
        if rule.effect == "permit":
            out.append(z3.Not(self.enc.space.any(self.match[r.name] for r in near
                                                 if r.effect == "ask")))
        return out

    def meets(self, rule: RuleInfo) -> list[RuleInfo]:
        """The forbids and asks whose scope may meet the rule's (`may_meet`)."""
        # rules of one scope meet the same others (the big sets repeat a few scopes)
        key = (rule.tasks, rule.scoped_on, rule.on_intents, tuple(g.pattern for g in rule.on_tools))
        if key not in self.near:
            if self.by_tool is None:
                self.by_tool = {}
                for r in self.enc.policy.rules:
                    if r.effect != "permit":
                        self.by_tool.setdefault(one_tool(r), []).append(r)
            # a rule of one tool meets no rule of another one
            tool = one_tool(rule)
            others = [r for t, rs in self.by_tool.items() if t is None or tool is None or t == tool
                      for r in rs]
            self.near[key] = sorted((r for r in others if may_meet(rule, r)),
                                    key=lambda r: self.order[id(r)])
        return [r for r in self.near[key] if r is not rule]

    def chain_free(self, rule: RuleInfo) -> bool:
        """Whether `decides(rule, leaf)` reads the chain only through the envelope. Then a
        request without a chain is a witness whenever one with a chain is (the chain's rows of
        the envelope all pass without one, and nothing else changes), and a leaf without a
        witness without a chain needs no search with one."""
        rules = [rule] if rule.effect == "forbid" else [rule, *(
            r for r in self.meets(rule) if rule.effect == "permit" or r.effect == "forbid")]
        return not any(reads_chain(r) for r in rules)

    def pin(self, rule: RuleInfo) -> tuple[list[z3.BoolRef], bool]:
        """Facts every request the rule matches satisfies, which spare the solver work: the
        tool, when the rule's scope names exactly one (a check then reads constants where it
        read globs over a free string); and whether a check must still say the tool's shape
        (`Solver.check`'s `tool`)."""
        name = one_tool(rule)
        if name is None:
            return [], True
        space = self.enc.space
        return [space.tool == z3.StringVal(name, space.ctx)], name not in space.tool_names

    def covering(self, rule: RuleInfo) -> tuple[Related, ...]:
        """The forbid that alone covers the rule, when one does (among the first few)."""
        forbids = [f for f in self.enc.policy.rules
                   if f.effect == "forbid" and may_meet(rule, f)][:NAMED_FORBIDS]
        pin, shape = self.pin(rule)
        for f in forbids:
            if self.solver.check(self.match[rule.name], *pin, z3.Not(self.match[f.name]),
                                 tool=shape) == "unsat":
                return (Related(f.decl.name.span, f"forbid `{f.name}` matches whenever it does"),)
        return ()


TOOL_TRIES = 2  # tool names tried first for a rule's witness


def _leaves_for(policy: Policy, rule: RuleInfo, names: tuple[str, ...]) -> list[Leaf]:
    """Where a rule's witness is sought first: the first few of `names` that are in its scope
    and its first task's tools, with that task; for a rule of any task, without a task, then
    with the first task that allows the tool (a condition may need one)."""
    if rule.tasks:
        return [Leaf(name, min(rule.tasks)) for name in _tools_for(policy, rule, names)]
    out = []
    for name in _tools_for(policy, rule, names):
        out.append(Leaf(name, None))
        out += [Leaf(name, t.name) for t in itertools.islice(
            (t for t in policy.tasks.values()
             if t.tools is None or any(g.match(name) for g in t.tools)), 1)]
    return out


def _tools_for(policy: Policy, rule: RuleInfo, names: tuple[str, ...]) -> list[str]:
    """The first few of `names` that are in the rule's scope and its first task's tools."""
    task = next((policy.tasks[k] for k in sorted(rule.tasks or ()) if k in policy.tasks), None)

    def fits(name: str) -> bool:
        if task is not None and task.tools is not None and \
                not any(g.match(name) for g in task.tools):
            return False
        if not rule.scoped_on or any(g.match(name) for g in rule.on_tools):
            return True
        return bool(rule.on_intents) and any(rule.on_intents & t.intents for t in policy.tools
                                             if t.glob.match(name))

    return list(itertools.islice((n for n in names if fits(n)), TOOL_TRIES))


def reads_chain(rule: RuleInfo) -> bool:
    """Whether the rule's condition names the chain (`chain.depth`, `x in chain`, ...)."""
    return any(isinstance(e, ast.NameRef) and e.name == "chain"
               for cond in (rule.when, rule.unless) if cond is not None for e in walk(cond))


def one_tool(rule: RuleInfo) -> str | None:
    """The one tool name a rule's scope holds, when it holds one (`on payments.refund`)."""
    names = {g.pattern for g in rule.on_tools}
    if not rule.scoped_on or rule.on_intents or len(names) != 1 or \
            not rule.on_tools[0].is_exact:
        return None
    return rule.on_tools[0].pattern


def may_meet(a: RuleInfo, b: RuleInfo) -> bool:
    """Whether some request may be in the scope of both rules (False only when the scopes are
    disjoint: different tools, or different tasks)."""
    if a.tasks is not None and b.tasks is not None and not a.tasks & b.tasks:
        return False
    if not (a.scoped_on and b.scoped_on) or a.on_intents or b.on_intents:
        return True
    return any(globs_meet(g.pattern, h.pattern) for g in a.on_tools for h in b.on_tools)


def globs_meet(p: str, q: str) -> bool:
    """Whether two tool patterns may match one name: False only when their fixed starts, or
    their fixed ends, differ."""
    def fixed(x: str) -> tuple[str, str]:
        cut = [i for i, ch in enumerate(x) if ch in "*?"]
        return (x, x) if not cut else (x[:cut[0]], x[cut[-1] + 1:])

    (p0, p1), (q0, q1) = fixed(p), fixed(q)
    if p == p0 and q == q0:  # both exact
        return p == q
    n, m = min(len(p0), len(q0)), min(len(p1), len(q1))
    return p0[:n] == q0[:n] and (m == 0 or p1[-m:] == q1[-m:])


def _deciding(policy: Policy, request: dict[str, Any], decided: dict[str, dict[str, Any]]) -> None:
    """Record the rules that the reference evaluator shows deciding `request`: the matching
    forbids of a deny, the asks of an ask, the permits of an allow."""
    from agp import interp

    for name in interp.decide(policy, request).rules:
        decided.setdefault(name, request)


def _shadow_message(named: _Named, rule: RuleInfo) -> str:
    pin, shape = named.pin(rule)
    alone = named.solver.check(named.match[rule.name], *pin, named.envelope_ok, tool=shape)
    why = ("the envelope (the task's scope or the delegation checks) always denies"
           if alone == "unsat" else "a forbid or the envelope always denies")
    return f"{rule.effect} `{rule.name}` never decides: whenever it matches, {why}"


def _finding(rule: RuleInfo, code: str | None, message: str,
             related: tuple[Related, ...] = ()) -> Diagnostic:
    if code is None:
        return warning("analysis-timeout", rule.decl.name.span,
                       f"the solver ran out of time on rule `{rule.name}`: nothing is claimed "
                       "about it", "raise --timeout")
    return warning(code, rule.decl.name.span, message, related=related)


def _equivalent(policy: Policy, named: _Named, witnesses: dict[str, dict[str, Any]],
                selected: Callable[[RuleInfo], bool],
                stop: Callable[[], bool]) -> list[Diagnostic]:
    """Rules equivalent to an earlier one. Two equivalent rules match each other's witness, and
    no witness matches one without the other, which the evaluator checks cheaply; the solver
    then proves the candidates equal."""
    from agp import interp  # the reference evaluator's own steps decide what a rule matches

    rules = [r for r in policy.rules if r.name in witnesses]
    # the rules of one tool are looked at only for its witnesses (the others are out of scope)
    by_tool: dict[str | None, list[RuleInfo]] = {}
    for r in rules:
        by_tool.setdefault(one_tool(r), []).append(r)

    def matched(request: dict[str, Any], effect: str) -> set[str] | None:
        """The rules of `effect` that match `request` (None: it is no valid request)."""
        try:
            call = interp.resolve(policy, parse_request(request))
        except (RequestError, EvalError):
            return None
        near = [*by_tool.get(call.request.tool, ()), *by_tool.get(None, ())]
        return {other.name for other in near if other.effect == effect
                and _matches(policy, other, call)}

    hits: dict[str, set[str]] = {}
    for r in rules:
        seen = matched(witnesses[r.name], r.effect)
        if seen is not None:
            hits[r.name] = seen
    # what the solver's models of candidates that differ match: they tell later ones apart
    told: list[set[str]] = []
    out: list[Diagnostic] = []
    reported: set[str] = set()
    order = {r.name: i for i, r in enumerate(policy.rules)}
    for r in rules:
        if r.name in reported or not selected(r):
            continue
        for name in sorted(hits.get(r.name, ()), key=order.__getitem__):
            other = policy.rules[order[name]]
            if order[name] >= order[r.name] or r.name not in hits.get(name, ()):
                continue
            if r.effect == "permit" and r.ttl != other.ttl:
                continue
            if any((r.name in m) != (name in m) for m in itertools.chain(hits.values(), told)):
                continue  # a witness tells them apart
            if stop():
                return out
            a, b = named.match[r.name], named.match[name]
            # One formula (z3 shares equal terms: two rules of the same text) is one set of
            # requests; else, of one tool, both match nothing elsewhere: a check over that tool.
            pin, shape = named.pin(r) if one_tool(r) == one_tool(other) else ([], True)
            if not a.eq(b) and named.solver.check(z3.Xor(a, b), *pin, tool=shape) != "unsat":
                model = named.solver.model
                seen = None if model is None else \
                    matched(request_of(named.enc.space, model), r.effect)
                if seen is not None:
                    told.append(seen)
                continue
            reported.add(r.name)
            out.append(warning(
                "equivalent-rule", r.decl.name.span,
                f"rule `{r.name}` matches exactly the requests that `{name}` matches",
                "remove one of them, or make them differ",
                (Related(other.decl.name.span, f"`{name}` is here"),)))
            break
    return out


def _matches(policy: Policy, rule: RuleInfo, call: Any) -> bool:
    from agp import interp

    if not interp.in_scope(policy, rule, call):
        return False
    hit, _ = interp.rule_matches(policy, rule, call.env)
    return hit
