"""Output formats for machines (`--format json|sarif|github`) and colour rules of the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import SPEC

from agp.cli import main

BAD = "permit x on a.b when args.q > 1\nforbid y when foo\n"


def run(*args, env=None, input=None):
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


@pytest.fixture
def bad(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    Path("bad.agp").write_text(BAD)
    return "bad.agp"


def test_check_text_is_plain_when_not_a_terminal(bad, snapshot):
    r = run("check", bad)
    assert r.exit_code == 1
    assert "\x1b[" not in r.output
    assert r.output == snapshot


def test_check_colour_only_when_forced_and_never_with_no_color(bad):
    coloured = run("check", bad, env={"FORCE_COLOR": "1"})
    assert "\x1b[31m" in coloured.output  # the error and its caret in red
    assert coloured.exit_code == 1
    plain = run("check", bad, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[" not in plain.output
    assert plain.output == run("check", bad).output


def test_check_json(bad):
    r = run("check", "--format", "json", bad)
    doc = json.loads(r.output)
    assert r.exit_code == 1 and (doc["errors"], doc["warnings"]) == (1, 1)
    error = [d for d in doc["diagnostics"] if d["severity"] == "error"][0]
    assert (error["file"], error["line"], error["column"], error["end_column"], error["code"]) \
        == ("bad.agp", 2, 15, 18, "unknown-name")


def test_check_sarif(bad):
    r = run("check", "--format", "sarif", bad)
    doc = json.loads(r.output)
    assert doc["version"] == "2.1.0"
    (run_,) = doc["runs"]
    assert run_["tool"]["driver"]["name"] == "agp"
    results = {x["ruleId"]: x for x in run_["results"]}
    assert results["unknown-name"]["level"] == "error"
    assert results["unknown-tool"]["level"] == "warning"
    region = results["unknown-name"]["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"], region["endColumn"]) == (2, 15, 18)
    ids = [rule["id"] for rule in run_["tool"]["driver"]["rules"]]
    assert all(ids[x["ruleIndex"]] == x["ruleId"] for x in run_["results"])


def test_check_github(bad):
    r = run("check", "--format", "github", bad)
    assert r.exit_code == 1
    assert r.output.splitlines() == [
        "::warning file=bad.agp,line=1,col=13,endLine=1,endColumn=16,title=agp unknown-tool::"
        "tool pattern `a.b` matches no declared tool",
        "::error file=bad.agp,line=2,col=15,endLine=2,endColumn=18,title=agp unknown-name::"
        "unknown name `foo`",
    ]


def test_github_escapes():
    from agp.cli.check_cmd import _escape_data, _escape_property

    assert _escape_data("50%\nnext") == "50%25%0Anext"
    assert _escape_property("a,b:c") == "a%2Cb%3Ac"


def test_check_clean_set_exits_0():
    for fmt in ("text", "json", "sarif", "github"):
        assert run("check", "--format", fmt, str(SPEC)).exit_code == 0


def test_eval_formats():
    request = (SPEC / "request.json").read_text()
    r = run("eval", "-p", str(SPEC), input=request)
    assert r.exit_code == 0 and json.loads(r.output)["ttl"] == 240
    r = run("eval", "-p", str(SPEC), "--format", "text", input=request)
    assert r.exit_code == 0
    assert r.output.splitlines()[:2] == ["allow (ttl 240s)", "  rules:   refund_small"]
