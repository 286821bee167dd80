"""`agp.load_bundle(path, trust=, audience=, require_identity=, leeway=, issuer_key=, issuer=,
store=)`: a bundle verifies identities and signs grants as `agp.load` does."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import agp
from agp.cli import main
from agp.identity import keys
from agp.store.memory import MemoryStore

POLICY = """\
permit lookups on crm.lookup ttl 5m
permit verified_kb on kb.search when agent.verified ttl 1m
"""
SUB = "spiffe://acme.com/agents/bot"
NOW = 1_900_000_000
NOW_TEXT = "2030-03-17T17:46:40Z"
SIGNER = keys.generate("p256")
ISSUER = keys.generate()
TRUST = {"acme.com": {"keys": [{**keys.public_jwks(SIGNER)["keys"][0], "use": "jwt-svid"}]}}


def svid(**changes) -> str:
    options = {"sub": SUB, "audience": "agp", "ttl": 300, "now": NOW - 10, **changes}
    return keys.mint_svid(SIGNER, options["sub"], options["audience"], options["ttl"],
                          now=options["now"])


def request(agent: dict, tool: str = "kb.search") -> dict:
    return {"agent": agent, "tool": tool, "args": {"q": "refunds"}, "now": NOW_TEXT}


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    (root / "p.agp").write_text(POLICY)
    result = CliRunner().invoke(main, ["compile", "-p", str(root / "p.agp"),
                                       "-o", str(root / "p.agpb")])
    assert result.exit_code == 0, result.output
    return root / "p.agp", root / "p.agpb"


def options(**changes) -> dict:
    return {"trust": TRUST, "audience": "agp", "issuer_key": ISSUER,
            "issuer": "agp://acme.com/pdp", **changes}


CASES = [
    ({"svid": svid()}, "allow", ["verified_kb"]),
    ({"svid": svid(now=NOW - 400)}, "deny", ["identity.invalid"]),  # expired
    ({"svid": svid(audience="other")}, "deny", ["identity.invalid"]),
    ({"id": SUB}, "deny", ["identity.missing"]),
    ({"id": "spiffe://acme.com/agents/other", "svid": svid()}, "deny", ["identity.mismatch"]),
]


@pytest.mark.parametrize(("agent", "decision", "rules"), CASES)
def test_a_bundle_verifies_identities_as_load_does(paths, agent, decision, rules):
    source, bundle = paths
    from_bundle = agp.load_bundle(bundle, **options())
    from_source = agp.load(source, **options())
    d = from_bundle.decide(request(agent))
    assert (d.decision, d.rules) == (decision, rules)
    assert d.errors == from_source.decide(request(agent)).errors
    if decision == "allow":  # a grant, signed with the issuer key, for a verified agent
        claims = from_bundle.grants.verify(d.grant, tool="kb.search", args={"q": "refunds"},
                                           now=NOW_TEXT)
        assert (claims["sub"], claims["iss"]) == (SUB, "agp://acme.com/pdp")
        assert claims["agp"]["policy"] == from_source.policy_hash
    else:
        assert d.grant is None


def test_require_identity_false_and_leeway_reach_a_bundle(paths):
    _, bundle = paths
    store = MemoryStore()
    engine = agp.load_bundle(bundle, **options(require_identity=False, leeway=30), store=store)
    assert engine.store is store  # grants are recorded where the caller said
    asserted = engine.decide(request({"id": SUB}, tool="crm.lookup"))
    # Accepted, unproven: allowed, but no grant for an asserted identity where trust is set.
    assert (asserted.decision, asserted.grant) == ("allow", None)
    assert engine.decide(request({"id": SUB})).decision == "deny"  # not agent.verified
    # Expired 20 s before `now`: within the 30 s of leeway.
    late = engine.decide(request({"svid": svid(now=NOW - 320)}))
    assert (late.decision, late.rules) == ("allow", ["verified_kb"])


def test_a_bundle_without_options_is_as_before(paths):
    _, bundle = paths
    engine = agp.load_bundle(bundle)
    assert engine.decide(request({"id": SUB}, tool="crm.lookup")).decision == "allow"
    # No trust: an SVID cannot be verified, and is refused rather than ignored.
    assert engine.decide(request({"svid": svid()})).rules == ["identity.invalid"]
    with pytest.raises(ValueError, match="no issuer_key"):
        engine.grants  # noqa: B018 - the property raises


@pytest.mark.parametrize(("bad", "message"), [
    ({"audience": None}, "trust needs an audience"),
    ({"trust": None}, "audience is the audience of JWT-SVIDs"),
    ({"leeway": -1}, "leeway"),
    ({"issuer": None}, "issuer"),
    ({"issuer_key": {"kty": "oct", "k": "c2VjcmV0"}}, "issuer key"),
])
def test_a_bundle_refuses_options_that_do_not_fit_as_load_does(paths, bad, message):
    source, bundle = paths
    with pytest.raises(ValueError, match=message):
        agp.load_bundle(bundle, **options(**bad))
    with pytest.raises(ValueError, match=message):
        agp.load(source, **options(**bad))
