"""JWT-SVID verification against per-trust-domain JWKS bundles (IDENTITY.md §1).

    trust = load_trust("trust.json")        # {"acme.com": {"keys": [...]}, ...}
    check = SvidVerifier(trust, audience="agp", require_identity=True)
    check(None, token, now)                  # -> Identity(id="spiffe://acme.com/...", verified=True)

PyJWT (with `cryptography`) checks the signature; everything around it is decided here, before
the library is called: the algorithm allow-list, the key named by `kid` in the trust domain of
the token's subject, and the rule that the key's type fixes the algorithm (agp.identity.keys).
The library never picks an algorithm from the header alone, never sees `none` or an HMAC, and
never reads the clock: `exp` and `nbf` are checked at the decision's `now`.

Verified tokens are cached by the token (a token's signature, subject and audience do not change
with time); `exp` and `nbf` are checked against `now` on every use.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jwt

from agp.identity import Identity
from agp.identity.keys import SVID_ALGORITHMS, KeyProblem, read_json, verifiers

# spiffe://<trust domain>/<path>: the character sets of the SPIFFE ID standard, and a path of at
# least one segment (a bare trust domain names no workload).
_SPIFFE_ID = re.compile(r"spiffe://([a-z0-9._-]+)((?:/[A-Za-z0-9._-]+)+)\Z")
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+\Z")
MAX_SPIFFE_ID = 2048  # bytes, as the SPIFFE ID standard bounds it
MAX_TOKEN = 16 * 1024  # characters; a JWT-SVID is far smaller, and parsing is not free
CACHE_SIZE = 4096  # verified tokens kept; each is checked against `now` on every use

_NOT_A_JWT = "is not a JWT (a compact JWS with a JSON object of claims)"

# A trust bundle: trust domain -> kid -> algorithm -> the key bound to that algorithm.
Trust = dict[str, dict[str, dict[str, jwt.PyJWK]]]


def spiffe_trust_domain(sub: object) -> str | None:
    """The trust domain of a SPIFFE ID with a non-empty path, else None.

    >>> spiffe_trust_domain("spiffe://acme.com/agents/bot"), spiffe_trust_domain("spiffe://acme.com")
    ('acme.com', None)
    """
    if not isinstance(sub, str) or len(sub.encode()) > MAX_SPIFFE_ID:
        return None
    m = _SPIFFE_ID.match(sub)
    if m is None or any(seg in (".", "..") for seg in m[2].split("/")):
        return None
    return m[1]


def load_trust(source: str | os.PathLike[str] | dict[str, Any]) -> Trust:
    """Read `{"<trust domain>": <JWKS>}` (a dict or the path of a JSON file).

    A key whose `use` is present and not `jwt-svid`, a key without a `kid` (no token can name
    it), and a symmetric key (never trusted) are left out. Raises ValueError (agp.identity.keys
    .KeyProblem) for a malformed bundle or key.
    """
    bundle = read_json(source, "trust bundle")
    trust: Trust = {}
    for domain, jwks in bundle.items():
        if not _TRUST_DOMAIN.match(domain):
            raise KeyProblem(f"trust: {domain!r} is not a trust domain name (like acme.com)")
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list):
            raise KeyProblem(f"trust: {domain}: expected a JWKS, an object with a list `keys`")
        by_kid: dict[str, dict[str, jwt.PyJWK]] = {}
        for jwk in keys:
            if not isinstance(jwk, dict):
                raise KeyProblem(f"trust: {domain}: each key is a JSON object (a JWK)")
            if "use" in jwk and jwk["use"] != "jwt-svid":
                continue
            kid = jwk.get("kid")
            if not isinstance(kid, str) or not kid:
                continue
            usable = verifiers(jwk)
            if usable:
                by_kid[kid] = usable
        trust[domain] = by_kid
    return trust


@dataclass(frozen=True, slots=True)
class _Verified:
    """What a verified token proves, whatever the time: checked against `now` at each use."""

    sub: str
    exp: float
    nbf: float | None


class InvalidSvid(Exception):
    """Why a token is not valid, in words that never repeat the token."""


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None and name not in claims:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise InvalidSvid(f"has a `{name}` that is not a number of seconds")
    return float(value)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


class SvidVerifier:
    """An `IdentityCheck` (agp.identity) that verifies JWT-SVIDs against a trust bundle."""

    def __init__(self, trust: Trust, *, audience: str, require_identity: bool = True,
                 leeway: float = 0) -> None:
        self.trust = trust
        self.audience = audience
        self.require_identity = require_identity
        self.leeway = float(leeway)
        self._cache: dict[str, _Verified] = {}
        self._evicting = threading.Lock()
        self._jws = jwt.PyJWS()

    def __call__(self, agent_id: str | None, svid: str | None, now: datetime) -> Identity:
        asserted = agent_id if agent_id is not None else ""
        if svid is None:
            if self.require_identity:
                return Identity(asserted, False, "identity.missing",
                                "identity.missing: this engine requires a verified identity "
                                "(agent.svid), and the request has none")
            return Identity(asserted, False)
        try:
            sub = self.verify(svid, now)
        except InvalidSvid as exc:
            return Identity(asserted, False, "identity.invalid",
                            f"identity.invalid: agent.svid {exc}")
        if agent_id is not None and agent_id != sub:
            return Identity(sub, True, "identity.mismatch",
                            "identity.mismatch: agent.id differs from the subject of its "
                            "valid agent.svid")
        return Identity(sub, True)

    def verify(self, token: str, now: datetime) -> str:
        """The SPIFFE ID a token proves at `now`; raises InvalidSvid saying what failed."""
        verified = self._cache.get(token)
        if verified is None:
            verified = self._verify_signed(token)
            self._remember(token, verified, now)
        at = now.timestamp()
        if at >= verified.exp + self.leeway:
            raise InvalidSvid(f"is expired (exp {_when(verified.exp)})")
        if verified.nbf is not None and verified.nbf - self.leeway > at:
            raise InvalidSvid(f"is not valid yet (nbf {_when(verified.nbf)})")
        return verified.sub

    def _verify_signed(self, token: str) -> _Verified:
        """Everything but the clock: header, key, signature, subject, audience."""
        if len(token) > MAX_TOKEN:
            raise InvalidSvid(f"is longer than {MAX_TOKEN} characters")
        try:
            # Read by hand, not with jwt.get_unverified_header: that one refuses a `crit`
            # header before the reason could say so.
            header = _json_object(base64.urlsafe_b64decode(_padded(token.split(".")[0])))
        except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
            raise InvalidSvid(_NOT_A_JWT) from None
        alg = header.get("alg")
        if alg not in SVID_ALGORITHMS:
            shown = alg if isinstance(alg, str) and len(alg) <= 16 else "?"
            raise InvalidSvid(f"uses the algorithm {shown!r}, which is not allowed (allowed: "
                              f"{', '.join(sorted(SVID_ALGORITHMS))})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidSvid("names no key: its header has no `kid`")
        if "crit" in header:
            raise InvalidSvid("has a `crit` header, which agp does not accept")
        if "typ" in header and header["typ"] not in ("JWT", "JOSE"):
            raise InvalidSvid("has a `typ` header other than JWT or JOSE")
        try:
            unverified = self._jws.decode_complete(token, options={"verify_signature": False})
            claims = _json_object(unverified["payload"])
        except (jwt.PyJWTError, ValueError, TypeError, UnicodeDecodeError):
            raise InvalidSvid(_NOT_A_JWT) from None
        sub = claims.get("sub")
        domain = spiffe_trust_domain(sub)
        if domain is None:
            raise InvalidSvid("has a subject that is not a SPIFFE ID with a path "
                              "(spiffe://<trust domain>/<path>)")
        keys = self.trust.get(domain)
        if keys is None:
            raise InvalidSvid(f"is from an unknown trust domain {domain[:64]!r}")
        by_alg = keys.get(kid)
        if by_alg is None:
            raise InvalidSvid(f"names an unknown key (kid {kid[:64]!r}) of trust domain "
                              f"{domain!r}")
        key = by_alg.get(alg)
        if key is None:
            raise InvalidSvid(f"uses {alg}, which its key {kid[:64]!r} cannot verify "
                              f"(the key's type fixes its algorithm)")
        try:
            signed = self._jws.decode_complete(token, key=key, algorithms=[alg])
        except jwt.InvalidSignatureError:
            raise InvalidSvid("has a bad signature") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise InvalidSvid("cannot be verified with its key") from None
        if signed["payload"] != unverified["payload"]:  # pragma: no cover - the same bytes
            raise InvalidSvid("has a bad signature")
        aud = claims.get("aud")
        if not (aud == self.audience
                or (isinstance(aud, list) and self.audience in aud)):
            raise InvalidSvid(f"is not for this audience ({self.audience!r})")
        exp = _number(claims, "exp")
        if exp is None:
            raise InvalidSvid("has no expiry (`exp`)")
        return _Verified(str(sub), exp, _number(claims, "nbf"))

    def _remember(self, token: str, verified: _Verified, now: datetime) -> None:
        cache = self._cache
        if len(cache) >= CACHE_SIZE:
            with self._evicting:
                # Expired tokens go first (they can never pass again); if the cache is still
                # full of live ones, it starts over rather than tracking recency on every hit.
                at = now.timestamp()
                for t, v in list(cache.items()):
                    if at >= v.exp + self.leeway:
                        cache.pop(t, None)
                if len(cache) >= CACHE_SIZE:
                    cache.clear()
        cache[token] = verified


def _padded(segment: str) -> str:
    return segment + "=" * (-len(segment) % 4)


def _json_object(payload: bytes) -> dict[str, Any]:
    claims = json.loads(payload)
    if not isinstance(claims, dict):
        raise ValueError("claims are not an object")
    return claims
