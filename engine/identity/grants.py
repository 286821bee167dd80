"""Just-in-time grants (IDENTITY.md §2, §3): a signed, short-lived credential for exactly one
allowed call, which the tool's server verifies with nothing but the issuer's public JWKS.

A grant is a JWT signed with the issuer key (EdDSA or ES256, its `kid` in the header) whose
claims are exactly: `iss`; `sub`, the delegation chain's origin; `act`, the acting agent with the
earlier agents nested inside (RFC 8693); `aud`, the tool; `iat` and `exp`, the decision's `now`
and `now + ttl`; a unique `jti`; and `agp`, which binds it to the task, the tool, a digest of the
arguments (RFC 8785 canonical JSON), the deciding rules and the policy hash.

Every minted grant is recorded in the store's ledger, so that ending or revoking its task
revokes it; `verify` asks the ledger, and a ledger that cannot be reached never lets a grant
pass.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from datetime import datetime, timezone
from typing import Any

import jwt

from agp.identity import GrantError, IdentityCheck
from agp.identity.canonical import canonical_json
from agp.identity.keys import IssuerKey
from agp.limits import MAX_DURATION
from agp.model import (
    Decide,
    Decision,
    Hop,
    Request,
    RequestError,
    RequestInput,
    parse_request,
    parse_timestamp,
)
from agp.store import GrantLedger, StoreUnavailable

# The reasons of GrantError, in their order of precedence (IDENTITY.md §2); `not-ask` is
# engine.approve's, `unverified` its refusal to grant to an unproven agent where trust is set.
REASONS = ("malformed", "signature", "unavailable", "revoked", "expired", "audience", "args",
           "not-ask", "unverified")
CLOCK_SKEW = 60  # seconds a grant's `iat` may lie in the future of the verifier's clock
# A revocation by jti alone does not know the grant's `exp`: it is kept as long as any grant
# can live.
_LONGEST = int(MAX_DURATION.total_seconds())


def args_digest(args: Any) -> str:
    """`sha256:` and the hex SHA-256 of the arguments as RFC 8785 canonical JSON.

    >>> args_digest({"amount": 120, "order": "o-7"})
    'sha256:af9c84b3d2ae7f2a9dfb89ff3f1c31cb7e6c0864e3af8ed7b00364451d77e54e'
    """
    return "sha256:" + hashlib.sha256(canonical_json(args)).hexdigest()


def actor(chain: list[Hop], agent: str) -> dict[str, Any] | None:
    """RFC 8693 `act` of a grant: the acting agent, with each earlier agent hop after the origin
    nested inside the one after it. None when the chain is empty.

    >>> hops = [Hop(principal=p, kind=k) for p, k in
    ...         [("user:alice", "human"), ("bot", "agent"), ("billing", "agent")]]
    >>> actor(hops, "billing")
    {'sub': 'billing', 'act': {'sub': 'bot'}}
    """
    if not chain:
        return None
    earlier = chain[1:]
    if earlier and earlier[-1].principal == agent:  # the chain usually ends with the agent
        earlier = earlier[:-1]
    act: dict[str, Any] = {"sub": agent}
    inner = act
    for hop in reversed(earlier):
        if hop.kind == "agent":
            inner["act"] = {"sub": hop.principal}
            inner = inner["act"]
    return act


def _instant(now: datetime | str | None) -> datetime:
    return datetime.now(timezone.utc) if now is None else parse_timestamp(now)


_CLAIM_TYPES: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("iss", str), ("sub", str), ("aud", str), ("iat", int), ("exp", int), ("jti", str),
    ("agp", dict))
_AGP_TYPES: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("tool", str), ("args", str), ("rules", list), ("policy", str))


def _shape_problem(claims: object) -> str | None:
    if not isinstance(claims, dict):
        return "its claims are not a JSON object"
    for name, kind in _CLAIM_TYPES:
        value = claims.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"its `{name}` claim is missing or not a {getattr(kind, '__name__', kind)}"
    for name, kind in _AGP_TYPES:
        if not isinstance(claims["agp"].get(name), kind):
            return f"its `agp.{name}` claim is missing or malformed"
    task = claims["agp"].get("task")
    if task is not None and not isinstance(task, str):
        return "its `agp.task` claim is not a string"
    return None


class Grants:
    """Mints and verifies grants with one issuer key; revokes through the store's ledger.

    An engine with an `issuer_key` has one, as `engine.grants`.
    """

    def __init__(self, key: IssuerKey, issuer: str, ledger: GrantLedger) -> None:
        self.key = key
        self.issuer = issuer
        self.ledger = ledger
        self._verifier = key.verifier
        self._header = {"kid": key.kid, "typ": "JWT"}
        self._jws = jwt.PyJWS()

    def public_jwks(self) -> dict[str, Any]:
        """What a tool server needs to verify this engine's grants."""
        return {"keys": [dict(self.key.public_jwk)]}

    # ---- minting -----------------------------------------------------------------------------

    def claims(self, request: Request, agent: str, *, ttl: int, rules: list[str], policy: str,
               now: datetime, approver: str | None = None) -> dict[str, Any]:
        """The claims of the grant for `request`, acted by `agent` (the decision's agent.id)."""
        iat = math.floor(now.timestamp())
        bound: dict[str, Any] = {}
        if request.task is not None:
            if request.task.id is not None:
                bound["task"] = request.task.id
            bound["kind"] = request.task.kind
        bound.update(tool=request.tool, args=args_digest(request.args), rules=list(rules),
                     policy=policy)
        if approver is not None:
            bound["approver"] = approver
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": request.chain[0].principal if request.chain else agent,
        }
        act = actor(request.chain, agent)
        if act is not None:
            claims["act"] = act
        claims.update(aud=request.tool, iat=iat, exp=iat + ttl,
                      jti=secrets.token_urlsafe(18), agp=bound)
        return claims

    def mint(self, claims: dict[str, Any]) -> str:
        """Sign `claims` and record the grant in the ledger; raises StoreUnavailable when the
        ledger cannot record it (the caller must then not hand it out)."""
        token = jwt.encode(claims, self.key.private, algorithm=self.key.alg,
                           headers=self._header)
        self.ledger.record_grant(claims["jti"], claims["agp"].get("task"), claims["exp"])
        return token

    # ---- verifying ---------------------------------------------------------------------------

    def verify(self, token: str, tool: str | None = None, args: Any = None,
               now: datetime | str | None = None) -> dict[str, Any]:
        """The claims of a grant valid at `now` (for `tool` and `args` when given); raises
        GrantError with the first reason that applies."""
        at = _instant(now).timestamp()
        try:
            header = jwt.get_unverified_header(token)
            unverified = self._jws.decode_complete(token, options={"verify_signature": False})
            claims: dict[str, Any] = json.loads(unverified["payload"])
        except (jwt.PyJWTError, ValueError, TypeError, UnicodeDecodeError):
            raise GrantError("malformed", "not a compact JWS with JSON claims") from None
        problem = _shape_problem(claims)
        if problem is not None:
            raise GrantError("malformed", problem)
        if header.get("kid") != self.key.kid or header.get("alg") != self.key.alg:
            raise GrantError("signature", "not signed with this issuer's key")
        try:
            self._jws.decode_complete(token, key=self._verifier, algorithms=[self.key.alg])
        except jwt.PyJWTError:
            raise GrantError("signature", "bad signature") from None
        if claims["iss"] != self.issuer:
            raise GrantError("signature", "issued by another issuer")
        try:
            revoked = self.ledger.grant_revoked(claims["jti"], claims["agp"].get("task"))
        except StoreUnavailable as exc:
            raise GrantError("unavailable", f"the store cannot be reached ({exc})") from None
        if revoked:
            raise GrantError("revoked", "the grant, or its task, was revoked")
        if at >= claims["exp"] or claims["iat"] > at + CLOCK_SKEW:
            raise GrantError("expired", "outside the grant's lifetime")
        if tool is not None and tool != claims["aud"]:
            raise GrantError("audience", "the grant is for another tool")
        if args is not None:
            try:
                digest = args_digest(args)
            except (ValueError, TypeError, RecursionError):
                digest = None
            if digest != claims["agp"]["args"]:
                raise GrantError("args", "the grant is for other arguments")
        return claims

    def introspect(self, token: str, now: datetime | str | None = None) -> dict[str, Any]:
        """An RFC 7662 introspection response: `{"active": true, ...claims}` for a grant valid at
        `now`, else `{"active": false}` (and nothing about why)."""
        try:
            return {"active": True, **self.verify(token, now=now)}
        except GrantError:
            return {"active": False}

    # ---- revoking ----------------------------------------------------------------------------

    def revoke(self, jti: str, *, exp: int | None = None) -> None:
        """Revoke one grant (kept until `exp` when given, else as long as any grant can live).
        Raises GrantError `unavailable` when the store cannot be reached."""
        until = exp if exp is not None else math.floor(datetime.now(timezone.utc).timestamp()) \
            + _LONGEST
        try:
            self.ledger.revoke(jti, until)
        except StoreUnavailable as exc:
            raise GrantError("unavailable", f"the store cannot be reached ({exc})") from None

    def revoke_task(self, task_id: str) -> None:
        """Revoke every grant of a task minted so far, without ending the task."""
        try:
            self.ledger.revoke_task(task_id)
        except StoreUnavailable as exc:
            raise GrantError("unavailable", f"the store cannot be reached ({exc})") from None


