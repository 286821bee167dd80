"""The compiled evaluator's envelope (LANGUAGE.md §5 step 2), specialised when the policy is
compiled.

agp.envelope states each check as the spec's sentence, one function per row; this module
computes the same codes its own way, so that the differential test compares two implementations:

- a request without a task and a chain (the commonest) can fail only `request.unknown`, and is
  checked for nothing else;
- each declared task's clauses become the cheapest test, once: exact tool names in a set beside
  the globs, the data ceiling as the set of classes at or below it;
- what the checks read of a chain alone (its principals, depth, times, scopes) is computed once
  per chain of hops and kept (`ChainFacts`): the task runtime hands every call of a task the
  hops it stores, so a task's calls share one walk of their chain.

Only the codes are computed here; the messages of the failed checks come from
agp.envelope.explain, on the path of a deny.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from agp.envelope import HopView, RequestView, ScopeView, TaskView, chain_depth, scope_has
from agp.glob import Glob
from agp.identity import Identity
from agp.limits import MAX_SESSION_CALLS
from agp.model import Hop, session_summary
from agp.policy import Policy, TaskInfo

_NOTHING: frozenset[str] = frozenset()
_UNKNOWN = ("request.unknown",)
# Chains whose facts are kept, per policy set, and answers kept per chain or task declaration
# (each memo is emptied when full).
_CHAINS = 4096
_ANSWERS = 256


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a key of ChainFacts.refused
class TaskEnvelope:
    """A task declaration's clauses, as the tests the envelope runs."""

    info: TaskInfo
    tool_names: frozenset[str] | None  # the exact names of `tools`; None: any tool
    tool_globs: tuple[Glob, ...]  # the other patterns of `tools`
    intents: frozenset[str] | None
    ceiling: frozenset[str] | None  # the classes at or below `data <=`; None: any
    globbed: dict[str, bool]  # tool -> whether a glob of `tools` matches it (a memo)

    @classmethod
    def of(cls, info: TaskInfo, below: dict[str, frozenset[str]]) -> TaskEnvelope:
        tools = info.tools
        return cls(
            info,
            None if tools is None else frozenset(g.pattern for g in tools if g.is_exact),
            () if tools is None else tuple(g for g in tools if not g.is_exact),
            info.intents,
            # An undeclared ceiling holds no class: only a call without data is within it.
            None if info.ceiling is None else below.get(info.ceiling, _NOTHING), {})

    def globs_match(self, tool: str) -> bool:
        matched = self.globbed.get(tool)
        if matched is None:
            matched = any(g.match(tool) for g in self.tool_globs)
            if len(self.globbed) >= _ANSWERS:
                self.globbed.clear()
            self.globbed[tool] = matched
        return matched

    def task_codes(self, out: list[str], req: RequestView, now: datetime,
                   intents: frozenset[str], data: frozenset[str], ended: bool) -> None:
        """`task.expired` to `scope.data`, appended to `out` in the order of the table."""
        ttl = self.info.ttl
        started = req.task.started_at if req.task is not None else None
        if ttl is not None and started is not None and now - started >= ttl:
            out.append("task.expired")
        if ended:
            out.append("task.ended")
        names, tool = self.tool_names, req.tool
        if names is not None and tool not in names and not self.globs_match(tool):
            out.append("scope.tool")
        if self.intents is not None and not intents <= self.intents:
            out.append("scope.intent")
        if self.ceiling is not None and not data <= self.ceiling:
            out.append("scope.data")

    def refuses(self, chain: Sequence[HopView]) -> bool:
        """`delegation.to`: a hop after the first one that is not human is not a delegate."""
        info = self.info
        first = next((i for i, h in enumerate(chain) if h.kind != "human"), len(chain))
        if first + 1 >= len(chain):
            return False
        if not info.delegate:
            return True
        to = info.delegate_to
        return to is not None and not all(
            any(g.match(h.principal) for g in to) for h in chain[first + 1 :])


