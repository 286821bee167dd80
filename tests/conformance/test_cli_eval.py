"""`agp eval -p POLICY [REQUEST.json]`: exit codes 0 decided, 1 policy errors, 2 bad usage or input."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from support import SPEC

from agp.cli import main

REQUEST = json.loads((SPEC / "request.json").read_text())
FIELDS = ("decision", "ttl", "rules", "reasons", "errors", "policy")


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def test_eval_allow(tmp_path):
    req = tmp_path / "r.json"
    req.write_text(json.dumps(REQUEST))
    result = run("eval", "-p", str(SPEC), str(req))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(FIELDS) <= set(out)
    assert out["decision"] == "allow" and out["ttl"] == 240


def test_eval_deny_is_still_exit_zero(tmp_path):
    request = json.loads(json.dumps(REQUEST))
    request["args"]["amount"] = 40
    request["args"]["customer"] = "someone-else"
    result = run("eval", "-p", str(SPEC), input=json.dumps(request))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["decision"], out["ttl"], out["rules"]) == ("deny", 0, ["default.deny"])


def test_eval_ask_output(tmp_path):
    request = json.loads(json.dumps(REQUEST))
    request["args"]["amount"] = 500
    result = run("eval", "-p", str(SPEC), input=json.dumps(request))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["decision"] == "ask"
    assert out["rules"] == ["refund_large"]
    assert out["reasons"] == ["refunds above 100 need a human"]
    assert out["errors"] == []


def test_eval_errors_in_output():
    request = {"agent": {"id": "spiffe://acme.com/agents/support-bot"}, "tool": "crm.lookup",
               "task": {"kind": "support_ticket", "started_at": "2026-11-28T10:00:00Z"},
               "chain": [{"principal": "user:alice", "kind": "human"},
                         {"principal": "spiffe://acme.com/agents/support-bot", "kind": "agent"}],
               "now": "2026-11-28T10:01:00Z"}
    result = run("eval", "-p", str(SPEC), input=json.dumps(request))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["decision"] == "deny"
    assert len(out["errors"]) == 1 and out["errors"][0].startswith("lookups")


def test_eval_policy_with_errors_exits_one(tmp_path):
    bad = tmp_path / "bad.agp"
    bad.write_text("permit r when data <= secrett\n")
    result = run("eval", "-p", str(bad), input=json.dumps(REQUEST))
    assert result.exit_code == 1, result.output
    assert "bad.agp:1:23" in result.output


def test_eval_bad_json_exits_two():
    result = run("eval", "-p", str(SPEC), input="{not json")
    assert result.exit_code == 2, result.output


def test_eval_missing_request_file_exits_two(tmp_path):
    result = run("eval", "-p", str(SPEC), str(tmp_path / "missing.json"))
    assert result.exit_code == 2, result.output


def test_eval_without_policy_exits_two():
    result = run("eval", input=json.dumps(REQUEST))
    assert result.exit_code == 2, result.output


def test_eval_invalid_request_is_denied_not_crashed():
    request = dict(REQUEST, tol="x")
    result = run("eval", "-p", str(SPEC), input=json.dumps(request))
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 0:
        out = json.loads(result.stdout)
        assert (out["decision"], out["rules"]) == ("deny", ["request.invalid"])


@pytest.mark.skipif(shutil.which("agp") is None, reason="the agp script is not installed")
def test_installed_script(tmp_path):
    req = tmp_path / "r.json"
    req.write_text(json.dumps(REQUEST))
    proc = subprocess.run(["agp", "eval", "-p", str(SPEC), str(req)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["decision"], out["ttl"], out["rules"]) == ("allow", 240, ["refund_small"])
    check = subprocess.run(["agp", "check", str(SPEC)], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
