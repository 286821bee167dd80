"""LANGUAGE.md §5 as formulas for the z3 SMT solver: a decision over a symbolic request.

The request is a set of solver variables (`Space`): the tool and the agent's id are strings, the
request's data classes and intents one boolean per declared name, the task's kind a string, the
times and durations reals (seconds), the chain a bounded list of hops, and every field of a
free-form object that some rule reads (`args.amount`, `target.external`, ...) a value of the
datatype `Val` (a string, a number, a boolean, a duration, a timestamp, an object, a list or
null) with a flag saying whether it is present. A policy over that space (`Encoding`) is then
one formula per rule saying when it matches, one per envelope row, and the decision.

Errors are encoded as well as values: each expression is a `Sym`, its value, whether its
evaluation fails, and whether the failure is a missing attribute (which `has` and `is` turn into
false). A permit matches when its condition holds without error; a forbid or an ask also when it
fails, exactly as §5 step 3 says.

What is not encoded exactly is over-approximated: the expression becomes a fresh variable that
may take any value, or fail, in any request (`Sym.opaque`), and the place is recorded as an
`Approximation`. A formula with such a variable allows more behaviours than the policy has, so an
absence the solver proves (unsat) still holds; a witness it finds may be spurious, which is why
every witness is decided again by both evaluators before anyone sees it (agp.analyze.witness).
The request space itself is bounded (`Bounds`): those bounds are reported with every answer.
No bound of the encoding is a bound of the proofs: a chain longer than the hops encoded one by
one is still in the space (its depth exact, its further hops over-approximated), and so are any
session (`task.seen` exactly, `task.history` over-approximated) and any outcome of the identity
check and of the store.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import z3  # type: ignore[import-untyped]  # z3 ships no type information

from agp.glob import Glob
from agp.limits import MAX_DURATION, MAX_LIST_LENGTH, MAX_TIME, MIN_TIME
from agp.model import is_tool_name
from agp.policy import Policy, RuleInfo
from agp.source import Span
from agp.syntax import ast
from agp.syntax.visit import ExprVisitor, walk
from agp.values import INT_BOUND

EPOCH_MIN = MIN_TIME.timestamp()
EPOCH_MAX = MAX_TIME.timestamp()
MAX_SECONDS = MAX_DURATION.total_seconds()
# The free-form objects of a request, as the roots of a path (`args.a.b` is ("args", "a", "b")).
OBJECT_ROOTS = ("args", "context", "target", "attrs", "params")
HOP_KINDS = ("human", "agent", "service")
# A data class that no policy of the space declares: in a request it is `request.unknown`, and
# comparing it through the lattice is an error (which makes a forbid or an ask match).
OTHER_CLASS = "(undeclared)"


@dataclass(frozen=True, slots=True)
class Approximation:
    """An expression that is not encoded exactly: answers hold only up to it."""

    span: Span
    reason: str

    def __str__(self) -> str:
        return f"{self.span}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Bounds:
    """The request space the solver searches: what a proof of absence covers."""

    hops: int  # the chain's first hops encoded one by one; later ones are over-approximated

    def describe(self) -> list[str]:
        return ["hops without delegation scopes (delegation.scope and delegation.expired are "
                "not encoded)",
                f"chains of any length; past {self.hops} hops, which principal each further "
                "hop names is over-approximated",
                "sessions of any content: task.seen exactly, the items of task.history "
                "over-approximated",
                "any identity check (agent.verified and the identity.* rows are free) and any "
                "task state (task.ended, store.unavailable, session.full)"]


# ---- the symbolic request -------------------------------------------------------------------------


class Space:
    """The solver variables of one symbolic request, shared by every policy encoded over it (so
    that two policies can be compared on the same request)."""

    def __init__(self, ctx: z3.Context, classes: Iterable[str], intents: Iterable[str],
                 hops: int, agent_globs: Iterable[Glob] = (),
                 tool_names: Iterable[str] = ()) -> None:
        self.ctx = ctx
        v = z3.Datatype("Val", ctx)
        v.declare("str", ("s", z3.StringSort(ctx)))
        v.declare("num", ("n", z3.RealSort(ctx)))
        v.declare("bool", ("b", z3.BoolSort(ctx)))
        v.declare("dur", ("d", z3.RealSort(ctx)))
        v.declare("time", ("t", z3.RealSort(ctx)))
        v.declare("obj", ("oid", z3.IntSort(ctx)))
        v.declare("list", ("lid", z3.IntSort(ctx)))
        v.declare("null")
        self.Val = v.create()
        self.classes = tuple(sorted({*classes, OTHER_CLASS}))
        # tool names that the policies' patterns suggest: witnesses try them first (a free
        # string under many patterns is slow for the solver; one of these is quick)
        self.tool_names = tuple(sorted({n for n in tool_names if is_tool_name(n)}))
        self.intents = tuple(sorted(set(intents)))
        self.hops = hops
        S, R, B = self.string, self.real, self.boolean
        self.tool, self.agent_id = S("tool"), S("agent.id")
        self.data = {c: B(f"data[{c}]") for c in self.classes}
        self.intent = {i: B(f"intent[{i}]") for i in self.intents}
        self.has_task, self.task_kind = B("task?"), S("task.kind")
        self.has_task_id, self.task_id = B("task.id?"), S("task.id")
        self.has_objective, self.objective = B("task.objective?"), S("task.objective")
        self.has_started, self.started = B("task.started_at?"), R("task.started_at")
        self.has_target = B("target?")
        self.now = R("now")
        # the session (LANGUAGE.md §6): what the task has seen exactly; the labels its history
        # names (only the envelope reads them: conditions see the history as opaque)
        self.seen = {c: B(f"task.seen[{c}]") for c in self.classes}
        self.history_data = {c: B(f"task.history.data[{c}]") for c in self.classes}
        self.history_intent = {i: B(f"task.history.intent[{i}]") for i in self.intents}
        # What the decision learns besides the policy: the identity check's verdict, the task's
        # state. Free, and shared by every policy over the space (one engine decides both).
        self.verified = B("agent.verified")
        self.identity_failed = B("identity.*")
        self.ended, self.store_down = B("task.ended"), B("store.unavailable")
        self.session_full, self.history_late = B("session.full"), B("task.history.at>now")
        self.length = z3.Int("chain.length", ctx)
        self.kinds = [z3.Int(f"chain[{i}].kind", ctx) for i in range(hops)]
        # A hop's principal is abstracted (strings with patterns and disequalities are costly
        # for the solver): whether it is the acting agent, which agent patterns it matches, and
        # which other hops have the same principal. The witness then finds strings that fit.
        self.agent_globs = {g.pattern: g for g in agent_globs}
        # whether some formula reads the agent's id (`agent()`): if none does, a witness may
        # name any agent
        self.agent_read = bool(self.agent_globs)
        self.hop_is_agent = [B(f"chain[{i}]=agent") for i in range(hops)]
        self.hop_in = [{p: B(f"chain[{i}]~{p}") for p in self.agent_globs} for i in range(hops)]
        self.hop_same = {(i, j): B(f"chain[{i}]=chain[{j}]")
                         for j in range(hops) for i in range(j)}
        # path -> (present, value): the fields of free-form objects that some expression reads
        self.paths: dict[tuple[str, ...], tuple[z3.BoolRef, z3.DatatypeRef]] = {}
        self.fresh_count = 0
        self.opaque: dict[object, tuple[z3.DatatypeRef, z3.BoolRef, z3.BoolRef]] = {}
        self._regex: dict[str, z3.ReRef] = {}
        self._flags: dict[object, z3.BoolRef] = {}
        self._others: dict[str, z3.ArithRef] = {}
        self._later: list[z3.BoolRef] | None = None

    @property
    def later(self) -> list[z3.BoolRef]:
        """Whether hop i follows the first agent (kind 0 is human), for each encoded hop."""
        if self._later is None:
            self._later = [z3.And(self.length > i, self.any(self.kinds[j] != 0
                                                            for j in range(i)))
                           for i in range(self.hops)]
        return self._later

    def agent(self) -> z3.SeqRef:
        """The agent's id, for a formula that reads it."""
        self.agent_read = True
        return self.agent_id

    @property
    def long(self) -> z3.BoolRef:
        """The chain has more hops than are encoded one by one."""
        return self.length > self.hops

    def flag(self, key: object) -> z3.BoolRef:
        """A free boolean for what a long chain's hops past the encoded ones may do (`key`
        names it): any answer is possible there, an over-approximation."""
        if key not in self._flags:
            self._flags[key] = self.boolean(f"long[{len(self._flags)}]")
        return self._flags[key]

    def others(self, bit: z3.BoolRef) -> z3.ArithRef:
        """How many undeclared classes a set holds when its OTHER_CLASS `bit` is set."""
        key = str(bit)
        if key not in self._others:
            self._others[key] = z3.Int(f"#{key}", self.ctx)
        return self._others[key]

    # variables
    def string(self, name: str) -> z3.SeqRef:
        return z3.String(name, self.ctx)

    def real(self, name: str) -> z3.ArithRef:
        return z3.Real(name, self.ctx)

    def boolean(self, name: str) -> z3.BoolRef:
        return z3.Bool(name, self.ctx)

    def true(self) -> z3.BoolRef:
        return z3.BoolVal(True, self.ctx)

    def false(self) -> z3.BoolRef:
        return z3.BoolVal(False, self.ctx)

    def all(self, xs: Iterable[z3.BoolRef]) -> z3.BoolRef:
        xs = list(xs)
        return self.true() if not xs else xs[0] if len(xs) == 1 else z3.And(xs)

    def any(self, xs: Iterable[z3.BoolRef]) -> z3.BoolRef:
        xs = list(xs)
        return self.false() if not xs else xs[0] if len(xs) == 1 else z3.Or(xs)

    def path(self, key: tuple[str, ...]) -> tuple[z3.BoolRef, z3.DatatypeRef]:
        if key not in self.paths:
            name = ".".join(key)
            self.paths[key] = (self.boolean(name + "?"), z3.Const(name, self.Val))
        return self.paths[key]

    def fresh(self, key: object) -> tuple[z3.DatatypeRef, z3.BoolRef, z3.BoolRef]:
        """The value, error and missing flags of an expression that is not encoded exactly. The
        same expression (by `key`) of the same vocabulary gets the same variables: its value is a
        function of the request, so this is still an over-approximation, only a tighter one."""
        if key not in self.opaque:
            n = self.fresh_count = self.fresh_count + 1
            self.opaque[key] = (z3.Const(f"opaque{n}", self.Val), self.boolean(f"opaque{n}!"),
                                self.boolean(f"opaque{n}?"))
        return self.opaque[key]

    def hops_consistent(self) -> list[z3.BoolRef]:
        """What the abstraction of principals must respect: one principal has one set of
        patterns; sameness is an equivalence; a pattern's subsets and exclusions hold."""
        out: list[z3.BoolRef] = []
        agent_in = {p: self.glob(g, self.agent_id) for p, g in self.agent_globs.items()}
        for i in range(self.hops):
            out += [z3.Implies(self.hop_is_agent[i], self.hop_in[i][p] == agent_in[p])
                    for p in self.agent_globs]
            for p, g in self.agent_globs.items():
                for q, h in self.agent_globs.items():
                    if p != q and g.is_exact and h.match(p):  # p is one of q's names
                        out.append(z3.Implies(self.hop_in[i][p], self.hop_in[i][q]))
                    elif p < q and g.is_exact and h.is_exact:
                        out.append(z3.Not(z3.And(self.hop_in[i][p], self.hop_in[i][q])))
        for (i, j), same in self.hop_same.items():
            out.append(z3.Implies(same, z3.And(
                self.hop_is_agent[i] == self.hop_is_agent[j],
                *(self.hop_in[i][p] == self.hop_in[j][p] for p in self.agent_globs))))
            out.append(z3.Implies(z3.And(self.hop_is_agent[i], self.hop_is_agent[j]), same))
            for k in range(j + 1, self.hops):
                a, b, c = same, self.hop_same[(j, k)], self.hop_same[(i, k)]
                out += [z3.Implies(z3.And(a, b), c), z3.Implies(z3.And(a, c), b),
                        z3.Implies(z3.And(b, c), a)]
        return out

    def principal_in(self, i: int, glob: Glob) -> z3.BoolRef:
        return self.hop_in[i].get(glob.pattern, self.false()) if glob.pattern in \
            self.agent_globs else self.false()

    # globs
    def glob(self, glob: Glob, subject: z3.SeqRef) -> z3.BoolRef:
        """`subject` matches the glob (LANGUAGE.md §2, Patterns) as a regular expression."""
        pattern = glob.pattern
        if "*" not in pattern and "?" not in pattern:
            return subject == z3.StringVal(pattern, self.ctx)
        if pattern not in self._regex:
            self._regex[pattern] = glob_regex(pattern, self.ctx)
        return z3.InRe(subject, self._regex[pattern])

    def globs(self, globs: Iterable[Glob], subject: z3.SeqRef) -> z3.BoolRef:
        return self.any(self.glob(g, subject) for g in globs)

    # the shape of a valid request
    def valid(self, hops: bool = True, tool: bool = True) -> z3.BoolRef:
        """What every request that reaches the rules satisfies (FORMATS.md): the bounds of
        values and times, a tool name without whitespace, hops of the three kinds. Without
        `hops`, the consistency of the hops' principals is left out: what a request without a
        chain needs (no formula reads a hop of a chain shorter than it), and the dearest part
        for the solver. Without `tool`, the tool name's shape is left out: what a check that
        fixes the tool to one of `tool_names` needs (they all have that shape)."""
        V = self.Val
        out = [*([z3.InRe(self.tool, tool_name_regex(self.ctx))] if tool else []),
               self.now >= EPOCH_MIN, self.now < EPOCH_MAX,
               z3.Implies(self.has_started, z3.And(self.started >= EPOCH_MIN,
                                                   self.started < EPOCH_MAX)),
               self.length >= 0, self.length <= MAX_LIST_LENGTH]
        for kind in self.kinds:
            out.append(z3.And(kind >= 0, kind < len(HOP_KINDS)))
        if hops:
            out.extend(self.hops_consistent())
        out.extend(n >= 1 for n in self._others.values())
        for _, value in self.paths.values():
            out.append(value_ok(V, value))
        return z3.And(out)


