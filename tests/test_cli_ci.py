"""The command line as CI runs it (issue 16, items 15, 17, 18, 20 and 21): exit statuses that
follow the documented table, runs that test nothing fail, `check --strict`, bundles that are
verified against their policy set, messages with `file:line[:col]`, `agp init` and `--watch`."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import SPEC

from agp.cli import common, main

BROKEN = "permit x when nope\n"


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def here(tmp_path, monkeypatch):
    """The spec policy (`spec/`), its trace (`support.trace.jsonl`), a broken set (`broken/`),
    an empty folder (`empty/`) and the spec request (`request.json`)."""
    shutil.copytree(SPEC, tmp_path / "spec", ignore=shutil.ignore_patterns("*.json", "*.jsonl"))
    shutil.copy(SPEC / "support.trace.jsonl", tmp_path / "support.trace.jsonl")
    shutil.copy(SPEC / "request.json", tmp_path / "request.json")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "p.agp").write_text(BROKEN)
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    return tmp_path


def last(result) -> str:
    return result.output.splitlines()[-1]


# ---- item 17: exit statuses ---------------------------------------------------------------------

TRACE = "support.trace.jsonl"


@pytest.mark.parametrize("policy", ["nowhere", "empty", "broken"])
@pytest.mark.parametrize("command", [
    ["test", "-p", "{p}", TRACE],
    ["replay", "-p", "{p}", TRACE],
    ["diff", "-p", "spec", "-p", "{p}", TRACE],
    ["diff", "-p", "{p}", "-p", "spec", TRACE],
])
def test_a_policy_set_that_does_not_load_is_bad_input_of_trace_commands(here, command, policy):
    r = run(*(a.format(p=policy) for a in command))
    assert r.exit_code == 2, r.output
    assert f"agp: error: the policy set at {policy} does not load" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("command", [["check", "{p}"], ["eval", "-p", "{p}", "request.json"],
                                     ["compile", "-p", "{p}"]])
def test_policy_errors_are_1_and_missing_or_empty_paths_are_2(here, command):
    statuses = {p: run(*(a.format(p=p) for a in command)).exit_code
                for p in ("nowhere", "empty", "broken", "spec")}
    assert statuses == {"nowhere": 2, "empty": 2, "broken": 1, "spec": 0}


def test_a_missing_path_is_named_without_a_source_excerpt(here):
    r = run("check", "nowhere")
    assert r.exit_code == 2
    assert r.output.splitlines()[0] == "nowhere: error[io]: no such file or directory: nowhere"
    r = run("check", "empty")
    assert r.output.splitlines()[0] == "empty: error[io]: no .agp files found"


def test_missing_traces_are_bad_input(here):
    for command in (["test", "-p", "spec"], ["replay", "-p", "spec"],
                    ["diff", "-p", "spec", "-p", "spec"]):
        r = run(*command, "nowhere.jsonl", TRACE)
        assert r.exit_code == 2 and "nowhere.jsonl: no such file or directory" in r.output


# ---- item 17 and 20: malformed lines are `file:line[:col]: message`, the rest still checked ----


def test_malformed_trace_lines_are_reported_where_they_are(here):
    lines = (here / TRACE).read_text().splitlines()
    lines[1] = lines[1].replace('"expect": "allow"', '"expect": "alow"')
    lines[3] = lines[3].replace('"rules": ["refund_small"]}}', '"rules": ["refund_small"],}}')
    lines.insert(5, '  {"ts": "2026-11-28T10:03:30Z", "event": "call", "tgt": 1}')
    (here / TRACE).write_text("\n".join(lines) + "\n")
    r = run("test", "-p", "spec", TRACE)
    assert r.exit_code == 2
    assert r.output.splitlines() == [
        f'{TRACE}:2: expect: "alow" is not a decision; use allow, deny or ask',
        f"{TRACE}:4:{lines[3].index(',}}') + 1}: invalid JSON: trailing comma before `}}`",
        f"{TRACE}:6: missing `agent`, `tool`; a `call` event needs ts, agent and tool; "
        "tgt: unknown field of a `call` event; did you mean `target`?",
        # the other lines were still checked
        "2 passed, 3 failed",
    ]
    r = run("replay", "-p", "spec", TRACE)
    assert r.exit_code == 2
    assert len(r.output.splitlines()) == 2 + 3  # two decisions, three problems
    assert f'{TRACE}:2: expect: "alow" is not a decision' in r.output


def test_an_expect_of_the_wrong_shape_says_what_it_takes(here):
    lines = (here / TRACE).read_text().splitlines()
    lines[1] = lines[1].replace('"expect": "allow"', '"expect": {"decision": "alow", "rule": []}')
    lines[3] = re.sub(r'"expect": \{.*\}\}$', '"expect": 5}', lines[3])
    (here / TRACE).write_text("\n".join(lines) + "\n")
    r = run("test", "-p", "spec", TRACE)
    assert r.output.splitlines()[:2] == [
        f'{TRACE}:2: expect.decision: "alow" is not a decision; use allow, deny or ask; '
        "expect.rule: unknown field; did you mean `rules`?",
        f"{TRACE}:4: expect: expected a decision word (allow, deny or ask) or an object with any "
        "of decision, ttl, rules, reasons",
    ]
    assert "pydantic" not in r.output and "literal[" not in r.output


def test_a_trailing_comma_in_a_request_file_is_pointed_at(here):
    (here / "r.json").write_text('{\n  "agent": {"id": "a"},\n  "tool": "t",\n}\n')
    r = run("eval", "-p", "spec", "r.json")
    assert r.exit_code == 2
    assert r.output == "agp: error: r.json:3:14: invalid JSON: trailing comma before `}`\n"


# ---- item 18: a run that tests nothing fails --------------------------------------------------


def test_a_run_that_checks_no_expectation_fails_unless_allowed(here):
    no_expect = here / "plain.jsonl"
    no_expect.write_text("".join(
        json.dumps({k: v for k, v in json.loads(x).items() if k != "expect"}) + "\n"
        for x in (here / TRACE).read_text().splitlines()))
    (here / "traces").mkdir()
    cases = {
        "k": (["test", "-p", "spec", TRACE, "-k", "no-such-case"],
              "-k 'no-such-case' matches none of the 4 case(s): nothing was tested"),
        "no traces": (["test", "-p", "spec"], "no traces given: nothing was tested"),
        "empty dir": (["test", "-p", "spec", "traces"],
                      "no *.jsonl traces in traces: nothing was tested"),
        "no expect": (["test", "-p", "spec", "plain.jsonl"],
                      "the traces carry no `expect`: nothing was tested"),
    }
    for name, (args, message) in cases.items():
        r = run(*args)
        assert r.exit_code == 1, name
        assert last(r).startswith("agp: error: " + message), (name, r.output)
        assert "--allow-empty" in last(r)
        r = run(*args, "--allow-empty")
        assert r.exit_code == 0, name
        assert message in r.output
    # A filter that matches something is an ordinary run.
    assert run("test", "-p", "spec", TRACE, "-k", "crm.lookup").exit_code == 0


def test_check_strict_turns_warnings_into_errors(here):
    decls = (here / "spec" / "declarations.agp").read_text()
    Path("warn.agp").write_text(decls + "permit p on crm.lookp\n")
    line = decls.count("\n") + 1
    r = run("check", "warn.agp")
    assert r.exit_code == 0 and "warning[unknown-tool]" in r.output
    r = run("check", "--strict", "warn.agp")
    assert r.exit_code == 1
    assert f"warn.agp:{line}:13: error[unknown-tool]: tool pattern `crm.lookp` matches no " \
           "declared tool" in r.output
    assert last(r) == "1 error(s), 0 warning(s) (--strict)"
    doc = json.loads(run("check", "--strict", "--format", "json", "warn.agp").output)
    assert (doc["errors"], doc["warnings"]) == (1, 0)
    assert run("check", "--strict", "--format", "github", "warn.agp").output.startswith(
        f"::error file=warn.agp,line={line}")
    assert run("check", "--strict", "spec").exit_code == 0


# ---- item 15: bundles ---------------------------------------------------------------------------


def test_check_bundle_needs_no_policy_and_compares_it_when_given(here):
    assert run("compile", "-p", "spec", "-o", "spec.bundle").exit_code == 0
    r = run("compile", "--check-bundle", "spec.bundle")
    assert r.exit_code == 0 and r.output.startswith("spec.bundle: ok (policy sha256:")
    r = run("compile", "--check-bundle", "spec.bundle", "-p", "spec")
    assert r.exit_code == 0 and r.output.startswith("spec.bundle: ok, compiled from spec")
    other = here / "other"
    shutil.copytree(here / "spec", other)
    (other / "more.agp").write_text("forbid no_refunds on payments.refund\n")
    r = run("compile", "--check-bundle", "spec.bundle", "-p", "other")
    assert r.exit_code == 1
    assert "agp: error: spec.bundle was not compiled from the policy set at other" in r.output
    assert "compile it again with `agp compile -p other -o spec.bundle`" in r.output
    # A modified bundle is bad input, with or without -p.
    data = Path("spec.bundle").read_bytes()
    Path("spec.bundle").write_bytes(data.replace(b"refund_small", b"refund_smalL"))
    for extra in ([], ["-p", "spec"]):
        r = run("compile", "--check-bundle", "spec.bundle", *extra)
        assert r.exit_code == 2 and "modified or corrupted" in r.output
    assert run("compile", "--check-bundle", "nowhere.bundle").exit_code == 2
    r = run("compile")
    assert r.exit_code == 2 and "give the policy set to compile with -p" in r.output


# ---- item 21: agp init --------------------------------------------------------------------------


def _workflow_commands(workflow: str) -> list[list[str]]:
    """The `agp ...` steps of the workflow, as argument lists."""
    return [shlex.split(m)[1:] for m in re.findall(r"^\s*- run: (agp .*)$", workflow, re.M)]


def test_init_writes_a_starter_that_passes_its_own_ci(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("init", "starter")
    assert r.exit_code == 0, r.output
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["starter/.github/workflows/agp.yml", "starter/policies/starter.agp",
                       "starter/traces/starter.trace.jsonl"]
    workflow = (tmp_path / "starter/.github/workflows/agp.yml").read_text()
    commands = _workflow_commands(workflow)
    assert commands == [["check", "--strict", "policies"], ["test", "-p", "policies", "traces"]]
    assert "working-directory: starter" in workflow
    monkeypatch.chdir(tmp_path / "starter")
    for args in commands:  # what CI runs passes, with no warning and nothing left untested
        r = run(*args)
        assert r.exit_code == 0, (args, r.output)
    assert last(run(*commands[1])) == "6 passed, 0 failed"
    assert run("fmt", "--check", "policies").exit_code == 0


def test_init_never_overwrites(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "starter.agp").write_text("# mine\n")
    r = run("init")
    assert r.exit_code == 2
    assert "policies/starter.agp already exists; agp init never overwrites a file" in r.output
    assert (tmp_path / "policies" / "starter.agp").read_text() == "# mine\n"
    assert not (tmp_path / "traces").exists() and not (tmp_path / ".github").exists()
    # In the current directory, the workflow runs where it is.
    (tmp_path / "policies" / "starter.agp").unlink()
    assert run("init").exit_code == 0
    assert "working-directory" not in (tmp_path / ".github/workflows/agp.yml").read_text()


# ---- item 21: --watch -----------------------------------------------------------------------------


@pytest.fixture
def edits(monkeypatch):
    """Replace the watcher's sleep by the next edit of a list, and bound its looks."""
    todo: list = []

    def sleep(_interval):
        if todo:
            todo.pop(0)()

    monkeypatch.setattr(common, "watch_sleep", sleep)

    def plan(*steps, looks: int | None = None):
        todo.extend(steps)
        monkeypatch.setattr(common, "watch_rounds", looks if looks is not None else len(steps))

    return plan


