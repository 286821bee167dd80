"""The compiled evaluator: validation fast path, its own envelope, tree dispatch, generated leaves,
and the shared outcome (agp.steps)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from types import CodeType
from typing import TYPE_CHECKING

from agp import interp
from agp.compile.codegen import BASE, Forms, LeafFunction, RuleCode, compile_leaf, generate_leaf
from agp.compile.debug import policy_traceback, report_defect
from agp.compile.envelope import Envelope
from agp.compile.ir import IRRule, Program, rule_info
from agp.compile.request import FastRequest, fast_request
from agp.envelope import WORDED, Facts, explain, identify
from agp.identity import Identity, IdentityCheck, unverified
from agp.model import Decision, Request, RequestError, parse_request
from agp.policy import Policy, RuleInfo
from agp.source import Span
from agp.steps import decided, error_text, invalid, outcome, rule_seconds
from agp.values import Label, Lattice

if TYPE_CHECKING:
    from agp.compile.tree import Candidate, Index, Leaf

# Tests set this to check that compiled code raises only where the reference reports an error.
CHECK_FALLBACK = False


class RuleRecord:
    """What a decision needs from a matching rule (the RuleInfo fields `outcome` reads)."""

    __slots__ = ("index", "name", "effect", "ttl", "because", "seconds")

    def __init__(self, index: int, name: str, effect: str, ttl: timedelta | None,
                 because: str | None, seconds: int):
        self.index = index
        self.name = name
        self.effect = effect
        self.ttl = ttl
        self.because = because
        self.seconds = seconds  # its own bound on the TTL (agp.steps.rule_seconds)

    def __repr__(self) -> str:
        return f"RuleRecord({self.index}, {self.name!r}, {self.effect!r})"


class Context:
    """What code generation needs from the policy set, and the functions and line maps it leaves
    behind."""

    # Generated functions kept for sharing (docs/limits.md). A leaf keeps the functions it uses
    # itself, so this bound limits only what names the policy does not mention can add.
    FUNCTIONS = 1024

    def __init__(self, ir: Program, policy: Policy, records: list[RuleRecord],
                 labels: dict[str, Label], lattice: Lattice):
        self.ir = ir
        self.hash = ir.hash
        self.policy = policy
        self.records = records
        self.labels = labels
        self.lattice = lattice
        self.namespace = dict(BASE)  # each generated function runs in a copy of it
        # filename -> generated line -> policy span; an entry lives as long as its function.
        self.line_maps: dict[str, Mapping[int, Span]] = {}  # made when read (debug.LineMap)
        self.functions: dict[tuple[frozenset[str], tuple[tuple[int, frozenset[str] | None], ...]],
                             LeafFunction] = {}
        # Each rule's code, generated once for every function that runs it (at most two per
        # rule: with and without its `on intent` guard), and the compiled text of functions,
        # shared by those that differ only in constants (bounded like the functions).
        self.rule_codes: dict[tuple[int, frozenset[str] | None], RuleCode] = {}
        self.session_free: set[int] = set()  # rules whose code reads neither task.seen nor history
        self.forms = Forms(labels, lattice)  # rule code by form, generated once per form
        self.codes: dict[tuple[object, ...], CodeType] = {}
        self._lock = threading.Lock()

    def rule_code(self, rule: IRRule, dyn: frozenset[str] | None) -> RuleCode:
        key = (rule.index, dyn)
        code = self.rule_codes.get(key)
        if code is None:
            code = self.forms.rule_code(rule, dyn, self.records[rule.index])
            self.rule_codes[key] = code
            if not code.session:
                self.session_free.add(rule.index)
        return code

    def code(self, form: tuple[object, ...], lines: list[str]) -> CodeType:
        """The compiled function of a leaf's text `lines` (`agp.compile.codegen.compile_leaf`),
        compiled once for every leaf of the same `form` (what the text is made of)."""
        code = self.codes.get(form)
        if code is None:
            code = compile_leaf(lines)
            with self._lock:
                if len(self.codes) >= self.FUNCTIONS:
                    del self.codes[next(iter(self.codes))]
                self.codes[form] = code
        return code

    def function(self, durations: frozenset[str], rules: list[Candidate]) -> LeafFunction:
        """The compiled function deciding `rules` (a leaf's candidates for one task kind): the
        code depends on nothing else, so every leaf and task kind with the same ones shares it."""
        key = (durations, tuple((r.index, dyn) for r, dyn in rules))
        fn = self.functions.get(key)
        if fn is None:
            fn = generate_leaf(rules, durations, self)
            with self._lock:
                if len(self.functions) >= self.FUNCTIONS:
                    del self.functions[next(iter(self.functions))]
                self.functions[key] = fn
        return fn


class CompiledEvaluator:
    """Decides requests with the decision tree; agrees exactly with agp.interp.decide."""

    def __init__(self, index: Index, policy: Policy, ctx: Context,
                 full_policy: Policy | None = None, identity: IdentityCheck = unverified):
        self.index = index
        self.identity = identity  # establishes each request's agent (agp.identity)
        self.leaves = index.leaves
        self.policy = policy  # for the shared steps: lattice, intents, tasks, TTL defaults, hash
        self.envelope = Envelope(policy)
        self.ctx = ctx
        self._full = full_policy  # the checked Policy, when compiled from one (not from a bundle)
        self._rule_infos: dict[int, RuleInfo] = {}
        self._names: dict[int, frozenset[str]] = {}  # by rule index (names_read)
        # Without trust, an agent's identity is a function of its asserted id alone: one Identity
        # per id, kept (bounded) rather than built on every decision.
        self._asserted: dict[str | None, Identity] | None = {} if identity is unverified else None
        # The TTL of an ask without permits, for a request without a task and a chain.
        self._default_seconds = rule_seconds(policy, None)
        self._hash = policy.hash
        self._classes = self.envelope.class_names  # the declared labels (request.unknown)
        self._intents = self.envelope.intents

    def decide(self, request: object, *, task_ended: bool = False,
               store_unavailable: bool = False) -> Decision:
        req: Request | FastRequest | None = None
        if type(request) is dict:
            req = fast_request(request)
        elif type(request) is Request:
            req = request
        if req is None:  # pydantic decides, and says what is wrong
            try:
                req = parse_request(request)
            except RequestError as exc:
                return invalid(self.policy, exc.errors)
        # Each field read once: a Request is a pydantic model, whose attributes cost three times
        # a slot's (BaseModel defines __getattr__, which keeps Python from specialising reads).
        tool = req.tool
        leaf = self.leaves.get(tool)
        if leaf is None:
            leaf = self.index.leaf(tool)
        now = req.now
        agent = req.agent
        svid = agent.svid
        asserted = self._asserted
        rt = req.task
        if rt is None:
            task = None
            fn = leaf.fn_none or leaf.fn_for(None)
            plain = not req.chain
            # Without a task and a chain, only the rules and the identity check may read the
            # time: the clock is read only for them (it costs as much as a rule).
            if now is None and (not plain or leaf.now_none or asserted is None or
                                svid is not None):
                now = _clock(_UTC)
        else:
            task = self.envelope.tasks.get(rt.kind)
            fn = leaf.fns.get(rt.kind) or leaf.fn_for(rt.kind)
            plain = False
            if now is None:
                now = _clock(_UTC)
        if asserted is not None and svid is None:
            known = asserted.get(agent.id)
            ident = known if known is not None else self.asserted(agent.id)
        else:
            assert now is not None  # taken above for this case
            ident = identify(self.identity, agent, now)
        # The request's labels and those of the tool's declarations (intents0, data0).
        r_intent, r_data = req.intent, req.data
        intents = leaf.intents0.union(r_intent) if r_intent else leaf.intents0
        data = leaf.data0.union(r_data) if r_data else leaf.data0
        if not plain:
            assert now is not None
            failures = self.envelope.codes(req, now, task, intents, data, ident, task_ended,
                                           store_unavailable)
        elif ident.code is None and not store_unavailable and \
                self._classes.issuperset(r_data) and self._intents.issuperset(r_intent):
            failures = ()  # Envelope.plain_codes when it finds nothing, without the call
        else:
            failures = self.envelope.plain_codes(req, ident, store_unavailable)
        try:
            forbids, asks, permits, failed = fn(req, ident, intents, data, now, failures)
        except Exception as exc:  # a defect (conditions' errors are caught rule by rule)
            policy_traceback(exc)  # its traceback then shows the policy lines it went through
            raise
        errors: list[str] = []
        if failed is not None:
            now = now or _clock(_UTC)
            forbids, asks, permits, errors = self.reference(
                req, now, ident, intents, data, leaf, failed, forbids, asks, permits)
        if failures:
            now = now or _clock(_UTC)
            info = None if task is None else task.info
            if not WORDED.isdisjoint(failures):  # what the codes alone do not say
                facts = Facts(self.policy, req, now, info, intents, data, ident, task_ended,
                              store_unavailable)
                errors = [*explain(facts, failures), *errors]
            return outcome(self.policy, req, now, info, failures, forbids, asks, permits, errors)
        if plain:  # the TTL is the permits' least, precomputed (unused on a deny)
            ttl = self._default_seconds
            if permits:  # a loop: cheaper than min() for a few permits
                ttl = permits[0].seconds
                for r in permits:
                    if r.seconds < ttl:
                        ttl = r.seconds
            return decided(self._hash, (), forbids, asks, permits, errors, ttl)
        return outcome(self.policy, req, now, None if task is None else task.info, (), forbids,
                       asks, permits, errors)

    def asserted(self, agent_id: str | None) -> Identity:
        """The identity of an asserted id without trust (`unverified`), kept for the next
        decision; the memo is bounded like the generated functions."""
        ident = unverified(agent_id, None, _EPOCH)  # which does not read the time
        memo = self._asserted
        assert memo is not None
        if len(memo) >= Context.FUNCTIONS:
            memo.clear()
        memo[agent_id] = ident
        return ident

    def reference(self, req: Request | FastRequest, now: datetime, ident: Identity,
                  intents: frozenset[str], data: frozenset[str], leaf: Leaf, failed: dict[int, BaseException | None],
                  forbids: Sequence[RuleRecord], asks: Sequence[RuleRecord],
                  permits: Sequence[RuleRecord],
                  ) -> tuple[list[RuleRecord], list[RuleRecord], list[RuleRecord], list[str]]:
        """Rules whose compiled condition raised, or that were not compiled, are decided by the
        reference evaluator, which also writes their error messages."""
        # The session only when a rule to decide reads it: a condition that raises on a call
        # without `target` must not cost time linear in the task's history.
        session = not self.ctx.session_free.issuperset(failed)
        # Only the names those rules read: a rule that raises on a call without `target` must
        # not pay for the chain's values and the arguments' durations either.
        names = frozenset().union(*map(self.names_read, failed))
        env = interp.environment(req, now, ident, intents, data, leaf.durations, session, names)
        lists = {"forbid": list(forbids), "ask": list(asks), "permit": list(permits)}
        errors: list[str] = []
        for idx in sorted(failed):
            rule = self.rule_info(idx)
            hit, problem = interp.rule_matches(self.policy, rule, env)
            raised = failed[idx]  # None: a rule the generator left to the reference
            if problem is not None:
                errors.append(error_text(rule, problem))
            elif raised is not None:
                report_defect(rule.name, raised, CHECK_FALLBACK)
            if hit:
                lists[rule.effect].append(self.ctx.records[idx])
        failed.clear()  # the tracebacks of its exceptions hold the leaf's frame, which holds it
        # And this frame, whose locals hold them: left so, every fallback would leave a cycle of
        # frames and tracebacks for the garbage collector (a tenth of a deny's time).
        problem = raised = None
        key = _by_index
        return (sorted(lists["forbid"], key=key), sorted(lists["ask"], key=key),
                sorted(lists["permit"], key=key), errors)

    def names_read(self, idx: int) -> frozenset[str]:
        """The names rule `idx` reads (`agp.interp.names_read`), kept: a rule the compiled
        code hands to the reference once tends to be handed to it again."""
        names = self._names.get(idx)
        if names is None:
            names = self._names[idx] = interp.names_read(self.rule_info(idx))
        return names

    def rule_info(self, idx: int) -> RuleInfo:
        if self._full is not None:
            return self._full.rules[idx]
        info = self._rule_infos.get(idx)
        if info is None:
            info = rule_info(self.ctx.ir.rules[idx])
            self._rule_infos[idx] = info
        return info

    def locate(self, filename: str, line: int) -> Span | None:
        """The policy span behind a line of generated code (for tracebacks and profiles)."""
        return self.ctx.line_maps.get(filename, {}).get(line)

    def full_policy(self) -> Policy:
        """The Policy with every rule's AST (bundles build it only when someone asks)."""
        if self._full is None:
            import dataclasses

            rules = tuple(self.rule_info(i) for i in range(len(self.ctx.ir.rules)))
            self._full = dataclasses.replace(self.policy, rules=rules)
        return self._full

    def warm(self) -> None:
        """Generate and compile every leaf now rather than on first use: every name the policy
        mentions, and names that match none of its globs. (A name that matches some glob gets
        its signature's leaf on first use, from rule code already generated.)"""
        for leaf in (*self.leaves.values(), self.index.leaf_of((), frozenset())):
            leaf.fn_for(None)
            for k in leaf.kinds:
                leaf.fn_for(k)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_UTC = timezone.utc
_clock = datetime.now


def _by_index(record: RuleRecord) -> int:
    return record.index
