"""agp: intent-aware policy-as-code for AI agents.

    >>> import agp
    >>> engine = agp.load("examples/policies/customer-support")       # doctest: +SKIP
    >>> engine.decide({"agent": {"id": "spiffe://acme.com/agents/support-bot"},
    ...                "tool": "crm.lookup"}).decision                # doctest: +SKIP
    'deny'
"""

# Before the imports: modules imported below read it from this partly initialised package.
__version__ = "0.1.0"

from agp.engine import Engine, load, load_bundle
from agp.identity import GrantError
from agp.integrations.guard import ApprovalRequired, PolicyDenied, guard
from agp.loader import PolicyError
from agp.model import Decision, Request
from agp.runtime import TaskError, TaskRuntime, replay_trace

__all__ = ["ApprovalRequired", "Decision", "Engine", "GrantError", "PolicyDenied", "PolicyError",
           "Request", "TaskError", "TaskRuntime", "guard", "load", "load_bundle", "replay_trace"]
