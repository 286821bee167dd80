"""`agp analyze --compare` and `--query`: searches for requests, each answer confirmed.

Both are one loop (`_search`): ask the solver for a request of the goal, decide it with both
evaluators, keep it only when they confirm the goal, then exclude its group (`--compare`: its
tool and task) and ask again, until the solver proves that no request is left (unsat), the
budget runs out, or the limit of answers is reached. A model that the evaluators do not confirm
(an over-approximation made it possible) is excluded and never shown; a group with no confirmed
request after a few tries is counted as unconfirmed, and the answer is then not a proof.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import z3  # type: ignore[import-untyped]  # z3 ships no type information

from agp.analyze.encode import (
    Approximation,
    Bounds,
    Space,
    encode,
    space_for,
)
from agp.analyze.witness import Decided, Solver, decide_both, evaluators, request_of
from agp.diagnostics import Diagnostic
from agp.glob import Glob
from agp.loader import check_sources
from agp.model import Decision
from agp.policy import Policy
from agp.source import Source

RANK = {"deny": 0, "ask": 1, "allow": 2}
DIRECTIONS = ("new-allows", "new-denies")
TRIES = 3  # models tried per group before it is counted as unconfirmed
QUERY_RULE = "__query__"


@dataclass(frozen=True, slots=True)
class Difference:
    direction: str  # new-allows | new-denies
    tool: str  # the tool pattern (or name) of the group
    task: str | None  # the task kind of the group; None: without a task
    request: dict[str, Any]
    old: Decision
    new: Decision

    def to_json(self) -> dict[str, Any]:
        return {"direction": self.direction, "request": self.request,
                "old": self.old.to_json(), "new": self.new.to_json()}


@dataclass
class Search:
    """How a search ended: `proved` when the solver showed that nothing more exists."""

    proved: bool = False
    timed_out: bool = False
    unconfirmed: int = 0
    limited: bool = False


@dataclass
class Comparison:
    differences: list[Difference] = field(default_factory=list)
    searches: dict[str, Search] = field(default_factory=dict)  # direction -> how it ended
    approximations: tuple[Approximation, ...] = ()
    bounds: Bounds | None = None

    def proved_none(self, direction: str) -> bool:
        search = self.searches[direction]
        return search.proved and not any(d.direction == direction for d in self.differences)

    def to_json(self) -> dict[str, Any]:
        return {
            "differences": [d.to_json() for d in self.differences],
            "proved": {d: s.proved for d, s in self.searches.items()},
            "unconfirmed": {d: s.unconfirmed for d, s in self.searches.items()},
            "timed_out": {d: s.timed_out for d, s in self.searches.items()},
            "bounds": self.bounds.describe() if self.bounds else [],
            "approximations": [str(a) for a in self.approximations],
        }


def compare(old: Policy, new: Policy, *, timeout: float = 10.0, limit: int = 20,
            directions: tuple[str, ...] = DIRECTIONS) -> Comparison:
    """What NEW decides more permissively than OLD (`new-allows`: deny to ask or allow, ask to
    allow) and the reverse (`new-denies`), one confirmed request per tool and task."""
    space = space_for([old, new])
    eo, en = encode(space, old), encode(space, new)
    solver = Solver(space, timeout)
    result = Comparison(approximations=tuple(dict.fromkeys([*eo.approximations,
                                                            *en.approximations])),
                        bounds=Bounds(space.hops))
    judges = evaluators(old), evaluators(new)
    groups = _Groups(space, [old, new])
    for direction in directions:
        goal = en.rank() > eo.rank() if direction == "new-allows" else en.rank() < eo.rank()

        def confirm(request: dict[str, Any], direction: str = direction) -> Any:
            o, n = (decide_both(j, request) for j in judges)
            if o.decision is None or n.decision is None:
                return None
            rank_o, rank_n = RANK[o.decision.decision], RANK[n.decision.decision]
            if rank_n > rank_o if direction == "new-allows" else rank_n < rank_o:
                return o.decision, n.decision
            return None

        def found(request: dict[str, Any], answer: Any, group: tuple[str, str | None],
                  direction: str = direction) -> None:
            result.differences.append(Difference(direction, group[0], group[1], request,
                                                 answer[0], answer[1]))

        result.searches[direction] = _search(solver, goal, confirm, found, groups, limit)
    return result


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    diagnostics: tuple[Diagnostic, ...]  # the query's own mistakes (nothing else is set then)
    search: Search | None = None
    request: dict[str, Any] | None = None
    decision: Decision | None = None
    approximations: tuple[Approximation, ...] = ()
    bounds: Bounds | None = None


def query(policy: Policy, text: str, decision: str = "allow", *,
          timeout: float = 10.0) -> QueryAnswer:
    """Whether some request is decided `decision` and satisfies the query: the clauses of a
    permit after its name (`on ... in ... by ... when ... unless ...`), or a bare condition."""
    augmented, problems = _with_query(policy, text)
    if augmented is None:
        return QueryAnswer(tuple(problems))
    space = space_for([policy])
    enc = encode(space, policy)
    asked = encode(space, augmented)
    solver = Solver(space, timeout)
    goal = z3.And(asked.matches[QUERY_RULE], enc.decision(decision))
    judges = evaluators(policy)
    rule = next(r for r in augmented.rules if r.name == QUERY_RULE)
    found_one: list[tuple[dict[str, Any], Decision]] = []

    def confirm(request: dict[str, Any]) -> Any:
        decided: Decided = decide_both(judges, request)
        if decided.decision is None or decided.decision.decision != decision:
            return None
        from agp import interp
        from agp.analyze.findings import _matches  # the reference evaluator's rule match
        from agp.model import parse_request

        call = interp.resolve(augmented, parse_request(request))
        return decided.decision if _matches(augmented, rule, call) else None

    def found(request: dict[str, Any], answer: Any, group: tuple[str, str | None]) -> None:
        found_one.append((request, answer))

    search = _search(solver, goal, confirm, found, None, 1)
    approximations = tuple(dict.fromkeys([*enc.approximations, *asked.approximations]))
    request, answer = found_one[0] if found_one else (None, None)
    return QueryAnswer((), search, request, answer, approximations, Bounds(space.hops))


def _with_query(policy: Policy, text: str) -> tuple[Policy | None, list[Diagnostic]]:
    """The policy plus the query as a permit named QUERY_RULE, checked with the policy's names."""
    words = text.lstrip().split(None, 1)
    clauses = text if words and words[0] in ("on", "in", "by", "when", "unless") \
        else f"when {text}"
    query_source = Source("<query>", f"permit {QUERY_RULE} {clauses}\n")
    sources = [f.source for f in policy.sources]
    checked, diagnostics = check_sources([*sources, query_source])
    problems = [d for d in diagnostics if d.span.source is query_source]
    if checked is None:
        return None, problems or diagnostics
    return checked, []


