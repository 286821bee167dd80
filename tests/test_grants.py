"""Just-in-time grants (IDENTITY.md §2, §3): exact claims, actor nesting, RFC 8785 digests,
verification with the public JWKS alone, every GrantError reason, approve, revocation, the
decision log, and the `agp keys` commands."""

import hashlib
import json
import math
import os
import stat
import struct

import jwt
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import agp
from agp.cli import main
from agp.identity import keys
from agp.identity.canonical import canonical_json
from agp.identity.grants import GrantError, args_digest
from agp.store import StoreUnavailable

POLICY = """\
agent bot "spiffe://acme.com/agents/bot"
task k {
  tools crm.lookup, payments.refund
}
permit lookups on crm.lookup ttl 5m
ask refund on payments.refund ttl 2m
forbid nope on shell.exec
"""
ISS = "agp://acme.com/pdp"
NOW = "2030-03-17T17:46:40.75Z"
T = 1_900_000_000  # NOW in whole seconds


@pytest.fixture(params=["ed25519", "p256"])
def issuer(request):
    return keys.generate(request.param)


@pytest.fixture
def engine(tmp_path, issuer):
    path = tmp_path / "p.agp"
    path.write_text(POLICY)
    return agp.load(path, issuer_key=issuer, issuer=ISS)


def request(tool="crm.lookup", chain=(), agent="bot", args=None, task=None, **more):
    r = {"agent": {"id": agent}, "tool": tool, "now": NOW, "args": args or {"id": 7},
         "chain": [{"principal": p, "kind": k} for p, k in chain], **more}
    if task is not None:
        r["task"] = task
    return r


def decoded(token):
    return jwt.decode(token, options={"verify_signature": False})


def test_exact_claims_and_header(engine, issuer):
    d = engine.decide(request(task={"id": "t-1", "kind": "k"}))
    assert d.decision == "allow" and d.grant is not None
    header = jwt.get_unverified_header(d.grant)
    assert header["alg"] == ("EdDSA" if issuer["crv"] == "Ed25519" else "ES256")
    assert header["kid"] == issuer["kid"] == keys.thumbprint(issuer)
    c = decoded(d.grant)
    assert set(c) == {"iss", "sub", "aud", "iat", "exp", "jti", "agp"}
    assert (c["iss"], c["sub"], c["aud"]) == (ISS, "bot", "crm.lookup")
    assert (c["iat"], c["exp"]) == (T, T + 300)
    assert c["agp"] == {"task": "t-1", "kind": "k", "tool": "crm.lookup",
                        "args": args_digest({"id": 7}), "rules": ["lookups"],
                        "policy": engine.policy_hash}
    assert "task" not in decoded(engine.decide(request()).grant)["agp"]
    assert decoded(engine.decide(request()).grant)["jti"] != c["jti"]
    assert d.to_json()["grant"] == d.grant
    for other in (request("payments.refund"), request("shell.exec")):
        assert engine.decide(other).grant is None
        assert "grant" not in engine.decide(other).to_json()


@pytest.mark.parametrize("hops, act", [
    ([], None),
    ([("user:alice", "human"), ("bot", "agent")], {"sub": "bot"}),
    ([("user:alice", "human"), ("planner", "agent"), ("bot", "agent")],
     {"sub": "bot", "act": {"sub": "planner"}}),
    ([("user:alice", "human"), ("planner", "agent"), ("router", "agent"), ("bot", "agent")],
     {"sub": "bot", "act": {"sub": "router", "act": {"sub": "planner"}}}),
    ([("svc:cron", "service"), ("ops", "human"), ("bot", "agent")], {"sub": "bot"}),
])
def test_act_nests_the_chain(engine, hops, act):
    c = decoded(engine.decide(request(chain=hops)).grant)
    assert c["sub"] == (hops[0][0] if hops else "bot")
    assert c.get("act") == act