def granting(decide: Decide, grants: Grants, identity: IdentityCheck, *,
             verified_only: bool) -> Decide:
    """`decide`, with a grant on every allow (IDENTITY.md §2): for a verified identity only when
    `verified_only` (an engine with trust). An allow whose grant the ledger cannot record is
    decided again as a store failure (a deny `store.unavailable`): a grant nobody can revoke is
    never handed out."""

    def decide_granting(request: RequestInput, *, task_ended: bool = False,
                        store_unavailable: bool = False) -> Decision:
        try:
            parsed = parse_request(request)
        except RequestError:
            return decide(request, task_ended=task_ended, store_unavailable=store_unavailable)
        if parsed.now is None:  # the grant's `iat` is the decision's own `now`
            parsed = parsed.model_copy(update={"now": datetime.now(timezone.utc)})
        decision = decide(parsed, task_ended=task_ended, store_unavailable=store_unavailable)
        if decision.decision != "allow":
            return decision
        return grant_for(decide, grants, identity, parsed, decision, task_ended=task_ended,
                         verified_only=verified_only)

    return decide_granting


def grant_for(decide: Decide, grants: Grants, identity: IdentityCheck, request: Request,
              decision: Decision, *, task_ended: bool, verified_only: bool) -> Decision:
    """An allow with its grant; unchanged for an unverified agent when `verified_only`; the
    store failure's deny when the ledger cannot record the grant."""
    try:
        token = _mint_for(grants, identity, request, decision, verified_only=verified_only)
    except StoreUnavailable:
        return decide(request, task_ended=task_ended, store_unavailable=True)
    return decision if token is None else decision.model_copy(update={"grant": token})


