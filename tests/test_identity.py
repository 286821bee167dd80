"""Verified workload identity (IDENTITY.md §1): hostile JWT-SVIDs are refused with the right code
by both evaluators, through `agp.load(..., trust=..., audience=...)` and `decide`."""

import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

import agp
from agp.identity import keys
from agp.identity.canonical import canonical_json
from agp.identity.svid import CACHE_SIZE, SvidVerifier, load_trust, spiffe_trust_domain

POLICY = """\
permit lookups on crm.lookup ttl 5m
permit verified_kb on kb.search when agent.verified ttl 1m
ask refund on payments.refund
"""
SUB = "spiffe://acme.com/agents/bot"
NOW = 1_900_000_000  # the decisions' `now`, in seconds
NOW_TEXT = "2030-03-17T17:46:40Z"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public(private_key, kid: str, **extra) -> dict:
    algorithm = {ec.EllipticCurvePrivateKey: ECAlgorithm, rsa.RSAPrivateKey: RSAAlgorithm,
                 ed25519.Ed25519PrivateKey: OKPAlgorithm}
    for kind, alg in algorithm.items():
        if isinstance(private_key, kind):
            return {**alg.to_jwk(private_key.public_key(), as_dict=True), "kid": kid, **extra}
    raise AssertionError(private_key)


EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())  # nobody trusts it
ENC_KEY = ec.generate_private_key(ec.SECP256R1())

TRUST = {
    "acme.com": {"keys": [public(EC_KEY, "ec-1"), public(ED_KEY, "ed-1", use="jwt-svid"),
                          public(RSA_KEY, "rsa-1"), public(ENC_KEY, "enc-1", use="enc")]},
    "partner.org": {"keys": [public(OTHER_KEY, "partner-1")]},
}


def claims(**changes) -> dict:
    base = {"sub": SUB, "aud": "agp", "exp": NOW + 300, "iat": NOW - 10}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(key=EC_KEY, alg="ES256", kid="ec-1", payload=None, **header) -> str:
    headers = {"kid": kid, **header} if kid is not None else header
    return jwt.encode(payload if payload is not None else claims(), key, algorithm=alg,
                      headers=headers)


def unsigned(header: dict, payload: dict, signature: bytes = b"") -> str:
    """A token assembled by hand, for what no library will sign."""
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()),
                     b64(signature)])


def hs256_with_public_key(secret: bytes) -> str:
    signing_input = ".".join([b64(json.dumps({"alg": "HS256", "kid": "ec-1"}).encode()),
                              b64(json.dumps(claims()).encode())])
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