def value_ok(V: z3.DatatypeSortRef, value: z3.DatatypeRef) -> z3.BoolRef:
    """A value a request may hold (agp.values' bounds)."""
    return z3.And(
        z3.Implies(V.is_num(value), z3.And(V.n(value) > -INT_BOUND, V.n(value) < INT_BOUND)),
        z3.Implies(V.is_dur(value), z3.And(V.d(value) >= -MAX_SECONDS,
                                           V.d(value) <= MAX_SECONDS)),
        z3.Implies(V.is_time(value), z3.And(V.t(value) >= EPOCH_MIN, V.t(value) < EPOCH_MAX)))


def glob_regex(pattern: str, ctx: z3.Context) -> z3.ReRef:
    sort = z3.ReSort(z3.StringSort(ctx))
    parts: list[z3.ReRef] = []
    for piece in re.split(r"([*?])", pattern):
        if piece == "*":
            parts.append(z3.Full(sort))
        elif piece == "?":
            parts.append(z3.AllChar(sort))
        elif piece:
            parts.append(z3.Re(z3.StringVal(piece, ctx)))
    if not parts:
        return z3.Re(z3.StringVal("", ctx))
    return parts[0] if len(parts) == 1 else z3.Concat(*parts)


def tool_name_regex(ctx: z3.Context) -> z3.ReRef:
    """Not empty, without whitespace or control characters (agp.model.is_tool_name)."""
    sort = z3.ReSort(z3.StringSort(ctx))
    bad = [("\x00", "\x20"), ("\x7f", "\xa0"), ("\u1680", "\u1680"), ("\u2000", "\u200a"),
           ("\u2028", "\u2029"), ("\u202f", "\u202f"), ("\u205f", "\u205f"),
           ("\u3000", "\u3000")]
    excluded = z3.Union(*(z3.Range(lo, hi, ctx) for lo, hi in bad))
    char = z3.Intersect(z3.AllChar(sort), z3.Complement(excluded))
    return z3.Plus(char)