def approve(decide: Decide, grants: Grants, identity: IdentityCheck, request: RequestInput,
            *, approver: str, now: datetime | str | None, verified_only: bool) -> str:
    """The grant for a call a human approved (`engine.approve`): the request is decided again
    (the caller's decision object is not trusted), and only a fresh `ask` is granted, with the
    approver in its `agp` claim."""
    try:
        parsed = parse_request(request)
    except RequestError as exc:
        raise GrantError("not-ask", f"the request is not valid ({exc})") from None
    at = _instant(now if now is not None else parsed.now)
    parsed = parsed.model_copy(update={"now": at})
    fresh = decide(parsed)
    if fresh.decision != "ask":
        raise GrantError("not-ask", f"the request is now decided {fresh.decision}, not ask")
    try:
        token = _mint_for(grants, identity, parsed, fresh, verified_only=verified_only,
                          approver=approver)
    except StoreUnavailable as exc:
        raise GrantError("unavailable", f"the store cannot record the grant ({exc})") from None
    if token is None:
        raise GrantError("unverified", "this engine grants only to verified agents")
    return token


def _mint_for(grants: Grants, identity: IdentityCheck, request: Request, decision: Decision,
              *, verified_only: bool, approver: str | None = None) -> str | None:
    """The grant of one decided call; None for an unverified agent when `verified_only`.
    Raises StoreUnavailable when the ledger cannot record it."""
    assert request.now is not None
    who = identity(request.agent.id, request.agent.svid, request.now)
    if verified_only and not who.verified:
        return None
    return grants.mint(grants.claims(request, who.id, ttl=decision.ttl, rules=decision.rules,
                                     policy=decision.policy, now=request.now,
                                     approver=approver))


def grant_jti(token: str) -> str | None:
    """The `jti` of a grant, unverified: what the decision log records instead of the token."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    jti = claims.get("jti")
    return jti if isinstance(jti, str) else None
