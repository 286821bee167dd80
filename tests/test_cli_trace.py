"""`agp test`, `agp replay` and `agp diff` from the command line (FORMATS.md's CLI table)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import SPEC

from agp.cli import main

BOT = "spiffe://acme.com/agents/support-bot"


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    return result


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A directory with the spec policy (`spec/`) and the spec trace (`support.trace.jsonl`)."""
    shutil.copytree(SPEC, tmp_path / "spec",
                    ignore=shutil.ignore_patterns("*.json", "*.jsonl"))
    shutil.copy(SPEC / "support.trace.jsonl", tmp_path / "support.trace.jsonl")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    return tmp_path


def edit(path: Path, line: int, **changes) -> None:
    lines = path.read_text().splitlines()
    event = json.loads(lines[line - 1])
    event.update(changes)
    lines[line - 1] = json.dumps(event)
    path.write_text("\n".join(lines) + "\n")


# ---- agp test -----------------------------------------------------------------------------------


def test_spec_example_passes(here):
    r = run("test", "-p", "spec", "support.trace.jsonl")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1] == "4 passed, 0 failed"


def test_failure_report(here, snapshot):
    edit(here / "support.trace.jsonl", 4, expect={"decision": "deny", "ttl": 60,
                                                  "rules": ["refund_small", "x"]})
    r = run("test", "-p", "spec", "support.trace.jsonl")
    assert r.exit_code == 1
    assert r.output.splitlines()[-1] == "3 passed, 1 failed"
    assert r.output == snapshot


def test_malformed_lines_exit_2_and_others_still_run(here, snapshot):
    path = here / "support.trace.jsonl"
    lines = path.read_text().splitlines()
    lines.insert(1, "{oops")
    lines.insert(3, '{"ts": "2026-11-28T10:00:06Z", "event": "nap"}')
    path.write_text("\n".join(lines) + "\n")
    r = run("test", "-p", "spec", "support.trace.jsonl")
    assert r.exit_code == 2
    assert r.output.splitlines()[-1] == "4 passed, 2 failed"
    assert r.output == snapshot


def test_missing_trace_and_bad_policy(here):
    r = run("test", "-p", "spec", "nowhere.jsonl")
    assert r.exit_code == 2 and "nowhere.jsonl: no such file or directory" in r.output
    assert "Traceback" not in r.output
    (here / "bad.agp").write_text("permit x when nope\n")
    r = run("test", "-p", "bad.agp", "support.trace.jsonl")
    # A policy set that does not load is bad input of `agp test` (2), not a failed test (1).
    assert r.exit_code == 2 and "error[unknown-name]" in r.output
    r = run("test", "-p", "spec")
    assert r.exit_code == 1 and "no traces given: nothing was tested" in r.output


def test_directory_of_traces(here):
    (here / "traces" / "deeper").mkdir(parents=True)
    shutil.copy(here / "support.trace.jsonl", here / "traces" / "a.jsonl")
    shutil.copy(here / "support.trace.jsonl", here / "traces" / "deeper" / "b.jsonl")
    (here / "traces" / "notes.txt").write_text("not a trace")
    r = run("test", "-p", "spec", "traces")
    assert r.exit_code == 0 and r.output.splitlines()[-1] == "8 passed, 0 failed"


def test_k_filters_cases(here):
    edit(here / "support.trace.jsonl", 4, expect="deny")
    r = run("test", "-p", "spec", "support.trace.jsonl", "-k", "crm.lookup")
    assert r.exit_code == 0 and r.output.splitlines()[-1] == "3 passed, 0 failed"
    r = run("test", "-p", "spec", "support.trace.jsonl", "-k", "*:4 *")
    assert r.exit_code == 1 and r.output.splitlines()[-1] == "0 passed, 1 failed"


def test_junit(here):
    edit(here / "support.trace.jsonl", 5, expect="allow")
    r = run("test", "-p", "spec", "support.trace.jsonl", "--junit", "out.xml")
    assert r.exit_code == 1
    root = ET.parse(here / "out.xml").getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "0")
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("line") for c in cases] == ["2", "4", "5", "7"]
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["support.trace.jsonl:5 call crm.lookup"]
    assert "expected allow, got deny" in failed[0].find("failure").get("message")


def test_update_rewrites_only_expect(here):
    path = here / "support.trace.jsonl"
    before = path.read_text().splitlines()
    line4 = json.loads(before[3])
    edit(path, 4, expect={"decision": "deny", "ttl": 1, "rules": ["x"]})
    edit(path, 2, expect="deny")
    r = run("test", "-p", "spec", "support.trace.jsonl", "--update")
    assert r.exit_code == 0, r.output
    after = path.read_text().splitlines()
    assert json.loads(after[3])["expect"] == {"decision": "allow", "ttl": 240,
                                              "rules": ["refund_small"]}
    assert {k: v for k, v in json.loads(after[3]).items() if k != "expect"} == \
        {k: v for k, v in line4.items() if k != "expect"}
    assert json.loads(after[1])["expect"] == "allow"  # a word stays a word
    # Lines that were right (and non-decided events) are untouched, byte for byte.
    assert [after[i] for i in (0, 2, 4, 5, 6)] == [before[i] for i in (0, 2, 4, 5, 6)]
    assert run("test", "-p", "spec", "support.trace.jsonl").exit_code == 0


