"""Who is asking (IDENTITY.md §1): the identity a decision uses, and how it is established.

An `IdentityCheck` turns the request's agent (an asserted `id`, a JWT-SVID, or both) into an
`Identity` at the decision's `now`. Both evaluators call one (the engine's, or `unverified` when
no trust is configured) before anything else, and decide with `Identity.id` as `agent.id`;
`Identity.code` is an envelope failure (LANGUAGE.md §5 step 2) and `agent.verified` in
conditions is `Identity.verified`.

The verification of SVIDs against trust bundles lives in agp.identity.svid; signed grants in
agp.identity.grants.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Identity:
    """The agent as a decision sees it."""

    id: str  # a valid SVID's subject; else the asserted id; else ""
    verified: bool  # a valid SVID proved `id`
    code: str | None = None  # identity.invalid | identity.mismatch | identity.missing
    error: str | None = None  # what failed, for the decision's errors; never the token


class IdentityCheck(Protocol):
    """Establishes the identity of one request's agent at `now`."""

    def __call__(self, agent_id: str | None, svid: str | None, now: datetime) -> Identity: ...


def unverified(agent_id: str | None, svid: str | None, now: datetime) -> Identity:
    """The check of an engine without trust: asserted ids are taken as they are, and an SVID,
    which nothing could verify, is refused (an unverifiable proof is never ignored)."""
    asserted = agent_id if agent_id is not None else ""
    if svid is not None:
        return Identity(asserted, False, "identity.invalid",
                        "identity.invalid: agent.svid was given, but no trust is configured "
                        "to verify it")
    return Identity(asserted, False)
