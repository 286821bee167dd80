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

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agp.compile.bundle import BundleError, read_bundle, write_bundle
from agp.compile.evaluator import CompiledEvaluator, Context, RuleRecord
from agp.compile.ir import Program, check_program, policy_to_ir, runtime_policy
from agp.compile.passes import optimise
from agp.compile.tree import Index, explain
from agp.policy import Policy

__all__ = ["BundleError", "CompiledEvaluator", "compile_ir", "compile_policy", "explain_policy",
           "load_bundle_evaluator", "write_bundle"]

@contextmanager
def _no_cyclic_collection() -> Iterator[None]:
    # Building the tree (or reading a bundle) allocates many small objects and frees none: a
    # cyclic collection here would only rescan the IR again and again (half the time at 10,000
    # rules).
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_ir(program: Program, policy: Policy | None = None,
               full_policy: Policy | None = None) -> CompiledEvaluator:
    """The evaluator of a Program (from a Policy, or read from a bundle)."""
    with _no_cyclic_collection():
        policy = policy if policy is not None else runtime_policy(program)
        records = [RuleRecord(r.index, r.name, r.effect, r.ttl, r.because)
                   for r in program.rules]
        ctx = Context(program, policy, records, policy.labels, policy.lattice)
        index = Index(optimise(program), ctx)
        return CompiledEvaluator(index, policy, ctx, full_policy)


def compile_policy(policy: Policy, *, eager: bool = False) -> CompiledEvaluator:
    """Compile a checked Policy. Leaves are generated on first use unless `eager`."""
    ev = compile_ir(policy_to_ir(policy), policy, policy)
    if eager:
        with _no_cyclic_collection():
            ev.warm()
    return ev


def explain_policy(ev: CompiledEvaluator) -> str:
    return explain(ev.index, ev.ctx.ir)


def load_bundle_evaluator(path: str | Path) -> CompiledEvaluator:
    with _no_cyclic_collection():  # as in compile_ir: the JSON body is many small objects
        program = read_bundle(path)
        try:
            return compile_ir(check_program(program))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{path}: malformed bundle ({type(exc).__name__}: {exc})") from None