def test_the_ten_line_verifier_needs_only_the_public_jwks(engine, issuer):
    public = keys.public_jwks(issuer)
    assert all("d" not in k for k in public["keys"])
    live = request(args={"amount": 1.5, "to": "é"})
    del live["now"]  # PyJWT checks `exp` and `iat` against the clock
    grant = engine.decide(live).grant
    # What a tool server runs: plain PyJWT and the issuer's public JWKS.
    jwks = jwt.PyJWKSet.from_dict(public)
    key = jwks[jwt.get_unverified_header(grant)["kid"]]
    claims = jwt.decode(grant, key, algorithms=["EdDSA", "ES256"], audience="crm.lookup",
                        issuer=ISS, options={"require": ["exp", "iat", "jti"]})
    body = json.dumps({"amount": 1.5, "to": "é"}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    assert claims["agp"]["args"] == "sha256:" + hashlib.sha256(body.encode()).hexdigest()
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(grant, key, algorithms=["EdDSA", "ES256"], audience="other", issuer=ISS)


class Ledger:
    """A ledger whose store is down."""

    def record_grant(self, jti, task, exp):
        raise StoreUnavailable("down")

    def grant_revoked(self, jti, task):
        raise StoreUnavailable("down")

    def revoke(self, *args):
        raise StoreUnavailable("down")

    revoke_task = revoke


def test_every_reason_of_grant_error(engine, tmp_path):
    g = engine.grants
    grant = engine.decide(request(task={"id": "t-9", "kind": "k"})).grant
    assert g.verify(grant, tool="crm.lookup", args={"id": 7}, now=NOW)["aud"] == "crm.lookup"

    def reason(token, **kw):
        with pytest.raises(GrantError) as e:
            g.verify(token, **{"now": NOW, **kw})
        return e.value.reason

    head, body, sig = grant.split(".")
    assert reason("nonsense") == "malformed"
    assert reason(head + "." + jwt.utils.base64url_encode(b"[1]").decode() + "." + sig) \
        == "malformed"
    no_jti = {k: v for k, v in decoded(grant).items() if k != "jti"}
    assert reason(jwt.encode(no_jti, g.key.private, g.key.alg, {"kid": g.key.kid})) \
        == "malformed"
    other = keys.issuer_key(keys.generate())
    assert reason(jwt.encode(decoded(grant), other.private, other.alg,
                             {"kid": g.key.kid})) == "signature"
    assert reason(jwt.encode(decoded(grant), other.private, other.alg,
                             {"kid": other.kid})) == "signature"
    assert reason(jwt.encode({**decoded(grant), "iss": "agp://evil"}, g.key.private,
                             g.key.alg, {"kid": g.key.kid})) == "signature"
    assert reason(grant, now="2030-03-17T17:51:40Z") == "expired"  # now == exp
    assert reason(grant, now="2030-03-17T17:45:39Z") == "expired"  # iat > now + 60 s
    assert g.verify(grant, now="2030-03-17T17:45:40Z")  # iat == now + 60 s
    assert reason(grant, tool="other") == "audience"
    assert reason(grant, tool="crm.lookup", args={"id": 8}) == "args"
    # precedence: expired before audience before args
    assert reason(grant, tool="x", args={}, now="2031-01-01T00:00:00Z") == "expired"
    assert reason(grant, tool="x", args={}) == "audience"
    # revocation, then the store going down
    g.revoke(decoded(grant)["jti"])
    assert reason(grant, now="2031-01-01T00:00:00Z") == "revoked"  # revoked before expired
    assert engine.grants.introspect(grant, now=NOW) == {"active": False}
    fresh = engine.decide(request(task={"id": "t-9", "kind": "k"})).grant
    assert engine.grants.introspect(fresh, now=NOW)["active"] is True
    g.revoke_task("t-9")
    assert reason(fresh) == "revoked"
    later = engine.decide(request(task={"id": "t-9", "kind": "k"})).grant
    assert g.verify(later, now=NOW)  # revoke_task revokes the grants minted so far
    g.ledger = Ledger()
    assert reason(later) == "unavailable"
    assert reason("nonsense") == "malformed"  # malformed comes first
    assert g.introspect(later, now=NOW) == {"active": False}
    with pytest.raises(GrantError) as e:
        g.revoke("x")
    assert e.value.reason == "unavailable"


def test_a_grant_the_store_cannot_record_becomes_a_deny(engine):
    engine.grants.ledger = Ledger()
    d = engine.decide(request())
    assert (d.decision, d.rules, d.grant) == ("deny", ["store.unavailable"], None)
    with pytest.raises(GrantError) as e:
        engine.approve(request("payments.refund"), d, approver="user:alice")
    assert e.value.reason == "unavailable"


def test_approve_grants_a_fresh_ask_only(engine):
    asked = request("payments.refund")
    d = engine.decide(asked)
    assert d.decision == "ask" and d.grant is None
    token = engine.approve(asked, d, approver="user:alice")
    c = engine.grants.verify(token, tool="payments.refund", args={"id": 7}, now=NOW)
    assert c["agp"]["approver"] == "user:alice" and c["agp"]["rules"] == ["refund"]
    assert c["exp"] - c["iat"] == d.ttl > 0  # the fresh decision's TTL
    later = engine.approve(asked, d, approver="user:bob", now="2030-03-18T00:00:00Z")
    assert decoded(later)["iat"] == T + 22_400  # `now` given to approve is the grant's time
    for not_ask in (request(), request("shell.exec"), {"tool": "x"}):
        with pytest.raises(GrantError) as e:
            engine.approve(not_ask, d, approver="user:alice")  # the given decision is ignored
        assert e.value.reason == "not-ask"


def test_with_trust_only_a_verified_identity_gets_a_grant(tmp_path, issuer):
    signer = keys.generate()
    trust = {"acme.com": {"keys": [{k: v for k, v in signer.items() if k not in ("d", "use")}]}}
    path = tmp_path / "p.agp"
    path.write_text(POLICY)
    engine = agp.load(path, trust=trust, audience="agp", require_identity=False,
                      issuer_key=issuer, issuer=ISS)
    svid = keys.mint_svid(signer, "spiffe://acme.com/agents/bot", "agp", 600, now=T - 5)
    proven = engine.decide({**request(), "agent": {"svid": svid}})
    assert proven.decision == "allow"
    assert decoded(proven.grant)["sub"] == "spiffe://acme.com/agents/bot"
    asserted = engine.decide(request())
    assert asserted.decision == "allow" and asserted.grant is None
    with pytest.raises(GrantError) as e:
        engine.approve(request("payments.refund"), asserted, approver="user:alice")
    assert e.value.reason == "unverified"


def test_the_decision_log_keeps_only_the_jti(engine, tmp_path):
    log = engine.log_decisions(tmp_path / "decisions.jsonl")
    d = engine.decide(request())
    log.flush()
    text = (tmp_path / "decisions.jsonl").read_text()
    assert d.grant not in text and d.grant.split(".")[2] not in text
    assert json.loads(text.splitlines()[-1])["audit"]["grant"] == decoded(d.grant)["jti"]


def test_no_issuer_no_grants(tmp_path):
    path = tmp_path / "p.agp"
    path.write_text(POLICY)
    engine = agp.load(path)
    assert engine.decide(request()).grant is None
    with pytest.raises(ValueError, match="issuer_key"):
        engine.grants  # noqa: B018


# ---- RFC 8785 ---------------------------------------------------------------------------------

RFC8785_NUMBERS = [  # RFC 8785 appendix B: IEEE 754 bits -> JSON
    ("0000000000000000", "0"), ("8000000000000000", "0"), ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"), ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"), ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"), ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"), ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"), ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"), ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"), ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"), ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"), ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize("bits, text", RFC8785_NUMBERS)