@pytest.fixture(scope="module", params=[True, False], ids=["compiled", "reference"])
def engine(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("identity") / "policy.agp"
    path.write_text(POLICY)
    return agp.load(path, compiled=request.param, trust=TRUST, audience="agp")


def decide(engine, svid=None, agent_id=None, tool="kb.search"):
    agent = {k: v for k, v in (("id", agent_id), ("svid", svid)) if v is not None}
    return engine.decide({"agent": agent, "tool": tool, "now": NOW_TEXT})


@pytest.mark.parametrize("svid", [
    token(),
    token(ED_KEY, "EdDSA", "ed-1"),
    token(RSA_KEY, "RS256", "rsa-1"),
    token(RSA_KEY, "PS384", "rsa-1"),
    token(payload=claims(aud=["other", "agp"])),
    token(payload=claims(nbf=NOW)),
    token(typ="JWT"),
    token(typ="JOSE"),
], ids=["es256", "eddsa", "rs256", "ps384", "aud-list", "nbf-now", "typ-jwt", "typ-jose"])
def test_a_valid_svid_proves_its_subject(engine, svid):
    d = decide(engine, svid)
    assert (d.decision, d.rules, d.errors) == ("allow", ["verified_kb"], [])
    assert decide(engine, svid, agent_id=SUB).decision == "allow"


HOSTILE = {
    "forged-signature": (token(OTHER_KEY, kid="ec-1"), "bad signature"),
    "expired": (token(payload=claims(exp=NOW)), "expired"),
    "nbf-in-future": (token(payload=claims(nbf=NOW + 1)), "not valid yet"),
    "no-exp": (token(payload=claims(exp=None)), "no expiry"),
    "exp-not-a-number": (token(payload=claims(exp="tomorrow")), "not a number"),
    "wrong-audience": (token(payload=claims(aud="someone-else")), "audience"),
    "no-audience": (token(payload=claims(aud=None)), "audience"),
    "unknown-trust-domain": (token(payload=claims(sub="spiffe://evil.com/agents/bot")),
                             "unknown trust domain"),
    "key-of-another-domain": (token(OTHER_KEY, kid="partner-1"), "unknown key"),
    "no-path": (token(payload=claims(sub="spiffe://acme.com")), "SPIFFE ID"),
    "slash-only-path": (token(payload=claims(sub="spiffe://acme.com/")), "SPIFFE ID"),
    "dot-segment": (token(payload=claims(sub="spiffe://acme.com/a/../b")), "SPIFFE ID"),
    "not-spiffe": (token(payload=claims(sub="https://acme.com/bot")), "SPIFFE ID"),
    "no-kid": (token(kid=None), "no `kid`"),
    "unknown-kid": (token(kid="nobody"), "unknown key"),
    "alg-none": (unsigned({"alg": "none", "kid": "ec-1"}, claims()), "not allowed"),
    "alg-none-signed": (unsigned({"alg": "none", "kid": "ec-1"}, claims(), b"x"), "not allowed"),
    "hs256-public-jwk-secret": (hs256_with_public_key(canonical_json(TRUST["acme.com"]["keys"][0])),
                                "not allowed"),
    "hs256-public-pem-secret": (hs256_with_public_key(EC_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)),
        "not allowed"),
    "rs256-header-on-ec-key": (token(RSA_KEY, "RS256", kid="ec-1"), "cannot verify"),
    "es256-header-on-rsa-key": (token(EC_KEY, "ES256", kid="rsa-1"), "cannot verify"),
    "es384-header-on-p256-key": (token(ec.generate_private_key(ec.SECP384R1()), "ES384",
                                       kid="ec-1"), "cannot verify"),
    "crit-header": (token(crit=["exp"]), "crit"),
    "bad-typ": (token(typ="at+jwt"), "typ"),
    "use-enc-key-ignored": (token(ENC_KEY, kid="enc-1"), "unknown key"),
    "garbage": ("not.a.token", "not a JWT"),
    "two-parts": ("abc.def", "not a JWT"),
    "claims-not-object": (unsigned({"alg": "ES256", "kid": "ec-1"}, ["sub"]), "not a JWT"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_svid_is_refused_as_invalid(engine, name):
    svid, why = HOSTILE[name]
    for agent_id in (None, SUB):  # asserting the right id beside it does not help
        d = decide(engine, svid, agent_id)
        assert d.decision == "deny"
        assert d.rules == ["identity.invalid"]
        assert len(d.errors) == 1 and why in d.errors[0], d.errors
        assert svid not in d.errors[0]  # the reason never echoes the token


def test_identity_missing_mismatch_and_asserted_ids(tmp_path):
    path = tmp_path / "p.agp"
    path.write_text(POLICY)
    strict = agp.load(path, trust=TRUST, audience="agp")
    d = decide(strict, agent_id=SUB, tool="crm.lookup")
    assert (d.decision, d.rules) == ("deny", ["identity.missing"])
    d = decide(strict, token(), agent_id="spiffe://acme.com/agents/other", tool="crm.lookup")
    assert (d.decision, d.rules) == ("deny", ["identity.mismatch"])
    migrating = agp.load(path, trust=TRUST, audience="agp", require_identity=False)
    d = decide(migrating, agent_id=SUB, tool="crm.lookup")
    assert (d.decision, d.rules) == ("allow", ["lookups"])
    # an asserted id is not a verified one
    assert decide(migrating, agent_id=SUB, tool="kb.search").decision == "deny"
    assert decide(migrating, token()).decision == "allow"
    no_trust = agp.load(path)
    d = decide(no_trust, token(), tool="crm.lookup")
    assert (d.decision, d.rules) == ("deny", ["identity.invalid"])


def test_leeway_applies_to_exp_and_nbf(tmp_path):
    path = tmp_path / "p.agp"
    path.write_text(POLICY)
    lenient = agp.load(path, trust=TRUST, audience="agp", leeway=30)
    assert decide(lenient, token(payload=claims(exp=NOW - 29))).decision == "allow"
    assert decide(lenient, token(payload=claims(exp=NOW - 30))).rules == ["identity.invalid"]
    assert decide(lenient, token(payload=claims(nbf=NOW + 30))).decision == "allow"
    assert decide(lenient, token(payload=claims(nbf=NOW + 31))).rules == ["identity.invalid"]


def test_a_cached_token_is_still_checked_against_now(engine):
    svid = token(payload=claims(exp=NOW + 60))
    assert decide(engine, svid).decision == "allow"
    d = engine.decide({"agent": {"svid": svid}, "tool": "kb.search",
                       "now": "2030-03-17T17:47:40Z"})  # NOW + 60
    assert d.rules == ["identity.invalid"] and "expired" in d.errors[0]


def test_the_cache_is_bounded():
    verifier = SvidVerifier(load_trust(TRUST), audience="agp")
    now = datetime.fromtimestamp(NOW, timezone.utc)
    for i in range(CACHE_SIZE + 10):
        assert verifier(None, token(payload=claims(jti=str(i))), now).verified
    assert len(verifier._cache) <= CACHE_SIZE


@pytest.mark.parametrize("options, message", [
    ({"trust": TRUST}, "audience"),
    ({"audience": "agp"}, "needs trust"),
    ({"require_identity": True}, "needs trust"),
    ({"trust": TRUST, "audience": "agp", "leeway": -1}, "leeway"),
    ({"trust": {"ACME": {"keys": []}}, "audience": "agp"}, "trust domain"),
    ({"trust": {"acme.com": []}, "audience": "agp"}, "JWKS"),
    ({"trust": "/nonexistent/trust.json", "audience": "agp"}, "cannot read"),
    ({"issuer_key": keys.generate()}, "issuer"),
    ({"issuer": "agp://x"}, "issuer_key"),
    ({"issuer_key": {"kty": "oct", "k": "c2VjcmV0"}, "issuer": "agp://x"}, "Ed25519"),
    ({"issuer_key": {k: v for k, v in keys.generate().items() if k != "d"},
      "issuer": "agp://x"}, "private"),
])
def test_options_that_do_not_fit_raise_value_error(tmp_path, options, message):
    path = tmp_path / "p.agp"
    path.write_text(POLICY)
    with pytest.raises(ValueError, match=message):
        agp.load(path, **options)


def test_spiffe_ids():
    assert spiffe_trust_domain("spiffe://acme.com/a/b-c_d.e") == "acme.com"
    for bad in ("spiffe://acme.com", "spiffe://acme.com/", "spiffe://Acme.com/a",
                "spiffe://acme.com/a//b", "spiffe://acme.com/a?x=1", "SPIFFE://acme.com/a",
                "spiffe://acme.com/./a", "spiffe://user@acme.com/a", 42, None):
        assert spiffe_trust_domain(bad) is None, bad


def test_without_trust_or_issuer_decide_is_the_evaluators_own(tmp_path):
    path = tmp_path / "p.agp"
    path.write_text(POLICY)
    engine = agp.load(path)
    assert engine.decide == engine.evaluator.decide  # no extra layer on the hot path
    trusted = agp.load(path, trust=TRUST, audience="agp")
    assert trusted.decide == trusted.evaluator.decide
    trusted.reload()  # the verifier survives a reload
    assert decide(trusted, token()).decision == "allow"
    assert decide(trusted, agent_id=SUB, tool="crm.lookup").rules == ["identity.missing"]


# ---- property: no generated token is accepted unless it is valid -----------------------------

SIGNERS = {"ec-1": (EC_KEY, "ES256"), "ed-1": (ED_KEY, "EdDSA"), "rsa-1": (RSA_KEY, "RS256"),
           "partner-1": (OTHER_KEY, "ES256"), "enc-1": (ENC_KEY, "ES256"),
           "stranger": (ec.generate_private_key(ec.SECP256R1()), "ES256")}
TRUSTED_SIGNERS = {"ec-1", "ed-1", "rsa-1"}  # of acme.com, and usable


@st.composite
def tokens(draw):
    signer = draw(st.sampled_from(sorted(SIGNERS)))
    key, right_alg = SIGNERS[signer]
    kid = draw(st.sampled_from([signer, signer, "ec-1", "rsa-1", "nobody", None]))
    alg = draw(st.sampled_from([right_alg, right_alg, "ES256", "RS256", "PS256", "EdDSA",
                                "HS256", "none", "ES384"]))
    sub = draw(st.sampled_from([SUB, SUB, "spiffe://partner.org/x", "spiffe://acme.com",
                                "spiffe://evil.com/x", 7, None]))
    aud = draw(st.sampled_from(["agp", "agp", ["agp", "x"], "x", [], None]))
    exp = draw(st.one_of(st.none(), st.integers(NOW - 100, NOW + 100), st.just("soon")))
    nbf = draw(st.one_of(st.none(), st.integers(NOW - 100, NOW + 100)))
    header = draw(st.fixed_dictionaries({}, optional={
        "typ": st.sampled_from(["JWT", "JOSE", "jwt", "at+jwt"]),
        "crit": st.just(["exp"])}))
    tamper = draw(st.sampled_from(["none", "none", "signature", "payload"]))
    body = {k: v for k, v in {"sub": sub, "aud": aud, "exp": exp, "nbf": nbf}.items()
            if v is not None}
    full_header = {"alg": alg, **({"kid": kid} if kid is not None else {}), **header}
    can_sign = alg == right_alg
    if can_sign:
        text = jwt.encode(body, key, algorithm=alg, headers=full_header)
    else:  # a header naming another algorithm than the key's: signed by hand with the key's
        signing_input = ".".join([b64(json.dumps(full_header).encode()),
                                  b64(json.dumps(body).encode())])
        signature = jwt.encode({}, key, algorithm=right_alg).split(".")[2] \
            if alg != "none" else ""
        text = signing_input + "." + signature
    if tamper == "signature":
        head, payload, sig = text.split(".")
        text = ".".join([head, payload, sig[::-1] if len(sig) > 1 else "AAAA"])
    elif tamper == "payload":
        head, payload, sig = text.split(".")
        text = ".".join([head, b64(json.dumps({**body, "sub": SUB + "x"}).encode()), sig])
    valid = (can_sign and tamper == "none" and kid == signer and signer in TRUSTED_SIGNERS
             and sub == SUB and (aud == "agp" or (isinstance(aud, list) and "agp" in aud))
             and isinstance(exp, int) and exp > NOW and (nbf is None or nbf <= NOW)
             and "crit" not in header and header.get("typ", "JWT") in ("JWT", "JOSE")
             and (alg != "none"))
    return text, valid


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(tokens())
def test_no_generated_token_is_allowed_unless_valid(engine, case):
    text, valid = case
    d = decide(engine, text)
    if valid:
        assert (d.decision, d.rules) == ("allow", ["verified_kb"]), d.errors
    else:
        assert d.decision == "deny" and d.rules == ["identity.invalid"], (d, text)


def test_agent_verified_needs_a_valid_token_even_when_asserted(engine):
    assert decide(engine, agent_id=SUB).rules == ["identity.missing"]