# ---- symbolic values --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sym:
    """An expression's value in a symbolic request: a `Val` (or a static value: a declared name,
    the data or intent set, a root object), whether evaluating it fails, and whether that failure
    is a missing attribute."""

    value: object  # z3 Val, or a Static
    err: z3.BoolRef
    missing: z3.BoolRef
    opaque: bool = False


@dataclass(frozen=True, slots=True)
class Label:
    kind: str  # class | intent | agent | task
    name: str
    glob: Glob | None = None


@dataclass(frozen=True, slots=True)
class LabelSet:
    kind: str  # class | intent
    bits: tuple[tuple[str, z3.BoolRef], ...]  # name -> whether it is in the set


@dataclass(frozen=True, slots=True)
class Root:
    """A fixed object of the request: `agent`, `task`, `chain`, or a free-form object."""

    name: str  # agent | task | chain | an object path's first part
    path: tuple[str, ...] = ()  # for free-form objects: the path to it


# ---- one policy over a space -----------------------------------------------------------------------


@dataclass
class Encoding:
    """One policy encoded over a `Space`."""

    space: Space
    policy: Policy
    approximations: list[Approximation] = field(default_factory=list)
    matches: dict[str, z3.BoolRef] = field(default_factory=dict)  # rule name -> it matches
    scopes: dict[str, z3.BoolRef] = field(default_factory=dict)
    envelope: dict[str, z3.BoolRef] = field(default_factory=dict)  # code -> the check fails
    leaves: dict[Leaf, z3.BoolRef] = field(default_factory=dict)  # envelope_at's

    @property
    def failed(self) -> z3.BoolRef:
        return self.space.any(self.envelope.values())

    def effect(self, effect: str) -> z3.BoolRef:
        return self.space.any(m for r in self.policy.rules if r.effect == effect
                              for m in [self.matches[r.name]])

    @property
    def deny(self) -> z3.BoolRef:
        return z3.Or(self.failed, self.effect("forbid"))

    @property
    def ask(self) -> z3.BoolRef:
        return z3.And(z3.Not(self.deny), self.effect("ask"))

    @property
    def allow(self) -> z3.BoolRef:
        return z3.And(z3.Not(self.deny), z3.Not(self.effect("ask")), self.effect("permit"))

    def rank(self) -> z3.ArithRef:
        """deny 0, ask 1, allow 2: how permissive the decision is."""
        ctx = self.space.ctx
        return z3.If(self.allow, z3.IntVal(2, ctx), z3.If(self.ask, z3.IntVal(1, ctx),
                                                            z3.IntVal(0, ctx)))

    def decision(self, word: str) -> z3.BoolRef:
        return {"allow": self.allow, "ask": self.ask, "deny": self.deny}[word]


def vocabulary(policy: Policy) -> object:
    """What the meaning of an expression depends on besides the request: two policies with the
    same vocabulary give one expression the same value."""
    return (tuple(sorted((k, tuple(sorted(v))) for k, v in policy.lattice.below.items())),
            tuple(sorted(policy.intents)),
            tuple(sorted((k, g.pattern) for k, g in policy.agents.items())),
            tuple(sorted(policy.tasks)),
            tuple((t.glob.pattern, tuple(sorted(t.durations))) for t in policy.tools))


