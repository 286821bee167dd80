"""agp.compile: a checked policy set compiled to a decision tree of generated Python.

The stages, each callable on its own: `policy_to_ir` (ir.py: the typed IR, a `Program`),
`optimise` (passes.py: Program to Program), `Index` (tree.py: tool name -> task kind -> rules),
`generate_leaf` (codegen.py: Python source, `compile()`, linecache, line map), and the
`CompiledEvaluator` (evaluator.py). `compile_policy` and `load_bundle_evaluator` join them;
bundle.py writes a Program as JSON and reads it back, debug.py points tracebacks of generated
code at the policy.

    >>> import agp
    >>> engine = agp.load("examples/policies/customer-support")       # doctest: +SKIP
    >>> engine.compiled, agp.load(..., compiled=False).compiled       # doctest: +SKIP
    (True, False)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agp.compile.bundle import BundleError, read_bundle, write_bundle
from agp.compile.evaluator import CompiledEvaluator, Context, RuleRecord
from agp.compile.ir import Program, check_program, policy_to_ir, runtime_policy
from agp.compile.passes import optimise, prune_dead_rules
from agp.compile.tree import Index, explain
from agp.gcpause import no_cyclic_collection
from agp.identity import IdentityCheck, unverified
from agp.policy import Policy
from agp.steps import rule_seconds

__all__ = ["BundleError", "CompiledEvaluator", "compile_ir", "compile_policy", "explain_policy",
           "load_bundle_evaluator", "write_bundle"]


def compile_ir(program: Program, policy: Policy | None = None,
               full_policy: Policy | None = None,
               identity: IdentityCheck = unverified) -> CompiledEvaluator:
    """The evaluator of a Program (from a Policy, or read from a bundle); `identity`
    establishes each request's agent (agp.identity)."""
    with no_cyclic_collection():
        policy = policy if policy is not None else runtime_policy(program)
        # A bundle's rules after the passes (by form) are read, not computed again; its rules
        # as written are decoded only when an error must be explained.
        compiled = program.compiled
        rules = compiled if compiled is not None else program.rules
        records = [RuleRecord(r.index, r.name, r.effect, r.ttl, r.because,
                              rule_seconds(policy, r.ttl)) for r in rules]
        ctx = Context(program, policy, records, policy.labels, policy.lattice)
        optimised = optimise(program) if compiled is None else \
            prune_dead_rules(dataclasses.replace(program, rules=compiled, compiled=None))
        index = Index(optimised, ctx)
        return CompiledEvaluator(index, policy, ctx, full_policy, identity)


def compile_policy(policy: Policy, *, eager: bool = True,
                   identity: IdentityCheck = unverified) -> CompiledEvaluator:
    """Compile a checked Policy, every leaf included: no decision after this pays for code
    generation (unless `eager` is false: then leaves are generated on first use)."""
    with no_cyclic_collection():  # the IR too is many small objects (see compile_ir)
        ev = compile_ir(policy_to_ir(policy), policy, policy, identity)
        if eager:
            ev.warm()
    return ev


def explain_policy(ev: CompiledEvaluator) -> str:
    return explain(ev.index, ev.ctx.ir)


def load_bundle_evaluator(path: str | Path, identity: IdentityCheck = unverified, *,
                          eager: bool = True) -> CompiledEvaluator:
    """The evaluator of a bundle, every leaf generated (unless `eager` is false)."""
    with no_cyclic_collection():  # as in compile_ir: the JSON body is many small objects
        program = read_bundle(path)
        try:
            ev = compile_ir(check_program(program), identity=identity)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{path}: malformed bundle ({type(exc).__name__}: {exc})") from None
        if eager:
            ev.warm()
        return ev
