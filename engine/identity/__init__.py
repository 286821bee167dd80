"""Who is asking (IDENTITY.md §1): the identity a decision uses, and how it is established.

An `IdentityCheck` turns the request's agent (an asserted `id`, a JWT-SVID, or both) into an
`Identity` at the decision's `now`. Both evaluators call one (the engine's, or `unverified` when
no trust is configured) before anything else, and decide with `Identity.id` as `agent.id`;
`Identity.code` is an envelope failure (LANGUAGE.md §5 step 2) and `agent.verified` in
conditions is `Identity.verified`.

The verification of SVIDs against trust bundles lives in agp.identity.svid; signed grants in
agp.identity.grants. Both need the JOSE libraries (PyJWT, cryptography), which cost tens of
milliseconds to import: this module imports them only when trust or an issuer key is given, so
that an engine without identity, and every CLI command, starts without them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agp.identity.grants import Grants
    from agp.identity.svid import SvidVerifier
    from agp.store import GrantLedger


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


class GrantError(Exception):
    """A grant that must not be honoured (or cannot be issued); `reason` says which check failed
    first, among agp.identity.grants.REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def identity_check(trust: str | os.PathLike[str] | dict[str, Any] | None,
                   audience: str | None, require_identity: bool | None,
                   leeway: float = 0) -> SvidVerifier | None:
    """The verifier of `agp.load(trust=..., audience=..., require_identity=..., leeway=...)`;
    None without trust (the engine then takes asserted ids, and refuses SVIDs). Raises
    ValueError for options that do not fit together."""
    if isinstance(leeway, bool) or not isinstance(leeway, (int, float)) \
            or not math.isfinite(leeway) or leeway < 0:
        raise ValueError("leeway is a number of seconds, zero or more")
    if trust is None:
        if audience is not None:
            raise ValueError("audience is the audience of JWT-SVIDs: it needs trust")
        if require_identity:
            raise ValueError("require_identity=True needs trust (the JWKS bundles that "
                             "verify JWT-SVIDs)")
        return None
    if not isinstance(audience, str) or not audience:
        raise ValueError("trust needs an audience: the `aud` that JWT-SVIDs must name for "
                         "this engine (e.g. audience=\"agp\")")
    from agp.identity.svid import SvidVerifier, load_trust

    return SvidVerifier(load_trust(trust), audience=audience,
                        require_identity=True if require_identity is None else require_identity,
                        leeway=leeway)


def grants_from(key: str | os.PathLike[str] | dict[str, Any] | None, issuer: str | None,
                ledger: GrantLedger) -> Grants | None:
    """The grants of `agp.load(issuer_key=..., issuer=...)`; None without a key. Raises
    ValueError for options that do not fit together or a key that cannot sign."""
    if key is None:
        if issuer is not None:
            raise ValueError("issuer names the signer of grants: it needs issuer_key")
        return None
    if not isinstance(issuer, str) or not issuer:
        raise ValueError("issuer_key needs issuer, the `iss` of every grant "
                         "(e.g. issuer=\"agp://acme.com/pdp\")")
    from agp.identity.grants import Grants
    from agp.identity.keys import issuer_key

    return Grants(issuer_key(key), issuer, ledger)
