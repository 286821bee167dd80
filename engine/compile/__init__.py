"""agp.compile: a checked policy set compiled to a decision tree of generated Python.

The stages, each callable on its own: `policy_to_ir` (ir.py: the Policy as JSON-able data),
`optimise` (passes.py: IR to IR), `Index` (tree.py: tool name -> task kind -> rules),
`generate_leaf` (codegen.py: Python source, `compile()`, linecache, line map), and the
`CompiledEvaluator` (evaluator.py). `compile_policy` and `load_bundle` join them.

    >>> import agp                                                     # doctest: +SKIP
    >>> agp.load("examples/policies/customer-support").decide(req)    # compiled by default
"""

from __future__ import annotations

from agp.compile.bundle import BundleError, read_bundle, write_bundle
from agp.compile.evaluator import CompiledEvaluator, Context, RuleRecord
from agp.compile.ir import policy_to_ir, runtime_policy, td_in
from agp.compile.passes import optimise
from agp.compile.tree import Index, explain
from agp.values import Label, Lattice

__all__ = ["BundleError", "CompiledEvaluator", "compile_ir", "compile_policy", "explain_policy",
           "load_bundle_evaluator", "write_bundle"]


def compile_ir(ir: dict, policy=None, full_policy=None) -> CompiledEvaluator:
    """The evaluator of an IR (from a Policy, or read from a bundle)."""
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
        ev.warm()
    return ev


def explain_policy(ev: CompiledEvaluator) -> str:
    return explain(ev.index, ev.ctx.ir, ev.removed)


def load_bundle_evaluator(path) -> CompiledEvaluator:
    return compile_ir(read_bundle(path))


_ = (Label, Lattice)