def encode(space: Space, policy: Policy) -> Encoding:
    enc = Encoding(space, policy)
    resolved = _Resolved(space, policy)
    walker = _Encode(space, policy, resolved, enc.approximations)
    for rule in policy.rules:
        scope = rule_scope(space, policy, rule, resolved)
        cond_ok, cond_err = walker.condition(rule)
        enc.scopes[rule.name] = scope
        enc.matches[rule.name] = (z3.And(scope, cond_ok, z3.Not(cond_err))
                                  if rule.effect == "permit"
                                  else z3.And(scope, z3.Or(cond_ok, cond_err)))
    enc.envelope = envelope(space, policy, resolved)
    return enc


@dataclass(frozen=True, slots=True)
class Leaf:
    """One tool name and one task (a kind, or None: no task): a part of the request space
    where every glob over the tool and every test of the task kind is known, so formulas over
    it can be built without them (agp.analyze.findings looks for witnesses leaf by leaf: a few
    small formulas instead of the whole policy's)."""

    tool: str
    task: str | None

    def facts(self, space: Space) -> list[z3.BoolRef]:
        """What puts a request in the leaf."""
        tool = space.tool == z3.StringVal(self.tool, space.ctx)
        if self.task is None:
            return [tool, z3.Not(space.has_task)]
        return [tool, is_task(space, self.task)]


def envelope_at(enc: Encoding, leaf: Leaf) -> z3.BoolRef:
    """Whether the envelope fails for a request in `leaf`: equal to `enc.failed` under
    `leaf.facts`, without the other tools' globs and the other tasks' rows (built once per
    leaf)."""
    if leaf not in enc.leaves:
        resolved = _Resolved(enc.space, enc.policy, leaf)
        rows = envelope(enc.space, enc.policy, resolved, leaf)
        enc.leaves[leaf] = enc.space.any([*rows.values(), *(enc.envelope[code]
                                                            for code in ANY_LEAF)])
    return enc.leaves[leaf]


# The envelope rows that neither the tool nor the task changes: a leaf's envelope reads them
# from the policy's own instead of building them again.
ANY_LEAF = ("identity", "store.unavailable", "delegation.mismatch", "delegation.cycle")


class _Resolved:
    """§5 step 1 over the symbolic request: the call's intents and data classes, which are the
    request's plus those of the tool declarations its tool matches."""

    def __init__(self, space: Space, policy: Policy, leaf: Leaf | None = None) -> None:
        # in a leaf, the tool's globs and the task's kind are constants
        self.space, self.leaf = space, leaf
        matched = [(t, space.glob(t.glob, space.tool)) for t in policy.tools] if leaf is None \
            else [(t, space.true()) for t in policy.tools if t.glob.match(leaf.tool)]
        self.intent = {i: space.any([space.intent[i], *(m for t, m in matched if i in t.intents)])
                       for i in space.intents}
        self.data = {c: space.any([space.data[c], *(m for t, m in matched if c in t.data)])
                     for c in space.classes}
        self.durations = {name: space.any(m for t, m in matched if name in t.durations)
                          for t, _ in matched for name in t.durations}
        self.task_known = space.any(space.task_kind == z3.StringVal(k, space.ctx)
                                    for k in policy.tasks) if leaf is None else \
            z3.BoolVal(leaf.task in policy.tasks, space.ctx)
        self.has_task = space.has_task if leaf is None else \
            z3.BoolVal(leaf.task is not None, space.ctx)

    def tool_in(self, globs: Iterable[Glob]) -> z3.BoolRef:
        """Whether the tool matches one of the globs."""
        if self.leaf is None:
            return self.space.globs(globs, self.space.tool)
        return z3.BoolVal(any(g.match(self.leaf.tool) for g in globs), self.space.ctx)


def is_task(space: Space, name: str) -> z3.BoolRef:
    return z3.And(space.has_task, space.task_kind == z3.StringVal(name, space.ctx))


def rule_scope(space: Space, policy: Policy, rule: RuleInfo, resolved: _Resolved) -> z3.BoolRef:
    parts = []
    if rule.scoped_on:
        parts.append(space.any([space.globs(rule.on_tools, space.tool),
                                *(resolved.intent[i] for i in sorted(rule.on_intents))]))
    if rule.tasks is not None:
        parts.append(space.any(is_task(space, t) for t in sorted(rule.tasks)))
    if rule.agents is not None:
        parts.append(space.globs(rule.agents, space.agent()))
    return space.all(parts)


# ---- the envelope ---------------------------------------------------------------------------------


def envelope(space: Space, policy: Policy, resolved: _Resolved,
             leaf: Leaf | None = None) -> dict[str, z3.BoolRef]:
    """§5 step 2, one formula per row that can fail in the request space (the others are false
    there: see Bounds). In a `leaf` (`resolved` is then its own), only its task's rows."""
    ctx = space.ctx
    lattice = policy.lattice.below
    if leaf is None:
        per_task = [(t, is_task(space, t.name)) for t in policy.tasks.values()]
    else:  # no task, or a kind no task declares: no task's rows
        per_task = [(policy.tasks[k], space.true()) for k in [leaf.task] if k in policy.tasks]
    has_task = resolved.has_task
    rows: dict[str, z3.BoolRef] = {}
    rows["request.invalid"] = space.any(
        z3.And(k, z3.Not(space.has_started)) for t, k in per_task if t.ttl is not None)
    rows["request.unknown"] = space.any(
        [*(z3.Or(space.data[c], z3.And(has_task, z3.Or(space.seen[c],
                                                       space.history_data[c])))
           for c in space.classes if c not in lattice),
         *(z3.Or(space.intent[i], z3.And(has_task, space.history_intent[i]))
           for i in space.intents if i not in policy.intents)])
    # a task started, or a history item, later than now: rules still run (§5 step 3)
    rows["request.invalid"] = z3.Or(rows["request.invalid"], z3.And(has_task, z3.Or(
        space.history_late, z3.And(space.has_started, space.started > space.now))))
    rows["task.unknown"] = z3.And(has_task, z3.Not(resolved.task_known))
    rows["task.ended"] = z3.And(has_task, resolved.task_known, space.ended)
    rows["session.full"] = z3.And(has_task, space.session_full)
    rows["task.expired"] = space.any(
        z3.And(k, space.has_started, space.now - space.started >= seconds(t.ttl))
        for t, k in per_task if t.ttl is not None)
    rows["scope.tool"] = space.any(z3.And(k, z3.Not(resolved.tool_in(t.tools)))
                                   for t, k in per_task if t.tools is not None)
    rows["scope.intent"] = space.any(
        z3.And(k, space.any(resolved.intent[i] for i in space.intents if i not in t.intents))
        for t, k in per_task if t.intents is not None)
    rows["scope.data"] = space.any(
        z3.And(k, z3.Not(within(space, resolved.data, t.ceiling, lattice)))
        for t, k in per_task if t.ceiling is not None)
    n, hops, long = space.length, space.hops, space.long
    if leaf is None:
        rows["identity"] = space.identity_failed
        rows["store.unavailable"] = space.store_down
        # Past the encoded hops, the last hop, a repeated principal and a hop outside `delegate
        # to` are free (space.flag): the depth stays exact.
        rows["delegation.mismatch"] = space.any(
            [*(z3.And(n == i + 1, z3.Not(space.hop_is_agent[i])) for i in range(hops)),
             z3.And(long, space.flag("delegation.mismatch"))])
        rows["delegation.cycle"] = space.any(
            [*(z3.And(n > j, same) for (_, j), same in space.hop_same.items()),
             z3.And(long, space.flag("delegation.cycle"))])
    depth = z3.If(n > 1, n - 1, z3.IntVal(0, ctx))
    rows["delegation.depth"] = space.any(z3.And(k, depth > t.depth)
                                         for t, k in per_task if t.depth is not None)
    later = space.later
    to_rows = []
    for t, k in per_task:
        if not t.delegate:
            # a long chain has more than one hop after the first agent, or only humans first
            to_rows.append(z3.And(k, space.any([*later, z3.And(long, space.flag("later"))])))
        elif t.delegate_to is not None:
            to_rows.append(z3.And(k, space.any(
                [*(z3.And(later[i], z3.Not(space.any(space.principal_in(i, g)
                                                     for g in t.delegate_to)))
                   for i in range(hops)),
                 z3.And(long, space.flag(("delegation.to", tuple(sorted(
                     g.pattern for g in t.delegate_to)))))])))
    rows["delegation.to"] = space.any(to_rows)
    return rows


