"""`agp test --jobs N` (issue 15 item 4): trace files spread over N processes, with the output,
the exit status, `--junit` and `--format json` of one process, byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import EXAMPLES

from agp.cli import main, test_cmd

SUITE = EXAMPLES / "customer-support"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def suite(tmp_path, monkeypatch):
    """The customer-support policy set and its traces, plus one trace with a failing `expect`,
    one with a malformed line after a good one, and one without any `expect`."""
    shutil.copytree(SUITE, tmp_path / "set")
    traces = tmp_path / "set" / "traces"
    good = (traces / "support.trace.jsonl").read_text().splitlines()
    failing = [line.replace('"expect": "allow"', '"expect": "deny"') for line in good]
    assert failing != good
    (traces / "b-failing.trace.jsonl").write_text("\n".join(failing) + "\n")
    (traces / "c-malformed.trace.jsonl").write_text(
        "\n".join([*good[:2], '{"ts": "2026-11-28T10:00:09Z", "event": "call", "tool": 7}'])
        + "\n")
    (traces / "d-silent.trace.jsonl").write_text(
        "\n".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "expect"})
                  for line in good if line.startswith("{")) + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    return tmp_path


def outputs(args: list[str], jobs: str, junit: Path | None = None):
    extra = ["--junit", str(junit)] if junit is not None else []
    result = run("test", "-p", "set", *args, *extra, "--jobs", jobs)
    return (result.exit_code, result.stdout, result.stderr,
            junit.read_bytes() if junit is not None else None)


@pytest.mark.parametrize("args", [
    ["set/traces", "-v", "--coverage"],
    ["set/traces", "--format", "json", "--coverage"],
    ["set/traces", "missing.jsonl", "-k", "call"],
    ["set/traces/d-silent.trace.jsonl", "set/traces/support.trace.jsonl"],
], ids=["text", "json", "missing-path", "two-files"])
def test_jobs_output_is_that_of_one_process(suite, args):
    one = outputs(args, "1", suite / "one.xml")
    assert one[1], "the run prints something"
    for jobs in ("3", "0"):
        assert outputs(args, jobs, suite / f"jobs{jobs}.xml") == one


def test_jobs_keeps_failures_problems_and_counts(suite):
    status, stdout, stderr, _ = outputs(["set/traces"], "2")
    assert status == 2  # the malformed line makes it bad input, as without --jobs
    lines = stdout.splitlines()
    assert lines[-1].endswith("failed") and not lines[-1].endswith(" 0 failed")
    failures = [x for x in lines if ": FAIL " in x]
    assert failures and all(x.startswith("set/traces/b-failing.trace.jsonl:") for x in failures)
    problem = [x for x in lines if x.startswith("set/traces/c-malformed.trace.jsonl:3")]
    assert len(problem) == 1
    # Failures come in the order of the files, the problem after them.
    assert lines.index(failures[-1]) < lines.index(problem[0])


def test_jobs_nothing_checked_fails_as_with_one_process(suite):
    for jobs in ("1", "2"):
        result = run("test", "-p", "set", "set/traces/d-silent.trace.jsonl",
                     "set/traces/d-silent.trace.jsonl", "--jobs", jobs)
        assert result.exit_code == 1
        assert "the traces carry no `expect`: nothing was tested" in result.stderr


@pytest.mark.parametrize("option", ["--update", "--watch"])
@pytest.mark.parametrize("jobs", ["2", "0"])
def test_jobs_refuses_update_and_watch(suite, option, jobs):
    before = (suite / "set/traces/b-failing.trace.jsonl").read_bytes()
    result = run("test", "-p", "set", "set/traces", option, "--jobs", jobs)
    assert result.exit_code == 2
    assert f"--jobs cannot be combined with {option}; run it with --jobs 1" in result.stderr
    assert result.stdout == ""  # nothing was run
    assert (suite / "set/traces/b-failing.trace.jsonl").read_bytes() == before


def test_jobs_1_with_update_still_works(suite):
    result = run("test", "-p", "set", "set/traces/b-failing.trace.jsonl", "--update",
                 "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert run("test", "-p", "set", "set/traces/b-failing.trace.jsonl").exit_code == 0


def test_negative_jobs_is_bad_usage(suite):
    result = run("test", "-p", "set", "set/traces", "--jobs", "-1")
    assert result.exit_code == 2
    assert "--jobs" in result.stderr


def test_identity_options_reach_the_workers(suite, tmp_path):
    """A worker decides with the parent's --trust/--audience: a trust bundle that does not load
    fails before any worker starts, and a good one gives the same results in every process."""
    (tmp_path / "trust.json").write_text('{"acme.com": {"keys": []}}')
    args = ["set/traces", "--trust", str(tmp_path / "trust.json"), "--audience", "agp"]
    one = outputs(args, "1")
    assert one == outputs(args, "2")
    # With trust, identity is required: the asserted ids of these traces are denied.
    assert "identity.missing" in one[1]


def test_a_worker_refuses_a_policy_set_that_changed(suite, monkeypatch):
    job = test_cmd._Job(("set",), {}, "sha256:not-this-one", None, True, False, False)
    monkeypatch.setattr(test_cmd, "_engine", None)
    monkeypatch.setattr(test_cmd, "_job", job)
    with pytest.raises(test_cmd._WorkerError, match="changed while the tests ran"):
        test_cmd._test_file("set/traces/support.trace.jsonl")


def test_workers_are_other_processes_that_build_their_own_engine(suite, monkeypatch):
    # Only the workers see these options (the parent's engine is built before): their failure
    # shows that the files were tested elsewhere, and is reported, not raised.
    monkeypatch.setattr(test_cmd, "identity_values",
                        lambda: {"trust": "gone.json", "audience": "agp"})
    result = run("test", "-p", "set", "set/traces", "--jobs", "2")
    assert result.exit_code == 2
    assert "agp: error: cannot read the trust bundle gone.json" in result.stderr
