"""agp.compile: a checked policy set compiled to a decision tree of generated Python.

The stages, each callable on its own: `policy_to_ir` (ir.py: the Policy as JSON-able data),
`optimise` (passes.py: IR to IR), `Index` (tree.py: tool name -> task kind -> rules),
`generate_leaf` (codegen.py: Python source, `compile()`, linecache, line map), and the
`CompiledEvaluator` (evaluator.py). `compile_policy` and `load_bundle` join them.

    >>> import agp
    >>> engine = agp.load("examples/policies/customer-support")       # doctest: +SKIP
    >>> engine.compiled, agp.load(..., compiled=False).compiled       # doctest: +SKIP
    (True, False)
"""

from __future__ import annotations

import gc

from agp.compile.bundle import BundleError, read_bundle, write_bundle
from agp.compile.evaluator import CompiledEvaluator, Context, RuleRecord
from agp.compile.ir import policy_to_ir, runtime_policy, td_in
from agp.compile.passes import optimise
from agp.compile.tree import Index, explain

__all__ = ["BundleError", "CompiledEvaluator", "compile_ir", "compile_policy", "explain_policy",
           "load_bundle_evaluator", "write_bundle"]


def compile_ir(ir: dict, policy=None, full_policy=None) -> CompiledEvaluator:
    """The evaluator of an IR (from a Policy, or read from a bundle)."""
    # Building the tree allocates many small objects and frees none: a cyclic collection
    # here would only rescan the IR again and again (half the time at 10,000 rules).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile_ir(ir, policy, full_policy)
    finally:
        if enabled:
            gc.enable()


def _compile_ir(ir, policy, full_policy) -> CompiledEvaluator:
    policy = policy if policy is not None else runtime_policy(ir)
    records = [RuleRecord(i, r["name"], r["effect"], td_in(r["ttl"]), r["because"])
               for i, r in enumerate(ir["rules"])]
    ctx = Context(ir, policy, records, policy.labels, policy.lattice)
    rules = optimise(ir)
    index = Index(ir, rules, ctx)
    ev = CompiledEvaluator(index, policy, ctx, full_policy)
    ev.removed = len(ir["rules"]) - len(rules)
    return ev


def compile_policy(policy, *, eager: bool = False) -> CompiledEvaluator:
    """Compile a checked Policy. Leaves are generated on first use unless `eager`."""
    ev = compile_ir(policy_to_ir(policy), policy, policy)
    if eager:
        enabled = gc.isenabled()
        gc.disable()
        try:
            ev.warm()
        finally:
            if enabled:
                gc.enable()
    return ev


def explain_policy(ev: CompiledEvaluator) -> str:
    return explain(ev.index, ev.ctx.ir, ev.removed)


def load_bundle_evaluator(path) -> CompiledEvaluator:
    enabled = gc.isenabled()
    gc.disable()  # as in compile_ir: the JSON body is many small objects, none garbage
    try:
        ir = read_bundle(path)
        try:
            return compile_ir(ir)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{path}: malformed bundle ({type(exc).__name__}: {exc})") from None
    finally:
        if enabled:
            gc.enable()