def within(space: Space, bits: dict[str, z3.BoolRef], ceiling: str,
           below: dict[str, frozenset[str]]) -> z3.BoolRef:
    """`data <= ceiling`: every class in the set is at or below it (an undeclared one is not)."""
    return space.all(z3.Not(bits[c]) for c in space.classes
                     if c not in below or c not in below[ceiling])


def seconds(d: timedelta) -> float:
    return d.total_seconds()


# ---- expressions -------------------------------------------------------------------------------------


class _Encode(ExprVisitor):
    """Each form of expression as a `Sym` (§4), its errors included; what it cannot encode
    exactly becomes opaque (a fresh value), recorded in `approximations`."""

    def __init__(self, space: Space, policy: Policy, resolved: _Resolved,
                 approximations: list[Approximation]) -> None:
        self.s = space
        self.V = space.Val
        self.policy = policy
        self.resolved = resolved
        self.approximations = approximations
        self.vocab = vocabulary(policy)

    # helpers
    def ok(self, value: object) -> Sym:
        return Sym(value, self.s.false(), self.s.false())

    def opaque(self, e: ast.Expr, reason: str) -> Sym:
        self.approximations.append(Approximation(e.span, reason))
        value, err, missing = self.s.fresh((self.vocab, text_of(e)))
        return Sym(value, err, z3.And(err, missing), opaque=True)

    def fails(self, sym: Sym, error: z3.BoolRef, value: object) -> Sym:
        """A result computed from `sym`: its errors, plus `error` when it evaluated."""
        return Sym(value, z3.Or(sym.err, z3.And(z3.Not(sym.err), error)), sym.missing)

    def both(self, a: Sym, b: Sym, error: z3.BoolRef, value: object) -> Sym:
        """A result of two operands evaluated left to right."""
        ea, eb = a.err, b.err
        err = z3.Or(ea, eb, error)
        missing = z3.Or(a.missing, z3.And(z3.Not(ea), b.missing))
        return Sym(value, err, missing)

    def dyn(self, sym: Sym) -> z3.DatatypeRef | None:
        return sym.value if isinstance(sym.value, z3.DatatypeRef) else None

    def condition(self, rule: RuleInfo) -> tuple[z3.BoolRef, z3.BoolRef]:
        """(holds, fails) of a rule's `when ... unless ...`, with short-circuit."""
        holds, fails = self.s.true(), self.s.false()
        if rule.when is not None:
            w, we = self.truth(self.visit(rule.when))
            holds, fails = w, we
        if rule.unless is not None:
            u, ue = self.truth(self.visit(rule.unless))
            fails = z3.Or(fails, z3.And(holds, ue))
            holds = z3.And(holds, z3.Not(u))
        return holds, fails

    def truth(self, sym: Sym) -> tuple[z3.BoolRef, z3.BoolRef]:
        """The boolean of a condition, and whether it fails (an error, or not a boolean)."""
        v = self.dyn(sym)
        if v is None:  # a static value is never a boolean
            return self.s.false(), self.s.true()
        return self.V.b(v), z3.Or(sym.err, z3.Not(self.V.is_bool(v)))

    def boolean(self, value: z3.BoolRef) -> z3.DatatypeRef:
        return self.V.bool(value)

    # forms
    def visit_Literal(self, e: ast.Literal) -> Sym:
        v, V, ctx = e.value, self.V, self.s.ctx
        if isinstance(v, bool):
            return self.ok(V.bool(z3.BoolVal(v, ctx)))
        if isinstance(v, str):
            return self.ok(V.str(z3.StringVal(v, ctx)))
        if isinstance(v, (int, float)):
            return self.ok(V.num(z3.RealVal(real_text(v), ctx)))
        if isinstance(v, timedelta):
            return self.ok(V.dur(z3.RealVal(real_text(v.total_seconds()), ctx)))
        return self.opaque(e, f"a literal of type {type(v).__name__}")

    def visit_ListExpr(self, e: ast.ListExpr) -> Sym:
        items = [self.visit(i) for i in e.items]
        err = self.s.any(i.err for i in items)
        return Sym(tuple(items), err, self.s.false())

    def visit_NameRef(self, e: ast.NameRef) -> Sym:
        s, name = self.s, e.name
        if name == "tool":
            return self.ok(self.V.str(s.tool))
        if name == "now":
            return self.ok(self.V.time(s.now))
        if name in ("args", "context"):
            return self.ok(Root(name, (name,)))
        if name == "target":
            return Sym(Root(name, ("target",)), z3.Not(s.has_target), z3.Not(s.has_target))
        if name == "task":
            return Sym(Root("task"), z3.Not(s.has_task), z3.Not(s.has_task))
        if name in ("agent", "chain"):
            return self.ok(Root(name))
        if name == "intent":
            return self.ok(LabelSet("intent", tuple(sorted(self.resolved.intent.items()))))
        if name == "data":
            return self.ok(LabelSet("class", tuple(sorted(self.resolved.data.items()))))
        label = self.policy.labels.get(name)
        if label is not None:
            return self.ok(Label(label.kind, label.name, label.glob))
        return self.opaque(e, f"the name `{name}`")

    def visit_Attr(self, e: ast.Attr) -> Sym:
        obj = self.visit(e.obj)
        field_name = e.name.text
        if obj.opaque or not isinstance(obj.value, (Root, z3.DatatypeRef)):
            return self.opaque(e, "an attribute of a value that is not encoded")
        s, V = self.s, self.V
        if isinstance(obj.value, Root) and not obj.value.path:
            return self.root_field(e, obj, obj.value.name, field_name)
        if isinstance(obj.value, Root):  # a free-form object itself
            present, value = s.path((*obj.value.path, field_name))
            return Sym(value, z3.Or(obj.err, z3.Not(present)),
                       z3.Or(obj.missing, z3.And(z3.Not(obj.err), z3.Not(present))))
        # a value read from a free-form object: an object, or an error
        parent = obj.value
        key = self.path_of(e.obj)
        if key is None:
            return self.opaque(e, "an attribute of a computed value")
        present, value = s.path((*key, field_name))
        not_obj = z3.Not(V.is_obj(parent))
        absent = z3.And(V.is_obj(parent), z3.Not(present))
        return Sym(value, z3.Or(obj.err, not_obj, absent),
                   z3.Or(obj.missing, z3.And(z3.Not(obj.err), absent)))

    def path_of(self, e: ast.Expr) -> tuple[str, ...] | None:
        """The path of a field of a free-form object (`args.a.b`), or None."""
        names: list[str] = []
        while isinstance(e, ast.Attr):
            names.append(e.name.text)
            e = e.obj
        if not isinstance(e, ast.NameRef):
            return None
        names.reverse()
        if e.name in ("args", "context", "target"):
            return (e.name, *names)
        if e.name == "agent" and names[:1] == ["attrs"]:
            return ("attrs", *names[1:])
        if e.name == "task" and names[:1] == ["params"]:
            return ("params", *names[1:])
        return None

    def root_field(self, e: ast.Attr, obj: Sym, root: str, name: str) -> Sym:
        s, V = self.s, self.V
        absent = s.true()
        if root == "agent":
            if name == "id":
                return self.ok(V.str(s.agent()))
            if name == "attrs":
                return self.ok(Root("attrs", ("attrs",)))
            if name == "verified":
                return self.ok(V.bool(s.verified))
        elif root == "task":
            if name == "kind":
                return self.fails(obj, s.false(), V.str(s.task_kind))
            if name == "params":
                return Sym(Root("params", ("params",)), obj.err, obj.missing)
            if name in ("id", "objective", "started_at", "age"):
                present, value = {
                    "id": (s.has_task_id, V.str(s.task_id)),
                    "objective": (s.has_objective, V.str(s.objective)),
                    "started_at": (s.has_started, V.time(s.started)),
                    "age": (s.has_started, V.dur(s.now - s.started)),
                }[name]
                # (`task.age` is `now - started_at` as it is, however long: the evaluators
                # bound only what arithmetic makes)
                missing = z3.Or(obj.err, z3.Not(present))
                return Sym(value, missing, missing)
            if name == "seen":
                return Sym(LabelSet("class", tuple(sorted(s.seen.items()))), obj.err,
                           obj.missing)
            if name == "history":
                return self.opaque(e, "`task.history` (the items of a session are not encoded)")
        elif root == "chain":
            if name == "depth":
                n = s.length
                return self.ok(V.num(z3.ToReal(z3.If(n > 1, n - 1, z3.IntVal(0, s.ctx)))))
            return self.opaque(e, f"`chain.{name}` (hops are not encoded one by one)")
        return Sym(V.null, z3.Or(obj.err, absent), z3.Or(obj.missing, absent))

    def visit_Unary(self, e: ast.Unary) -> Sym:
        a = self.visit(e.operand)
        v = self.dyn(a)
        if a.opaque:
            return self.opaque(e, f"`{e.op}` of a value that is not encoded")
        V = self.V
        if v is None:  # a declared name or a set is neither a boolean nor a number
            return self.fails(a, self.s.true(), V.null)
        if e.op == "not":
            return self.fails(a, z3.Not(V.is_bool(v)), V.bool(z3.Not(V.b(v))))
        value = z3.If(V.is_num(v), V.num(-V.n(v)), V.dur(-V.d(v)))
        return self.fails(a, z3.Not(z3.Or(V.is_num(v), V.is_dur(v))), value)

    def visit_Binary(self, e: ast.Binary) -> Sym:
        if e.op in ("and", "or"):
            return self.logic(e)
        a, b = self.visit(e.left), self.visit(e.right)
        if a.opaque or b.opaque:
            return self.opaque(e, f"`{e.op}` of a value that is not encoded")
        if e.op in ("==", "!="):
            eq = self.equal(a.value, b.value)
            if eq is None:
                return self.opaque(e, f"`{e.op}` of lists or declared names")
            return self.both(a, b, self.s.false(), self.V.bool(eq if e.op == "==" else z3.Not(eq)))
        if e.op in ("<", "<=", ">", ">="):
            return self.order(e, a, b)
        if e.op == "in":
            return self.member(e, a, b)
        if e.op == "matches":
            return self.matches(e, a, b)
        return self.arith(e, a, b)

    def logic(self, e: ast.Binary) -> Sym:
        a, b = self.visit(e.left), self.visit(e.right)
        va, ea = self.truth(a)
        vb, eb = self.truth(b)
        # `and` stops at false, `or` at true: the right side is evaluated only past that
        goes_on = va if e.op == "and" else z3.Not(va)
        err = z3.Or(ea, z3.And(goes_on, eb))
        value = z3.And(va, vb) if e.op == "and" else z3.Or(va, vb)
        missing = z3.Or(a.missing, z3.And(z3.Not(ea), goes_on, b.missing))
        return Sym(self.V.bool(value), err, z3.And(err, missing))

    def equal(self, a: object, b: object) -> z3.BoolRef | None:
        """`==` (never fails): values of different kinds are unequal."""
        if isinstance(a, z3.DatatypeRef) and isinstance(b, z3.DatatypeRef):
            return a == b
        if isinstance(a, Label) and isinstance(b, Label):
            return z3.BoolVal(a == b, self.s.ctx)
        if isinstance(a, z3.DatatypeRef) and isinstance(b, Label) or \
                isinstance(b, z3.DatatypeRef) and isinstance(a, Label):
            return self.s.false()  # a request value is never a declared name
        return None

    def order(self, e: ast.Binary, a: Sym, b: Sym) -> Sym:
        op, V, s = e.op, self.V, self.s
        va, vb = a.value, b.value
        lattice = self.policy.lattice.below
        if isinstance(va, Label) and isinstance(vb, Label) and va.kind == vb.kind == "class":
            return self.both(a, b, s.false(), V.bool(z3.BoolVal(
                class_order(op, va.name, vb.name, lattice), s.ctx)))
        if isinstance(va, LabelSet) and va.kind == "class" and isinstance(vb, Label) \
                and vb.kind == "class":
            return self.set_order(a, b, op, va, vb.name)
        if isinstance(vb, LabelSet) and vb.kind == "class" and isinstance(va, Label) \
                and va.kind == "class":
            flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
            return self.set_order(a, b, flipped, vb, va.name)
        x, y = self.dyn(a), self.dyn(b)
        if x is None or y is None:
            return self.both(a, b, s.true(), V.null)
        cmp = _COMPARE[op]
        strings = z3.And(V.is_str(x), V.is_str(y))
        cases = [(z3.And(V.is_num(x), V.is_num(y)), cmp(V.n(x), V.n(y))),
                 (z3.And(V.is_dur(x), V.is_dur(y)), cmp(V.d(x), V.d(y))),
                 (z3.And(V.is_time(x), V.is_time(y)), cmp(V.t(x), V.t(y))),
                 (strings, string_order(op, V.s(x), V.s(y)))]
        value = s.false()
        for guard, result in reversed(cases):
            value = z3.If(guard, result, value)
        return self.both(a, b, z3.Not(s.any(g for g, _ in cases)), V.bool(value))

    def set_order(self, a: Sym, b: Sym, op: str, labels: LabelSet, name: str) -> Sym:
        lattice = self.policy.lattice.below
        bits = dict(labels.bits)
        unknown = self.s.any(bit for c, bit in bits.items() if c not in lattice)
        known = [(c, bit) for c, bit in bits.items() if c in lattice]
        if op in ("<=", "<"):
            value = self.s.all(z3.Implies(bit, z3.BoolVal(class_order(op, c, name, lattice),
                                                          self.s.ctx)) for c, bit in known)
        else:
            value = self.s.any(z3.And(bit, z3.BoolVal(class_order(op, c, name, lattice),
                                                      self.s.ctx)) for c, bit in known)
        return self.both(a, b, unknown, self.V.bool(value))

    def member(self, e: ast.Binary, a: Sym, b: Sym) -> Sym:
        s, V = self.s, self.V
        item, box = a.value, b.value
        if isinstance(box, tuple):  # a list literal
            eqs = [self.equal(item, x.value) for x in box]
            if any(q is None for q in eqs):
                return self.opaque(e, "`in` a list of lists or sets")
            return self.both(a, b, s.false(), V.bool(s.any(q for q in eqs if q is not None)))
        if isinstance(box, LabelSet):
            if isinstance(item, Label):
                if item.kind != box.kind:
                    return self.both(a, b, s.true(), V.null)
                return self.both(a, b, s.false(), V.bool(dict(box.bits).get(item.name,
                                                                            s.false())))
            if isinstance(item, z3.DatatypeRef):
                hit = s.any(z3.And(item == V.str(z3.StringVal(n, s.ctx)), bit)
                            for n, bit in box.bits)
                return self.both(a, b, z3.Not(V.is_str(item)), V.bool(hit))
            return self.both(a, b, s.true(), V.null)
        if isinstance(box, Root) and box.name == "chain" and not box.path:
            if isinstance(item, Label) and item.kind == "agent" and item.glob is not None:
                hit = s.any([s.glob(item.glob, s.agent()),
                             *(z3.And(s.length > i, s.principal_in(i, item.glob))
                               for i in range(s.hops)),
                             z3.And(s.long, s.flag(("in chain", item.glob.pattern)))])
                return self.both(a, b, s.false(), V.bool(hit))
            if isinstance(item, z3.DatatypeRef):
                return self.opaque(e, "a string `in chain` (principals are not encoded as "
                                      "strings)")
            return self.both(a, b, s.true(), V.null)
        x, y = self.dyn(a), self.dyn(b)
        if x is not None and y is not None:
            strings = z3.And(V.is_str(x), V.is_str(y))
            return self.opaque_unless_strings(e, a, b, strings, z3.Contains(V.s(y), V.s(x)))
        if isinstance(box, Root):
            return self.both(a, b, s.true(), V.null)  # an object is no container of `in`
        return self.opaque(e, "`in` of a value that is not encoded")

    def opaque_unless_strings(self, e: ast.Binary, a: Sym, b: Sym, strings: z3.BoolRef,
                              result: z3.BoolRef) -> Sym:
        """`in` on two request values: exact for strings; a list container is not encoded
        (its items are not), so there the result is opaque."""
        V = self.V
        y = self.dyn(b)
        assert y is not None
        other = self.opaque(e, "`in` a list from the request (list items are not encoded)")
        value = z3.If(strings, V.bool(result), other.value)
        err = z3.If(strings, z3.Or(a.err, b.err),
                    z3.If(V.is_list(y), z3.Or(a.err, b.err, other.err), self.s.true()))
        return Sym(value, err, self.both(a, b, self.s.false(), value).missing, opaque=False)

    def matches(self, e: ast.Binary, a: Sym, b: Sym) -> Sym:
        x = self.dyn(a)
        if not isinstance(e.right, ast.Literal) or not isinstance(e.right.value, str) \
                or x is None:
            return self.opaque(e, "`matches` with a pattern that is not a literal")
        from agp.glob import compile_glob
        V = self.V
        hit = self.s.glob(compile_glob(e.right.value), V.s(x))
        return self.both(a, b, z3.Not(V.is_str(x)), V.bool(z3.And(V.is_str(x), hit)))

    def arith(self, e: ast.Binary, a: Sym, b: Sym) -> Sym:
        x, y = self.dyn(a), self.dyn(b)
        V, s = self.V, self.s
        if x is None or y is None:
            return self.both(a, b, s.true(), V.null)
        sign = 1 if e.op == "+" else -1
        n = V.n(x) + sign * V.n(y)
        d = V.d(x) + sign * V.d(y)
        nums, durs = z3.And(V.is_num(x), V.is_num(y)), z3.And(V.is_dur(x), V.is_dur(y))
        out_of_range = z3.Or(z3.And(nums, z3.Or(n <= -INT_BOUND, n >= INT_BOUND)),
                             z3.And(durs, z3.Or(d < -MAX_SECONDS, d > MAX_SECONDS)))
        value = z3.If(nums, V.num(n), V.dur(d))
        return self.both(a, b, z3.Or(z3.Not(z3.Or(nums, durs)), out_of_range), value)

    def visit_Has(self, e: ast.Has) -> Sym:
        obj = self.visit(e.obj)
        s, V, name = self.s, self.V, e.field.text
        if obj.opaque:
            return self.opaque(e, "`has` on a value that is not encoded")
        value = obj.value
        # a missing attribute makes `has` false; any other error stays an error
        other_err = z3.And(obj.err, z3.Not(obj.missing))
        if isinstance(value, Root) and value.path:
            present, _ = s.path((*value.path, name))
            return Sym(V.bool(z3.And(z3.Not(obj.err), present)), other_err, s.false())
        if isinstance(value, Root):
            fields = root_fields(s, value.name)
            if fields is None or name not in fields:
                known = fields is not None
                return (Sym(V.bool(s.false()), other_err, s.false()) if known
                        else self.opaque(e, f"`{value.name} has {name}`"))
            return Sym(V.bool(z3.And(z3.Not(obj.err), fields[name])), other_err, s.false())
        x = self.dyn(obj)
        key = self.path_of(e.obj)
        if x is None or key is None:
            return self.opaque(e, "`has` on a computed value")
        present, _ = s.path((*key, name))
        ok = z3.And(z3.Not(obj.err), V.is_obj(x))
        return Sym(V.bool(z3.And(ok, present)),
                   z3.Or(other_err, z3.And(z3.Not(obj.err), z3.Not(V.is_obj(x)))), s.false())

    def visit_Is(self, e: ast.Is) -> Sym:
        obj = self.visit(e.obj)
        s, V = self.s, self.V
        label = self.policy.labels[e.name.text]
        other_err = z3.And(obj.err, z3.Not(obj.missing))
        if isinstance(obj.value, Root) and obj.value.name == "agent" and label.kind == "agent" \
                and label.glob is not None:
            return Sym(V.bool(s.glob(label.glob, s.agent())), other_err, s.false())
        if isinstance(obj.value, Root) and obj.value.name == "task" and not obj.value.path:
            hit = is_task(s, label.name) if label.kind == "task" else s.false()
            return Sym(V.bool(z3.And(z3.Not(obj.err), hit)), other_err, s.false())
        return self.opaque(e, f"`is {label.name}` on this value")

    def visit_Quant(self, e: ast.Quant) -> Sym:
        return self.opaque(e, f"the quantifier `{e.kind}` (list items are not encoded)")

    def visit_Call(self, e: ast.Call) -> Sym:
        if e.func.text == "len" and len(e.args) == 1:
            arg = self.visit(e.args[0])
            labels = arg.value
            if isinstance(labels, LabelSet) and labels.kind == "class":
                # `len(data)`, `len(task.seen)`: exact, the undeclared classes (one bit for
                # any number of them) counted by a variable of their own
                s, one, zero = self.s, z3.RealVal(1, self.s.ctx), z3.RealVal(0, self.s.ctx)
                bits = dict(labels.bits)
                other = bits.pop(OTHER_CLASS)
                count = z3.Sum([*(z3.If(bit, one, zero) for bit in bits.values()),
                                z3.If(other, z3.ToReal(s.others(other)), zero)])
                return Sym(self.V.num(count), arg.err, arg.missing)
        return self.opaque(e, f"the function `{e.func.text}`")


