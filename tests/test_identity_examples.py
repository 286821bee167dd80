"""examples/identity: the walk-through runs as its README says, and every grant that `agp eval`
prints in it verifies with nothing but the public JWKS.

The README's ```sh blocks marked `<!-- run -->` are run in order, with bash, in a copy of the
folder; the one marked `<!-- run: empty folder -->` (how the example files were made) in an
empty folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from support import ROOT

from agp.identity import keys

HERE = ROOT / "examples" / "identity"
README = HERE / "README.md"
BLOCK = re.compile(r"^<!-- run(?P<empty>: empty folder)? -->\n```sh\n(?P<body>.*?)^```$",
                   re.S | re.M)
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
       "NO_COLOR": "1"}


def blocks(empty: bool) -> list[str]:
    return [m["body"] for m in BLOCK.finditer(README.read_text()) if bool(m["empty"]) == empty]


def sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def decisions(text: str) -> list[dict]:
    """The Decision JSON documents printed in `text` (among other lines)."""
    found, decoder = [], json.JSONDecoder()
    for m in re.finditer(r"^\{", text, re.M):
        try:
            doc, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(doc, dict) and "decision" in doc:
            found.append(doc)
    return found


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """The outputs of the walk-through's blocks, run in order in a copy of the folder."""
    work = tmp_path_factory.mktemp("identity") / "identity"
    shutil.copytree(HERE, work)
    outputs = []
    for body in blocks(empty=False):
        result = sh(body, work)
        assert result.returncode == 0, f"{body}\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    return outputs


def test_the_walk_through_has_its_steps():
    assert len(blocks(empty=False)) == 4 and len(blocks(empty=True)) == 1


def test_the_traces_pass_with_trust_and_fail_without(walk):
    assert "9 passed, 0 failed" in walk[0]
    without = sh("agp test -p policies traces", HERE)
    assert without.returncode == 1
    assert "identity.invalid: agent.svid was given, but no trust is configured" in without.stdout


def test_a_claim_alone_is_not_proof(walk):
    assert walk[1].splitlines()[:2] == ["deny (ttl 0s)", "  rules:   unproven_payment"]


def test_every_printed_grant_verifies_with_only_the_public_jwks(walk):
    printed = [d for out in walk for d in decisions(out)]
    assert [d["decision"] for d in printed] == ["allow"]
    jwks = jwt.PyJWKSet.from_dict(json.loads((HERE / "example-keys/grants-jwks.json").read_text()))
    for d in printed:
        assert (d["decision"] == "allow") == (d.get("grant") is not None)
        if d.get("grant") is None:
            continue
        header = jwt.get_unverified_header(d["grant"])
        claims = jwt.decode(d["grant"], jwks[header["kid"]], algorithms=["EdDSA", "ES256"],
                            audience="payments.refund", issuer="agp://acme.com/pdp",
                            options={"require": ["exp", "iat", "jti"]})
        assert claims["sub"] == "spiffe://acme.com/agents/payments-bot"
        assert claims["exp"] - claims["iat"] == d["ttl"] == 120
        assert claims["agp"]["rules"] == d["rules"] and claims["agp"]["policy"] == d["policy"]


def test_the_tool_server_accepts_the_call_and_refuses_others(walk):
    assert walk[3].splitlines()[0].startswith(
        "grant ok: spiffe://acme.com/agents/payments-bot may call payments.refund until ")
    assert walk[3].splitlines()[1:] == ["refused as it must be"]


def test_how_the_files_were_made_runs_in_an_empty_folder(tmp_path):
    (body,) = blocks(empty=True)
    result = sh(body, tmp_path)
    assert result.returncode == 0, result.stderr
    made = sorted(p.name for p in (tmp_path / "example-keys").iterdir())
    assert made == sorted(p.name for p in (HERE / "example-keys").iterdir()
                          if p.suffix in (".jwk", ".json"))
    assert len(result.stdout.split()) == 4  # the trace's four tokens
    for token in result.stdout.split():
        assert jwt.get_unverified_header(token)["alg"] == "EdDSA"


def test_the_committed_files_fit_together():
    def load(name: str) -> dict:
        return json.loads((HERE / "example-keys" / name).read_text())

    signer, partner, issuer = (load(f"{n}.jwk") for n in ("svid-signer", "partner-signer",
                                                           "issuer"))
    assert load("grants-jwks.json") == keys.public_jwks(issuer)
    (trusted,) = load("trust.json")["acme.com"]["keys"]
    assert list(load("trust.json")) == ["acme.com"] and trusted["kid"] == signer["kid"]
    assert "d" not in trusted and trusted["use"] == "jwt-svid"
    trace = (HERE / "traces" / "identity.trace.jsonl").read_text()
    kids = {jwt.get_unverified_header(t)["kid"] for t in re.findall(r'"svid": "([^"]+)"', trace)}
    assert kids == {signer["kid"], partner["kid"]}


def test_the_example_is_not_in_the_folders_that_readme_tests_without_identity():
    # README's main job runs `agp test` on examples/policies/*/traces without --trust.
    assert not HERE.is_relative_to(ROOT / "examples" / "policies")


# ---- `agp keys svid` refuses a time or a lifetime that no engine could accept -----------------


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--now", "nan", "invalid --now nan"),
    ("--now", "inf", "invalid --now inf"),
    ("--now", "1e300", "invalid --now 1e+300"),
    ("--now", "-1e20", "invalid --now -1e+20"),
    ("--ttl", "999999999d", "invalid --ttl '999999999d'"),
    ("--ttl", "-5m", "invalid --ttl '-5m'"),
])
def test_keys_svid_refuses_values_out_of_bounds(option, value, message):
    result = sh(f"agp keys svid --key example-keys/svid-signer.jwk --sub spiffe://acme.com/a "
                f"--aud agp {option}={value}", HERE)
    assert result.returncode == 2 and result.stdout == ""
    assert f"agp: error: {message}" in result.stderr and "Traceback" not in result.stderr