@dataclass(frozen=True, slots=True)
class ChainFacts:
    """What the envelope reads of a chain apart from the call and the time, computed once per
    chain of hops: the checks of a call through it then cost a few comparisons."""

    hops: tuple[HopView, ...]  # held, so that the ids keying the memo stay theirs
    last: str | None  # the last hop's principal (None: an empty chain)
    cycle: bool  # a principal appears twice
    depth: int
    unknown: bool  # a scope names an undeclared class or intent
    untimed: bool  # a hop whose scope has a `ttl` has no `at`: request.invalid at any time
    latest: datetime | None  # the latest `at`: request.invalid before it
    deadline: datetime | None  # the earliest `at + ttl` of the scopes: delegation.expired from it
    scopes: tuple[ScopeView, ...]
    refused: dict[TaskEnvelope, bool]  # delegation.to, by task declaration (a memo)
    fitting: dict[tuple[str, frozenset[str], frozenset[str]], bool]  # delegation.scope (a memo)


_NO_CHAIN = ChainFacts((), None, False, 0, False, False, None, None, (), {}, {})


class Envelope:
    """The envelope of one policy set: the codes of the checks a call fails."""

    __slots__ = ("classes", "class_names", "intents", "tasks", "_chains")

    def __init__(self, policy: Policy):
        self.classes = policy.lattice.below  # every declared class -> the classes at or below it
        self.class_names = frozenset(self.classes)
        self.intents = frozenset(policy.intents)
        self.tasks = {kind: TaskEnvelope.of(info, self.classes)
                      for kind, info in policy.tasks.items()}
        # The facts of chains made of `Hop` models (those the task runtime stores and hands to
        # every call of a task), by the ids of their hops. Hops built for one request from a
        # dict are never seen again: their facts are not kept.
        self._chains: dict[tuple[int, ...], ChainFacts] = {}

    def codes(self, req: RequestView, now: datetime, task: TaskEnvelope | None,
              intents: frozenset[str], data: frozenset[str], ident: Identity, ended: bool,
              store_unavailable: bool) -> Sequence[str]:
        """The failed checks, in the order of the table. `task` is the envelope of the kind the
        request names (None: no task, or an undeclared kind)."""
        chain = req.chain
        rt = req.task
        if rt is None and not chain:
            return self.plain_codes(req, ident, store_unavailable)
        facts = self.chain_facts(chain) if chain else _NO_CHAIN
        out = []
        if facts.untimed or (facts.latest is not None and facts.latest > now) or \
                self.invalid(req, now, task):
            out.append("request.invalid")
        if self.unknown_labels(req.data, req.intent) or facts.unknown or (
                rt is not None and self.unknown_in_session(rt)):
            out.append("request.unknown")
        if task is not None:
            task.task_codes(out, req, now, intents, data, ended)
        elif rt is not None:
            out.append("task.unknown")
        if chain:
            self.chain_codes(out, facts, req.tool, now, task, intents, data, ident.id)
        if ident.code is not None:
            out.append(ident.code)
        if store_unavailable:
            out.append("store.unavailable")
        if rt is not None and len(rt.history) >= MAX_SESSION_CALLS:
            out.append("session.full")
        return out

    def plain_codes(self, req: RequestView, ident: Identity,
                    store_unavailable: bool) -> Sequence[str]:
        """`codes` of a request without a task and a chain (the commonest): every other check
        is about the task or the chain, so none reads the time."""
        unknown: Sequence[str] = () if self.class_names.issuperset(req.data) and \
            self.intents.issuperset(req.intent) else _UNKNOWN  # unknown_labels, inline
        if ident.code is None and not store_unavailable:
            return unknown
        out = list(unknown)
        if ident.code is not None:
            out.append(ident.code)
        if store_unavailable:
            out.append("store.unavailable")
        return out

    def unknown_in_session(self, task: TaskView) -> bool:
        """An undeclared class in `task.seen` or in the history's items, or intent in them (the
        history's labels from its summary: one pass, or none when its builder kept it)."""
        below = self.classes
        for name in task.seen:
            if name not in below:
                return True
        if not task.history:
            return False
        summary = session_summary(task.history)
        return not summary.classes <= below.keys() or not summary.intents <= self.intents

    def unknown_labels(self, classes: Sequence[str], intents: Sequence[str]) -> Sequence[str]:
        if self.class_names.issuperset(classes) and self.intents.issuperset(intents):
            return ()
        return _UNKNOWN

    def chain_facts(self, chain: Sequence[HopView]) -> ChainFacts:
        """The facts of a (non-empty) chain, kept for the next call through the same hops."""
        if type(chain[0]) is not Hop:
            return self.facts(chain)
        key = tuple(map(id, chain))
        facts = self._chains.get(key)
        if facts is None:
            facts = self.facts(chain)
            if len(self._chains) >= _CHAINS:
                self._chains.clear()
            self._chains[key] = facts
        return facts

    def facts(self, chain: Sequence[HopView]) -> ChainFacts:
        untimed = False
        latest: datetime | None = None
        deadline: datetime | None = None
        for h in chain:
            at, s = h.at, h.scope
            ttl = None if s is None else s.ttl
            if at is None:
                untimed = untimed or ttl is not None
                continue
            if latest is None or at > latest:
                latest = at
            if ttl is not None:
                # `now - at >= ttl` is `now >= at + ttl`; a sum past the calendar is never
                # reached (every `now` is within agp.limits).
                try:
                    end = at + ttl
                except OverflowError:
                    continue
                if deadline is None or end < deadline:
                    deadline = end
        scopes = tuple(h.scope for h in chain if h.scope is not None)
        return ChainFacts(
            tuple(chain), chain[-1].principal if chain else None,
            len({h.principal for h in chain}) != len(chain), chain_depth(chain),
            any((s.data is not None and s.data not in self.classes)
                or bool(self.unknown_labels((), s.intents or ())) for s in scopes),
            untimed, latest, deadline, scopes, {}, {})

    @staticmethod
    def invalid(req: RequestView, now: datetime, task: TaskEnvelope | None) -> bool:
        """The `request.invalid` checks of the task that need `now` or the task's declaration
        (those of the chain are its ChainFacts)."""
        rt = req.task
        if rt is None:
            return False
        if rt.history:
            latest = session_summary(rt.history).latest
            if latest is not None and latest > now:
                return True
        if rt.started_at is None:
            return task is not None and task.info.ttl is not None
        return rt.started_at > now

    def chain_codes(self, out: list[str], facts: ChainFacts, tool: str, now: datetime,
                    task: TaskEnvelope | None, intents: frozenset[str],
                    data: frozenset[str], agent_id: str) -> None:
        """`delegation.*`, appended to `out` in the order of the table."""
        if facts.last is not None and facts.last != agent_id:
            out.append("delegation.mismatch")
        if facts.cycle:
            out.append("delegation.cycle")
        if task is not None:
            depth = task.info.depth
            if depth is not None and facts.depth > depth:
                out.append("delegation.depth")
            refused = facts.refused.get(task)
            if refused is None:
                refused = facts.refused[task] = task.refuses(facts.hops)
            if refused:
                out.append("delegation.to")
        if facts.scopes:
            key = (tool, intents, data)
            fit = facts.fitting.get(key)
            if fit is None:
                fit = all(self.fits(s, tool, intents, data) for s in facts.scopes)
                if len(facts.fitting) >= _ANSWERS:
                    facts.fitting.clear()
                facts.fitting[key] = fit
            if not fit:
                out.append("delegation.scope")
        if facts.deadline is not None and now >= facts.deadline:
            out.append("delegation.expired")

    def fits(self, s: ScopeView, tool: str, intents: frozenset[str],
             data: frozenset[str]) -> bool:
        """Whether the call is inside a hop's scope."""
        if s.tools is not None and not any(scope_has(p, tool) for p in s.tools):
            return False
        if s.intents is not None and not intents.issubset(s.intents):
            return False
        return s.data is None or data <= self.classes.get(s.data, _NOTHING)