def test_test_watch_runs_again_when_a_trace_or_a_policy_changes(here, edits):
    trace = here / TRACE
    lines = trace.read_text().splitlines()

    def break_an_expectation():
        trace.write_text("\n".join([*lines[:1], lines[1].replace('"allow"', '"deny"'),
                                    *lines[2:]]) + "\n")

    def add_a_forbid():
        (here / "spec" / "more.agp").write_text("forbid no_refunds on payments.refund\n")

    edits(break_an_expectation, lambda: None, add_a_forbid, looks=4)
    r = run("test", "-p", "spec", TRACE, "--watch")
    summaries = [x for x in r.output.splitlines() if x.endswith(" failed")]
    assert summaries == ["4 passed, 0 failed", "3 passed, 1 failed", "2 passed, 2 failed"]
    assert r.output.count("change detected: running again") == 2  # not on the quiet look
    assert r.exit_code == 1  # the last run's status


def test_check_watch_runs_again_when_a_file_is_fixed_or_added(here, edits):
    edits(lambda: (here / "broken" / "p.agp").write_text("permit x\n"),
          lambda: (here / "broken" / "q.agp").write_text("permit y when nope\n"))
    r = run("check", "broken", "--watch")
    totals = [x for x in r.output.splitlines() if re.match(r"\d+ error", x)]
    assert totals == ["1 error(s), 0 warning(s)", "0 error(s), 0 warning(s)",
                      "1 error(s), 0 warning(s)"]
    assert r.exit_code == 1