def test_update_keeps_the_rest_of_the_line_byte_for_byte(here):
    path = here / "support.trace.jsonl"
    original = path.read_text().splitlines()
    weird = original[1].replace('"expect": "allow"', '"expect"  :  "deny"  ,  "context":{ }')
    comment = "// keep me"
    path.write_text("\r\n".join([original[0], comment, weird]) + "\r\n")
    assert run("test", "-p", "spec", "support.trace.jsonl", "--update").exit_code == 0
    data = path.read_bytes().decode()
    assert data.split("\r\n")[:2] == [original[0], comment]
    assert data.split("\r\n")[2] == weird.replace('"deny"', '"allow"')


def test_coverage(here, snapshot):
    r = run("test", "-p", "spec", "support.trace.jsonl", "--coverage")
    assert r.exit_code == 0
    assert r.output == snapshot
    r = run("test", "-p", "spec", "support.trace.jsonl", "--min-coverage", "50")
    assert r.exit_code == 1 and "below --min-coverage 50%" in r.output
    assert run("test", "-p", "spec", "support.trace.jsonl", "--min-coverage", "40").exit_code == 0


def test_json_format(here):
    r = run("test", "-p", "spec", "support.trace.jsonl", "--format", "json")
    doc = json.loads(r.output)
    assert (doc["passed"], doc["failed"]) == (4, 0)
    assert [x["line"] for x in doc["results"]] == [2, 4, 5, 7]
    assert doc["results"][1]["decision"]["ttl"] == 240


@pytest.mark.parametrize(("options", "kept"), [
    ((), 0), (("--verbose",), 0), (("--jobs", "2"), 0),
    (("--format", "json"), 8), (("--junit", "out.xml"), 8), (("--jobs", "2", "--junit", "o"), 8)])
def test_outcomes_are_kept_only_for_junit_and_json(here, monkeypatch, options, kept):
    """An outcome holds its request, with the task's session: a run that prints text keeps
    none, so that testing a long trace costs the trace's tasks, not every case tested."""
    from agp.cli import test_cmd

    runs: list[test_cmd.Run] = []

    class Recorded(test_cmd.Run):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            runs.append(self)

    monkeypatch.setattr(test_cmd, "Run", Recorded)
    shutil.copy(here / "support.trace.jsonl", here / "again.trace.jsonl")
    r = run("test", "-p", "spec", "support.trace.jsonl", "again.trace.jsonl", *options)
    assert r.exit_code == 0, r.output
    assert "8 passed, 0 failed" in r.output or '"passed": 8' in r.output
    assert sum(len(cases) for cases in runs[0].cases.values()) == kept


# ---- agp replay ---------------------------------------------------------------------------------


def test_replay_json_lines(here):
    r = run("replay", "-p", "spec", "support.trace.jsonl")
    assert r.exit_code == 0
    rows = [json.loads(x) for x in r.output.splitlines()]
    assert [(x["file"], x["line"], x["decision"], x["ttl"], x["rules"]) for x in rows] == [
        ("support.trace.jsonl", 2, "allow", 900, ["lookups"]),
        ("support.trace.jsonl", 4, "allow", 240, ["refund_small"]),
        ("support.trace.jsonl", 5, "deny", 0, ["delegation.scope"]),
        ("support.trace.jsonl", 7, "deny", 0, ["task.ended"]),
    ]
    assert all(x["policy"].startswith("sha256:") for x in rows)


def test_replay_table(here, snapshot):
    r = run("replay", "-p", "spec", "--format", "table", "support.trace.jsonl")
    assert r.exit_code == 0
    assert r.output == snapshot


def test_replay_bad_input(here):
    (here / "bad.jsonl").write_text('{"ts": "x", "event": "call"}\n')
    r = run("replay", "-p", "spec", "bad.jsonl")
    assert r.exit_code == 2
    assert r.output.startswith("bad.jsonl:1: missing `agent`, `tool`; a `call` event needs ts, "
                               "agent and tool; ts: expected an RFC 3339 timestamp")
    assert run("replay", "-p", "spec", "none.jsonl").exit_code == 2


# ---- agp diff -----------------------------------------------------------------------------------


def test_diff_groups_and_counts(here, snapshot):
    new = here / "new"
    shutil.copytree(here / "spec", new)
    rules = (new / "rules.agp").read_text()
    rules = rules.replace("ttl 5m", "ttl 2m")
    (new / "rules.agp").write_text(rules + '\nforbid lookups_closed on crm.lookup\n'
                                   '  when args.customer == "c-42"\n')
    r = run("diff", "-p", "spec", "-p", "new", "support.trace.jsonl")
    assert r.exit_code == 1
    assert r.output == snapshot
    assert r.output.splitlines()[-1] == (
        "4 of 4 decisions differ (1 newly denied, 1 ttl changes, 2 rule changes)")


def test_diff_same_policy_is_clean(here):
    r = run("diff", "-p", "spec", "-p", "spec", "support.trace.jsonl")
    assert r.exit_code == 0 and r.output.strip() == "0 of 4 decisions differ"
    r = run("diff", "-p", "spec", "support.trace.jsonl")
    assert r.exit_code == 2


def test_diff_json(here):
    new = here / "new"
    shutil.copytree(here / "spec", new)
    (new / "rules.agp").write_text((new / "rules.agp").read_text().replace("<= 100", "<= 10"))
    r = run("diff", "-p", "spec", "-p", "new", "support.trace.jsonl", "--format", "json")
    doc = json.loads(r.output)
    assert r.exit_code == 1 and doc["changed"] == 1
    (change,) = doc["groups"]["newly denied"]
    assert (change["line"], change["old"]["decision"], change["new"]["rules"]) == (
        4, "allow", ["default.deny"])