def test_rfc8785_numbers(bits, text):
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert canonical_json(value) == text.encode()


def test_rfc8785_examples():
    value = json.loads(r'''{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }''')
    assert canonical_json(value) == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}').encode()
    order = json.loads(r'''{"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\ud83d\ude00": 5,
                            "\u0080": 6, "\u00f6": 7}''')
    assert list(json.loads(canonical_json(order)).values()) == [2, 4, 6, 7, 1, 5, 3]
    assert canonical_json({"n": 2 ** 60, "t": True}) == b'{"n":1152921504606847000,"t":true}'


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-2 ** 53, 2 ** 53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


def floats(value):
    if isinstance(value, dict):
        return {k: floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [floats(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


@given(json_values)
def test_canonical_json_reads_back_as_the_same_value(value):
    text = canonical_json(value)
    assert floats(json.loads(text)) == floats(value)
    assert canonical_json(json.loads(text)) == text  # idempotent


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_canonical_numbers_round_trip(x):
    assert float(canonical_json(x)) == x or (x == 0 and math.copysign(1, x) < 0)


# ---- the keys command -------------------------------------------------------------------------

def test_keys_generate_public_svid_and_eval(tmp_path):
    runner = CliRunner()
    key = tmp_path / "issuer.jwk"
    r = runner.invoke(main, ["keys", "generate", "-o", str(key)])
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    jwk = json.loads(key.read_text())
    assert jwk["kid"] == keys.thumbprint(jwk) and jwk["crv"] == "Ed25519"
    r = runner.invoke(main, ["keys", "generate", "-o", str(key)])
    assert r.exit_code == 2 and "--force" in r.output and json.loads(key.read_text()) == jwk
    r = runner.invoke(main, ["keys", "generate", "-o", str(key), "--force", "--curve", "p256"])
    assert r.exit_code == 0 and json.loads(key.read_text())["crv"] == "P-256"
    r = runner.invoke(main, ["keys", "public", str(key)])
    public = json.loads(r.output)
    assert r.exit_code == 0 and "d" not in public["keys"][0]
    signer = tmp_path / "signer.jwk"
    runner.invoke(main, ["keys", "generate", "-o", str(signer)])
    trust = tmp_path / "trust.json"
    r = runner.invoke(main, ["keys", "public", str(signer), "--trust-domain", "acme.com"])
    trust.write_text(r.output)
    r = runner.invoke(main, ["keys", "svid", "--key", str(signer), "--sub",
                             "spiffe://acme.com/agents/bot", "--aud", "agp", "--ttl", "10m"])
    assert r.exit_code == 0
    svid = r.output.strip()
    policy = tmp_path / "p.agp"
    policy.write_text(POLICY)
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"agent": {"svid": svid}, "tool": "crm.lookup"}))
    r = runner.invoke(main, ["eval", "-p", str(policy), "--trust", str(trust), "--audience",
                             "agp", "--issuer-key", str(key), "--issuer", ISS, str(req)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["decision"] == "allow"
    claims = jwt.decode(out["grant"], jwt.PyJWKSet.from_dict(public).keys[0],
                        algorithms=["ES256"], audience="crm.lookup")
    assert claims["sub"] == "spiffe://acme.com/agents/bot"
    r = runner.invoke(main, ["eval", "-p", str(policy), "--trust", str(trust), str(req)])
    assert r.exit_code == 2 and "audience" in r.output
    r = runner.invoke(main, ["eval", "-p", str(policy), "--issuer-key", str(tmp_path / "none"),
                             "--issuer", ISS, str(req)])
    assert r.exit_code == 2 and "cannot read" in r.output
