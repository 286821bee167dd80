"""JSON Web Keys (RFC 7517): which algorithms a key may verify, issuer keys, RFC 7638 thumbprints.

The one rule that keeps algorithm confusion out: a key verifies only the algorithms of its own
type (an RSA key RS*/PS*, a P-256 key ES256, an Ed25519 key EdDSA), never one the token's header
picks on its own, and never an HMAC (a public key is public: as an HMAC secret it would let
anyone sign).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from agp.identity.canonical import canonical_json

# IDENTITY.md §1: what a JWT-SVID may be signed with.
SVID_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
                             "PS256", "PS384", "PS512", "EdDSA"})

_RSA = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class KeyProblem(ValueError):
    """A key or key set that cannot be used; the message says why (never the key)."""


def algorithms_for(jwk: dict[str, Any]) -> frozenset[str]:
    """The signature algorithms a public JWK may verify: those of its type, narrowed by its
    `alg` when it names one. Empty for a symmetric key or an unknown type.

    >>> sorted(algorithms_for({"kty": "EC", "crv": "P-256"}))
    ['ES256']
    >>> sorted(algorithms_for({"kty": "oct", "k": "c2VjcmV0"}))
    []
    """
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        allowed = _RSA
    elif kty == "EC" and crv in _EC:
        allowed = frozenset({_EC[crv]})
    elif kty == "OKP" and crv in ("Ed25519", "Ed448"):
        allowed = frozenset({"EdDSA"})
    else:
        return frozenset()
    if "alg" in jwk:
        return allowed & {jwk["alg"]}
    return allowed


def verifiers(jwk: dict[str, Any]) -> dict[str, jwt.PyJWK]:
    """One PyJWK per algorithm the key may verify: PyJWT then refuses a token whose header names
    another algorithm than the key object's (no confusion even if the header lies)."""
    out = {}
    for alg in algorithms_for(jwk):
        try:
            out[alg] = jwt.PyJWK(jwk, algorithm=alg)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError) as exc:
            raise KeyProblem(f"key {jwk.get('kid')!r} cannot be used for {alg}: {exc}") from None
    return out


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 thumbprint of a key (SHA-256, base64url without padding)."""
    required = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"),
                "RSA": ("e", "kty", "n")}.get(jwk.get("kty", ""))
    if required is None or any(not isinstance(jwk.get(m), str) for m in required):
        raise KeyProblem(f"cannot take the thumbprint of a key of type {jwk.get('kty')!r}")
    digest = hashlib.sha256(canonical_json({m: jwk[m] for m in required})).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def read_json(source: str | os.PathLike[str] | dict[str, Any], what: str) -> dict[str, Any]:
    """A JSON object given as a dict or as the path of a file holding one."""
    if isinstance(source, dict):
        return source
    try:
        value = json.loads(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyProblem(f"cannot read the {what} {os.fspath(source)}: "
                        f"{exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyProblem(f"the {what} {os.fspath(source)} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise KeyProblem(f"the {what} {os.fspath(source)} must hold a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class IssuerKey:
    """A private signing key for grants: Ed25519 (alg EdDSA) or P-256 (alg ES256)."""

    kid: str
    alg: str
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    public_jwk: dict[str, Any]  # with kid, alg and use

    @property
    def verifier(self) -> jwt.PyJWK:
        return jwt.PyJWK(self.public_jwk, algorithm=self.alg)


def issuer_key(source: str | os.PathLike[str] | dict[str, Any]) -> IssuerKey:
    """Load a private JWK (a dict or a path): Ed25519 (`"kty": "OKP", "crv": "Ed25519"`) or
    P-256 (`"kty": "EC", "crv": "P-256"`). Its `kid` is kept, else the thumbprint is used."""
    jwk = read_json(source, "issuer key")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    public_members: tuple[str, ...]
    if (kty, crv) == ("OKP", "Ed25519"):
        alg, public_members = "EdDSA", ("kty", "crv", "x")
    elif (kty, crv) == ("EC", "P-256"):
        alg, public_members = "ES256", ("kty", "crv", "x", "y")
    else:
        raise KeyProblem(f"an issuer key is Ed25519 (kty OKP) or P-256 (kty EC), not "
                        f"kty {kty!r} crv {crv!r}")
    if not isinstance(jwk.get("d"), str):
        raise KeyProblem("the issuer key must be a private key (it has no `d`)")
    try:
        private = (OKPAlgorithm if alg == "EdDSA" else ECAlgorithm).from_jwk(jwk)
    except (jwt.InvalidKeyError, ValueError, TypeError, KeyError) as exc:
        raise KeyProblem(f"the issuer key is not a valid {crv} key: {exc}") from None
    if not isinstance(private, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
        raise KeyProblem("the issuer key must be a private key")
    public = {m: jwk[m] for m in public_members}
    kid = jwk.get("kid")
    kid = kid if isinstance(kid, str) and kid else thumbprint(public)
    return IssuerKey(kid, alg, private, {**public, "kid": kid, "alg": alg, "use": "sig"})


def generate(curve: str = "ed25519") -> dict[str, Any]:
    """A new private JWK (`ed25519` or `p256`) whose kid is its RFC 7638 thumbprint."""
    jwk: dict[str, Any]
    if curve == "ed25519":
        jwk = OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate(), as_dict=True)
        alg = "EdDSA"
    elif curve == "p256":
        jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
        alg = "ES256"
    else:
        raise KeyProblem(f"unknown curve {curve!r}: use ed25519 or p256")
    return {**jwk, "kid": thumbprint(jwk), "alg": alg, "use": "sig"}


def public_jwks(private: dict[str, Any]) -> dict[str, Any]:
    """The public JWKS of a private issuer key: what tool servers need to verify grants."""
    return {"keys": [issuer_key(private).public_jwk]}


def mint_svid(private: dict[str, Any], sub: str, audience: str | list[str], ttl: int,
              now: float | None = None) -> str:
    """A JWT-SVID signed with `private` (any private JWK agp can verify), for tests and traces
    only: a real SVID comes from SPIRE or another SPIFFE issuer. `now` in seconds since the
    epoch (the clock when None); `exp` is `now + ttl`."""
    algs = algorithms_for({k: v for k, v in private.items() if k != "alg"})
    if not algs or not isinstance(private.get("d"), str) or not isinstance(private.get("kid"), str):
        raise KeyProblem("an SVID is signed with a private RSA, EC or OKP key that has a kid")
    alg = private["alg"] if private.get("alg") in algs else \
        "RS256" if "RS256" in algs else min(algs)
    try:
        key = jwt.PyJWK(private, algorithm=alg).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError) as exc:
        raise KeyProblem(f"the key cannot sign {alg}: {exc}") from None
    iat = int(now if now is not None else time.time())
    return jwt.encode({"sub": sub, "aud": audience, "iat": iat, "exp": iat + ttl}, key,
                      algorithm=alg, headers={"kid": private["kid"], "typ": "JWT"})