def root_fields(s: Space, root: str) -> dict[str, z3.BoolRef] | None:
    """The fields `has` finds on a fixed object (agp.interp.environment builds them)."""
    t = s.true()
    if root == "task":
        return {"kind": t, "params": t, "id": s.has_task_id, "objective": s.has_objective,
                "started_at": s.has_started, "age": s.has_started, "seen": t, "history": t}
    if root == "chain":
        return {"depth": t, "hops": t, "origin": s.length > 0}
    if root == "agent":
        return {"id": t, "attrs": t, "verified": t}
    return None


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def class_order(op: str, a: str, b: str, below: dict[str, frozenset[str]]) -> bool:
    leq = a in below.get(b, frozenset())
    geq = b in below.get(a, frozenset())
    return {"<=": leq, ">=": geq, "<": a != b and leq, ">": a != b and geq}[op]


def string_order(op: str, x: z3.SeqRef, y: z3.SeqRef) -> z3.BoolRef:
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return y < x
    return y <= x


def real_text(v: float | int) -> str:
    """A number as the solver reads it exactly (a float's exact decimal value)."""
    if isinstance(v, int):
        return str(v)
    from fractions import Fraction
    f = Fraction(v)
    return f"{f.numerator}/{f.denominator}"


def text_of(e: ast.Expr) -> str:
    return e.span.source.text[e.span.start:e.span.end]


