"""The compiled evaluator: validation fast path, its own envelope, tree dispatch, generated leaves,
and the shared outcome (agp.steps)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from agp import interp
from agp.compile.codegen import BASE, LeafFunction, generate_leaf
from agp.compile.debug import policy_traceback, report_defect
from agp.compile.envelope import Envelope
from agp.compile.ir import Program, rule_info
from agp.compile.request import FastRequest, fast_request
from agp.envelope import Facts, explain
from agp.model import Decision, Request, RequestError, parse_request
from agp.policy import Policy, RuleInfo
from agp.source import Span
from agp.steps import error_text, invalid, outcome
from agp.values import Label, Lattice

if TYPE_CHECKING:
    from agp.compile.tree import Candidate, Index, Leaf

# Tests set this to check that compiled code raises only where the reference reports an error.
CHECK_FALLBACK = False


class RuleRecord:
    """What a decision needs from a matching rule (the RuleInfo fields `outcome` reads)."""

    __slots__ = ("index", "name", "effect", "ttl", "because")

    def __init__(self, index: int, name: str, effect: str, ttl: timedelta | None,
                 because: str | None):
        self.index = index
        self.name = name
        self.effect = effect
        self.ttl = ttl
        self.because = because

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
        self.line_maps: dict[str, dict[int, Span]] = {}
        self.functions: dict[tuple[frozenset[str], tuple[tuple[int, frozenset[str] | None], ...]],
                             LeafFunction] = {}
        self._lock = threading.Lock()

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
                 full_policy: Policy | None = None):
        self.index = index
        self.leaves = index.leaves
        self.policy = policy  # for the shared steps: lattice, intents, tasks, TTL defaults, hash
        self.envelope = Envelope(policy)
        self.ctx = ctx
        self._full = full_policy  # the checked Policy, when compiled from one (not from a bundle)
        self._rule_infos: dict[int, RuleInfo] = {}

    def decide(self, request: object, *, task_ended: bool = False) -> Decision:
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
        leaf = self.leaves.get(req.tool)
        if leaf is None:
            leaf = self.index.leaf(req.tool)
        now = req.now or datetime.now(timezone.utc)
        intents = frozenset(req.intent).union(*leaf.tool_intents) if req.intent else leaf.intents0
        data = frozenset(req.data).union(*leaf.tool_data) if req.data else leaf.data0
        rt = req.task
        if rt is None:
            task = None
            fn = leaf.fn_none or leaf.fn_for(None)
        else:
            task = self.envelope.tasks.get(rt.kind)
            fn = leaf.fns.get(rt.kind) or leaf.fn_for(rt.kind)
        failures = self.envelope.codes(req, now, task, intents, data, task_ended)
        try:
            forbids, asks, permits, failed = fn(req, intents, data, now, failures)
        except Exception as exc:  # a defect (conditions' errors are caught rule by rule)
            policy_traceback(exc)  # its traceback then shows the policy lines it went through
            raise
        errors: list[str] = []
        if failed is not None:
            forbids, asks, permits, errors = self.reference(
                req, now, intents, data, leaf, failed, forbids, asks, permits)
        info = None if task is None else task.info
        if failures:  # what the codes alone do not say, written by the envelope's rows
            facts = Facts(self.policy, req, now, info, intents, data, task_ended)
            errors = [*explain(facts, failures), *errors]
        return outcome(self.policy, req, now, info, failures, forbids, asks, permits, errors)

    def reference(self, req: Request | FastRequest, now: datetime, intents: frozenset[str],
                  data: frozenset[str], leaf: Leaf, failed: dict[int, BaseException | None],
                  forbids: Sequence[RuleRecord], asks: Sequence[RuleRecord],
                  permits: Sequence[RuleRecord],
                  ) -> tuple[list[RuleRecord], list[RuleRecord], list[RuleRecord], list[str]]:
        """Rules whose compiled condition raised, or that were not compiled, are decided by the
        reference evaluator, which also writes their error messages."""
        env = interp.environment(req, now, intents, data, leaf.durations)
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
        key = _by_index
        return (sorted(lists["forbid"], key=key), sorted(lists["ask"], key=key),
                sorted(lists["permit"], key=key), errors)

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
        """Generate and compile every leaf now rather than on first use."""
        for leaf in self.leaves.values():
            leaf.fn_for(None)
            for k in leaf.kinds:
                leaf.fn_for(k)


def _by_index(record: RuleRecord) -> int:
    return record.index
