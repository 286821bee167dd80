"""agp: intent-aware policy-as-code for AI agents.

    >>> import agp
    >>> engine = agp.load("examples/policies/customer-support")       # doctest: +SKIP
    >>> engine.decide({"agent": {"id": "spiffe://acme.com/agents/support-bot"},
    ...                "tool": "crm.lookup"}).decision                # doctest: +SKIP
    'deny'
"""

from agp.engine import Engine, load, load_bundle
from agp.loader import PolicyError
from agp.model import Decision, Request
from agp.runtime import TaskError, TaskRuntime, replay_trace

__all__ = ["Decision", "Engine", "PolicyError", "Request", "TaskError", "TaskRuntime", "load",
           "load_bundle", "replay_trace"]
__version__ = "0.1.0"
