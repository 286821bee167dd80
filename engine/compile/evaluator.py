"""The compiled evaluator: validation fast path, tree dispatch, generated leaves, shared steps."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from agp import interp
from agp.compile.codegen import BASE, generate_leaf
from agp.compile.ir import rule_info, sources_of
from agp.compile.request import fast_request
from agp.model import Decision, Request, RequestError, parse_request
from agp.source import Span
from agp.steps import envelope_codes, error_text, invalid, outcome

# Tests set this to check that compiled code raises only where the reference reports an error.
CHECK_FALLBACK = False


class RuleRecord:
    """What a decision needs from a matching rule (the RuleInfo fields `outcome` reads)."""

    __slots__ = ("index", "name", "effect", "ttl", "because")

    def __init__(self, index, name, effect, ttl, because):
        self.index = index
        self.name = name
        self.effect = effect
        self.ttl = ttl
        self.because = because


class Context:
    """What code generation needs from the policy set, and the functions and line maps it leaves
    behind."""

    # Generated functions kept for sharing (docs/limits.md). A leaf keeps the functions it uses
    # itself, so this bound limits only what names the policy does not mention can add.
    FUNCTIONS = 1024

    def __init__(self, ir, policy, records, labels, lattice):
        self.ir = ir
        self.hash = ir["hash"]
        self.policy = policy
        self.records = records
        self.labels = labels
        self.lattice = lattice
        self._sources = None
        self.namespace = dict(BASE)  # each generated function runs in a copy of it
        # filename -> generated line -> policy span; an entry lives as long as its function.
        self.line_maps: dict[str, dict[int, Span]] = {}
        self.delegated: set[int] = set()
        self.functions: dict[tuple, object] = {}
        self._lock = threading.Lock()

    @property
    def sources(self):
        if self._sources is None:
            self._sources = sources_of(self.ir)
        return self._sources

    def span(self, s) -> Span:
        return Span(self.sources[s[0]], s[1], s[2])

    def function(self, durations: frozenset, rules: list):
        """The compiled function deciding `rules` (a leaf's candidates for one task kind): the
        code depends on nothing else, so every leaf and task kind with the same ones shares it."""
        key = (durations, tuple((i, dyn) for i, _, dyn in rules))
        fn = self.functions.get(key)
        if fn is None:
            fn = generate_leaf(rules, durations, self)[0]
            with self._lock:
                if len(self.functions) >= self.FUNCTIONS:
                    del self.functions[next(iter(self.functions))]
                self.functions[key] = fn
        return fn


class CompiledEvaluator:
    """Decides requests with the decision tree; agrees exactly with agp.interp.decide."""

    def __init__(self, index, policy, ctx, full_policy=None):
        self.index = index
        self.leaves = index.leaves
        self.policy = policy  # for the shared steps: lattice, intents, tasks, TTL defaults, hash
        self.tasks = policy.tasks
        self.ctx = ctx
        self._full = full_policy  # the checked Policy, when compiled from one (not from a bundle)
        self._rule_infos: dict[int, object] = {}

    def decide(self, request, *, task_ended: bool = False) -> Decision:
        t = type(request)
        if t is dict:
            req = fast_request(request)
            if req is None:
                try:
                    req = parse_request(request)
                except RequestError as exc:
                    return invalid(self.policy, exc.errors)
        elif t is Request:
            req = request
        else:
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
            task = self.tasks.get(rt.kind)
            fn = leaf.fns.get(rt.kind) or leaf.fn_for(rt.kind)
        failures = envelope_codes(self.policy, req, now, task, intents, data, task_ended)
        forbids, asks, permits, failed = fn(req, intents, data, now, failures)
        errors = []
        if failed is not None:
            forbids, asks, permits, errors = self.reference(
                req, now, intents, data, leaf, failed, forbids, asks, permits)
        return outcome(self.policy, req, now, task, failures, forbids, asks, permits, errors)

    def reference(self, req, now, intents, data, leaf, failed, forbids, asks, permits):
        """Rules whose compiled condition raised, or that were not compiled, are decided by the
        reference evaluator, which also writes their error messages."""
        env = interp.environment(req, now, intents, data, leaf.durations)
        lists = {"forbid": list(forbids), "ask": list(asks), "permit": list(permits)}
        errors = []
        for idx in sorted(set(failed)):
            rule = self.rule_info(idx)
            hit, problem = interp.rule_matches(self.policy, rule, env)
            if problem is not None:
                errors.append(error_text(rule, problem))
            elif CHECK_FALLBACK and idx not in self.ctx.delegated:
                raise AssertionError(f"compiled rule {rule.name} raised, the reference did not")
            if hit:
                lists[rule.effect].append(self.ctx.records[idx])
        key = _by_index
        return (sorted(lists["forbid"], key=key), sorted(lists["ask"], key=key),
                sorted(lists["permit"], key=key), errors)

    def rule_info(self, idx: int):
        if self._full is not None:
            return self._full.rules[idx]
        info = self._rule_infos.get(idx)
        if info is None:
            info = rule_info(self.ctx.ir["rules"][idx], self.ctx.sources)
            self._rule_infos[idx] = info
        return info

    def locate(self, filename: str, line: int) -> Span | None:
        """The policy span behind a line of generated code (for tracebacks and profiles)."""
        return self.ctx.line_maps.get(filename, {}).get(line)

    def full_policy(self):
        """The Policy with every rule's AST (bundles build it only when someone asks)."""
        if self._full is None:
            import dataclasses

            rules = tuple(self.rule_info(i) for i in range(len(self.ctx.ir["rules"])))
            self._full = dataclasses.replace(self.policy, rules=rules)
        return self._full

    def warm(self) -> None:
        """Generate and compile every leaf now rather than on first use."""
        for leaf in self.leaves.values():
            leaf.fn_for(None)
            for k in leaf.kinds:
                leaf.fn_for(k)


def _by_index(record):
    return record.index
