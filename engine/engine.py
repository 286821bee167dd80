"""The embedding API: load a policy set once, decide many requests."""

from __future__ import annotations

from functools import partial

from agp import interp
from agp.loader import load_policy
from agp.model import Decision, Request
from agp.policy import Policy


class Engine:
    """A loaded policy set. `decide` is pure and safe to call from many threads at once.

    It runs either the compiled evaluator (agp.compile, the default of `load`) or the reference
    evaluator (agp.interp, `load(..., compiled=False)` or `Engine(policy)`); the two agree.
    """

    def __init__(self, policy: Policy, evaluator=None):
        self._policy = policy
        self.evaluator = evaluator
        # Bound once, so that a decision costs no extra call layer.
        self.decide = (evaluator.decide if evaluator is not None
                       else partial(interp.decide, policy))

    @property
    def policy(self) -> Policy:
        if self._policy is None:  # a bundle: the full Policy (with rule ASTs) is built on demand
            self._policy = self.evaluator.full_policy()
        return self._policy

    @property
    def compiled(self) -> bool:
        return self.evaluator is not None

    @property
    def policy_hash(self) -> str:
        return self.evaluator.policy.hash if self.evaluator is not None else self.policy.hash

    def decide(self, request: Request | dict, *, task_ended: bool = False) -> Decision:
        """Decide one request (a dict as in FORMATS.md, or a Request). Never raises on bad input."""
        return self.decide(request, task_ended=task_ended)  # pragma: no cover - bound in __init__


def load(paths, *, compiled: bool = True) -> Engine:
    """Load, check and prepare a policy set (a file, a directory, or a list of them).

    `compiled=False` selects the reference evaluator. Raises agp.PolicyError carrying every
    diagnostic when the set has an error.
    """
    policy = load_policy(paths)
    if not compiled:
        return Engine(policy)
    from agp.compile import compile_policy

    return Engine(policy, compile_policy(policy))


def load_bundle(path) -> Engine:
    """Load a bundle written by `agp compile -o`, without parsing or checking the policy again.

    Raises agp.compile.BundleError for a bundle of another version, or a modified one.
    """
    from agp.compile import load_bundle_evaluator

    return Engine(None, load_bundle_evaluator(path))
