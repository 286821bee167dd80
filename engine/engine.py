"""The embedding API: load a policy set once, decide many requests."""

from __future__ import annotations

from agp import interp
from agp.loader import load_policy
from agp.model import Decision, Request
from agp.policy import Policy


class Engine:
    """A loaded policy set. `decide` is pure and safe to call from many threads at once."""

    def __init__(self, policy: Policy):
        self.policy = policy

    @property
    def policy_hash(self) -> str:
        return self.policy.hash

    def decide(self, request: Request | dict, *, task_ended: bool = False) -> Decision:
        """Decide one request (a dict as in FORMATS.md, or a Request). Never raises on bad input."""
        return interp.decide(self.policy, request, task_ended=task_ended)


def load(paths, *, compiled: bool = True) -> Engine:
    """Load, check and prepare a policy set (a file, a directory, or a list of them).

    Raises agp.PolicyError carrying every diagnostic when the set has an error.
    """
    return Engine(load_policy(paths))