def policy_numbers(policy: Policy) -> Sequence[float]:
    """The numeric literals of the rules (they size the chains worth searching)."""
    out: list[float] = []
    for rule in policy.rules:
        for cond in (rule.when, rule.unless):
            if cond is not None:
                out.extend(x.value for x in walk(cond) if isinstance(x, ast.Literal)
                           and isinstance(x.value, (int, float))
                           and not isinstance(x.value, bool))
    return out


def space_for(policies: Sequence[Policy]) -> Space:
    """A fresh space (with its own z3 context: analyses may run on several threads) over the
    names every one of `policies` declares."""
    return Space(z3.Context(), [c for p in policies for c in p.lattice.below],
                 [i for p in policies for i in p.intents], chain_bound(policies),
                 agent_globs(policies), tool_names(policies))


def tool_names(policies: Iterable[Policy]) -> list[str]:
    """A name for each tool pattern of the policies (declarations, rules, tasks; wildcards
    filled in), and one that none of them is likely to name."""
    patterns = {g.pattern for p in policies for g in [
        *(t.glob for t in p.tools), *(g for r in p.rules for g in r.on_tools),
        *(g for t in p.tasks.values() for g in t.tools or ())]}
    return [*(re.sub(r"[*?]", "x", pattern) or "x" for pattern in patterns), "some.other.tool"]


def agent_globs(policies: Iterable[Policy]) -> list[Glob]:
    """The agent patterns a hop's principal is tested against: declared agents and `delegate
    to` lists."""
    out: dict[str, Glob] = {}
    for p in policies:
        for g in p.agents.values():
            out.setdefault(g.pattern, g)
        for t in p.tasks.values():
            for g in t.delegate_to or ():
                out.setdefault(g.pattern, g)
    return list(out.values())


def chain_bound(policies: Iterable[Policy]) -> int:
    """Chains long enough to reach every depth a policy names, within reason: 2 more hops than
    the largest depth limit or small number it compares, at least 3 and at most 8."""
    top = 1
    for p in policies:
        top = max([top, *(t.depth for t in p.tasks.values() if t.depth is not None),
                   *(int(n) for n in policy_numbers(p) if 0 <= n <= 6)])
    return max(3, min(8, top + 2))
