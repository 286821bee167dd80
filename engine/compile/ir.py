"""The compiler's IR: a checked policy set as typed, immutable data that a bundle can store.

A `Program` holds what evaluation needs and nothing else: the declarations as names and patterns,
and each rule as an `IRRule`. Conditions are the checker's own AST (`agp.syntax.ast`), not a copy
of it in other classes: its nodes already are frozen, slotted dataclasses with a `Span` each, so
the passes rewrite them (`dataclasses.replace`), the code generator walks them with the one
expression visitor (`agp.syntax.visit.ExprVisitor`), and the reference evaluator, which explains
a failing rule, runs exactly the nodes a bundle stored. A new form of expression is then one AST
node and one case per visitor, with no conversion to write in either direction.

>>> from agp.loader import check_sources
>>> from agp.source import Source
>>> policy, _ = check_sources([Source("p.agp", "permit p on t when args.n > 1 + 1")])
>>> rule = policy_to_ir(policy).rules[0]
>>> rule.name, type(rule.when).__name__, str(rule.when.span)
('p', 'Binary', 'p.agp:1:20')

`agp.compile.bundle` writes a Program as JSON and reads it back (no pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from agp.glob import Glob, compile_glob
from agp.policy import Policy, RuleInfo, TaskInfo, ToolInfo
from agp.source import Span
from agp.syntax import ast
from agp.values import Label, Lattice

LABEL_KINDS = frozenset(("class", "intent", "agent", "task"))
EFFECTS = ("forbid", "ask", "permit")  # the order in which a leaf decides them


@dataclass(frozen=True, slots=True)
class IRRule:
    index: int  # the position in the policy set: decisions list rules in that order
    name: str
    name_span: Span
    effect: str  # one of EFFECTS
    on_tools: tuple[str, ...]  # tool patterns of `on`
    on_intents: tuple[str, ...]  # intents of `on intent`
    scoped_on: bool  # whether the rule has an `on` clause at all
    tasks: tuple[str, ...] | None
    agents: tuple[str, ...] | None  # the agents' patterns
    agent_names: tuple[str, ...] | None  # the agents as written (for --explain)
    when: ast.Expr | None
    unless: ast.Expr | None
    ttl: timedelta | None
    because: str | None
    span: Span
    # A rule read from a bundle after the passes: its conditions by form (then `when` and
    # `unless` are None), see FormRef. None for a rule with its own AST.
    form: FormRef | None = None


@dataclass(frozen=True, slots=True)
class FormRef:
    """A rule's conditions as its form and its own constants, the way a bundle stores the rules
    after the passes: code is generated per form (`agp.compile.codegen.shape`), so a rule needs
    no AST of its own to be compiled. Only the error path needs the conditions as written, and a
    bundle decodes those when it needs them."""

    key: object  # the form's key (codegen.cond_shape of `example`)
    example: IRRule  # the first rule of the form, with its AST: the generator runs on it
    holes: tuple[object, ...]  # this rule's literals, in the form's order (a tuple for a list)
    where: Span  # the span of this rule's first condition


@dataclass(frozen=True, slots=True)
class IRTool:
    pattern: str
    intents: tuple[str, ...]
    data: tuple[str, ...]
    durations: tuple[str, ...]  # args fields typed `duration`


@dataclass(frozen=True, slots=True)
class IRTask:
    tools: tuple[str, ...] | None
    intents: tuple[str, ...] | None
    ceiling: str | None
    ttl: timedelta | None
    delegate: bool
    delegate_to: tuple[str, ...] | None
    depth: int | None


@dataclass(frozen=True, slots=True)
class IRLabel:
    kind: str  # one of LABEL_KINDS
    pattern: str | None  # the glob of an agent


@dataclass(frozen=True, slots=True)
class Program:
    hash: str
    lattice: dict[str, tuple[str, ...]]  # class -> the classes at or below it
    intents: tuple[str, ...]
    labels: dict[str, IRLabel]
    agents: dict[str, str]
    tools: tuple[IRTool, ...]
    tasks: dict[str, IRTask]
    rules: Sequence[IRRule]  # as written (a bundle decodes each when it is first read)
    default_ttl: timedelta
    max_ttl: timedelta | None
    # Read from a bundle: every rule after the passes, by form, in policy order (a rule the
    # passes remove has `when` false), so that the passes need not run again. None otherwise.
    compiled: tuple[IRRule, ...] | None = None


def _patterns(globs: tuple[Glob, ...] | None) -> tuple[str, ...] | None:
    return None if globs is None else tuple(g.pattern for g in globs)


def _sorted(names: frozenset[str] | None) -> tuple[str, ...] | None:
    return None if names is None else tuple(sorted(names))


def _rule(index: int, r: RuleInfo) -> IRRule:
    agents = r.decl.agents
    return IRRule(
        index, r.name, r.decl.name.span, r.effect, tuple(g.pattern for g in r.on_tools),
        tuple(sorted(r.on_intents)), r.scoped_on, _sorted(r.tasks), _patterns(r.agents),
        None if agents is None else tuple(n.text for n in agents), r.when, r.unless, r.ttl,
        r.because, r.decl.span)


def _task(t: TaskInfo) -> IRTask:
    return IRTask(_patterns(t.tools), _sorted(t.intents), t.ceiling, t.ttl, t.delegate,
                  _patterns(t.delegate_to), t.depth)


def policy_to_ir(policy: Policy) -> Program:
    """The IR of a checked policy set (its conditions are the policy's own AST nodes)."""
    return Program(
        hash=policy.hash,
        lattice={k: tuple(sorted(v)) for k, v in policy.lattice.below.items()},
        intents=tuple(sorted(policy.intents)),
        labels={n: IRLabel(lb.kind, lb.glob.pattern if lb.glob is not None else None)
                for n, lb in policy.labels.items()},
        agents={n: g.pattern for n, g in policy.agents.items()},
        tools=tuple(IRTool(t.glob.pattern, tuple(sorted(t.intents)), tuple(sorted(t.data)),
                           tuple(sorted(t.durations))) for t in policy.tools),
        tasks={name: _task(t) for name, t in policy.tasks.items()},
        rules=tuple(_rule(i, r) for i, r in enumerate(policy.rules)),
        default_ttl=policy.default_ttl,
        max_ttl=policy.max_ttl)


def lattice_of(program: Program) -> Lattice:
    return Lattice({k: frozenset(v) for k, v in program.lattice.items()})


def _globs(patterns: tuple[str, ...] | None) -> tuple[Glob, ...] | None:
    return None if patterns is None else tuple(compile_glob(p) for p in patterns)


def _label(name: str, label: IRLabel) -> Label:
    return Label(label.kind, name, compile_glob(label.pattern) if label.pattern is not None
                 else None)


def interned(items: tuple[str, ...], table: dict[tuple[str, ...], frozenset[str]],
             ) -> frozenset[str]:
    """`frozenset(items)`, one object for every equal tuple in `table`: thousands of tool
    declarations name the same few intents and classes, and each set would otherwise be one
    more object for the collector to scan after loading. (Equal tuples, in the same order, build
    sets that iterate alike: sharing one changes nothing.)"""
    found = table.get(items)
    if found is None:
        found = table[items] = frozenset(items)
    return found


def runtime_policy(program: Program) -> Policy:
    """A Policy for the shared steps (envelope, TTL, labels), without rules: a bundle rebuilds a
    rule's RuleInfo (`rule_info`) only when the reference evaluator must explain its error."""
    sets: dict[tuple[str, ...], frozenset[str]] = {}
    tools = tuple(ToolInfo(compile_glob(t.pattern), interned(t.intents, sets),
                           interned(t.data, sets), interned(t.durations, sets),
                           None)  # type: ignore[arg-type]
                  for t in program.tools)
    tasks = {name: TaskInfo(
        name, _globs(t.tools), None if t.intents is None else frozenset(t.intents), t.ceiling,
        t.ttl, t.delegate, _globs(t.delegate_to), t.depth, None)  # type: ignore[arg-type]
        for name, t in program.tasks.items()}
    return Policy(
        lattice=lattice_of(program), intents=frozenset(program.intents),
        agents={n: compile_glob(p) for n, p in program.agents.items()},
        tools=tools, tasks=tasks, rules=(),
        labels={n: _label(n, lb) for n, lb in program.labels.items()},
        default_ttl=program.default_ttl, max_ttl=program.max_ttl,
        hash=program.hash, sources=())


def rule_info(r: IRRule) -> RuleInfo:
    """The RuleInfo of one IR rule, for the reference evaluator (its conditions are the IR's)."""
    decl = ast.Rule(r.effect, ast.Name(r.name, r.name_span), None, None, None, r.when, r.unless,
                    None, None, r.span)
    return RuleInfo(
        r.name, r.effect, tuple(compile_glob(p) for p in r.on_tools), frozenset(r.on_intents),
        r.scoped_on, None if r.tasks is None else frozenset(r.tasks), _globs(r.agents),
        r.when, r.unless, r.ttl, r.because, decl)


def check_program(program: Program) -> Program:
    """The invariants a bundle's JSON cannot express by its types; ValueError when broken.
    (Of a bundle's rules, those after the passes: the rules as written are checked as they are
    decoded, see agp.compile.bundle.)"""
    rules = program.compiled if program.compiled is not None else program.rules
    if len(rules) != len(program.rules):
        raise ValueError(f"{len(rules)} rules after the passes, {len(program.rules)} as written")
    for i, r in enumerate(rules):
        if r.index != i or r.effect not in EFFECTS:
            raise ValueError(f"bad rule {i} ({r.name!r})")
    for name, label in program.labels.items():
        if label.kind not in LABEL_KINDS:
            raise ValueError(f"bad label kind {label.kind!r} of {name!r}")
    return program