class _Groups:
    """The groups of requests that `--compare` reports one difference for: a tool pattern that
    some declaration or rule of either policy names (or any other tool), times a task kind
    (declared in either policy, another one, or none)."""

    def __init__(self, space: Space, policies: list[Policy]) -> None:
        self.space = space
        patterns: dict[str, Glob] = {}
        for p in policies:
            for t in p.tools:
                patterns.setdefault(t.glob.pattern, t.glob)
            for r in p.rules:
                for g in r.on_tools:
                    patterns.setdefault(g.pattern, g)
        # the most specific first: an exact name before the pattern that contains it
        self.patterns = sorted(patterns.values(), key=lambda g: (not g.is_exact, -len(g.pattern)))
        self.tasks = sorted({k for p in policies for k in p.tasks})

    def of(self, request: dict[str, Any]) -> tuple[tuple[str, str | None], z3.BoolRef]:
        """The group of a request, and the formula of its requests."""
        s = self.space
        tool = request["tool"]
        glob = next((g for g in self.patterns if g.match(tool)), None)
        if glob is not None:
            tool_label, tool_in = glob.pattern, s.glob(glob, s.tool)
        else:
            tool_label, tool_in = "(any other tool)", z3.Not(s.globs(self.patterns, s.tool))
        task = request.get("task")
        if task is None:
            return (tool_label, None), z3.And(tool_in, z3.Not(s.has_task))
        kind = task["kind"]
        if kind in self.tasks:
            return (tool_label, kind), z3.And(tool_in, s.has_task,
                                              s.task_kind == z3.StringVal(kind, s.ctx))
        other = z3.And(s.has_task, *(s.task_kind != z3.StringVal(k, s.ctx) for k in self.tasks))
        return (tool_label, "(an undeclared task)"), z3.And(tool_in, other)


def _search(solver: Solver, goal: z3.BoolRef, confirm: Callable[[dict[str, Any]], Any],
            found: Callable[[dict[str, Any], Any, tuple[str, str | None]], None],
            groups: _Groups | None, limit: int) -> Search:
    search = Search()
    excluded: list[z3.BoolRef] = []
    count = 0
    while True:
        if count >= limit:
            search.limited = True
            return search
        verdict, model = solver.witness(goal, *excluded)
        if verdict == "unsat":
            search.proved = search.unconfirmed == 0
            return search
        if verdict == "unknown" or model is None:
            search.timed_out = True
            return search
        request = request_of(solver.space, model)
        if groups is not None:
            group, members = groups.of(request)
        else:
            group, members = ("", None), solver.space.true()
        answer = confirm(request)
        tries = 1
        spurious: list[z3.BoolRef] = []
        while answer is None and tries < TRIES:
            spurious.append(_not_this(solver.space, model))
            verdict, model = solver.witness(goal, members, *excluded, *spurious)
            if verdict != "sat" or model is None:
                break
            request = request_of(solver.space, model)
            answer = confirm(request)
            tries += 1
        if answer is None:
            search.unconfirmed += 1
        else:
            found(request, answer, group)
            count += 1
        excluded.append(z3.Not(members))


def _not_this(space: Space, model: z3.ModelRef) -> z3.BoolRef:
    """Excludes the model's values of the request's main variables (to ask for another one)."""
    keys: list[z3.ExprRef] = [space.tool, space.agent_id, space.now, space.has_task,
                              space.task_kind, space.has_target, space.length,
                              *space.data.values(), *space.intent.values(),
                              *space.seen.values(), space.verified]
    for present, value in space.paths.values():
        keys += [present, value]
    return z3.Or([k != model.eval(k, model_completion=True) for k in keys])
