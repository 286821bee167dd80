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
from agp.runtime.trace import part_of

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


# ---- --jobs on one trace: its tasks spread over the workers ------------------------------------

BOT = "spiffe://acme.com/agents/support-bot"
BILLING = "spiffe://acme.com/agents/billing/eu-1"


def _long_trace(tasks: int, *, swap: int | None = None) -> str:
    """Interleaved tasks (so that the workers' lines alternate), with passing and failing
    `expect`s, a decision log `request`, comments and blank lines, malformed lines, a call in a
    task never started, a task started twice and a line that is not UTF-8. With `swap`, the two
    lines at that index change places (the trace is then out of time order)."""
    lines: list[str] = []
    for step in range(6):
        for n in range(tasks):
            tid, customer = f"t-{n}", f"c-{n % 7}"
            ts = f"2026-11-28T10:{step:02d}:{n % 60:02d}Z"
            event = [
                {"ts": ts, "event": "task.start", "agent": BOT,
                 "task": {"id": tid, "kind": "support_ticket", "params": {"customer": customer}},
                 "chain": [{"principal": "user:alice", "kind": "human"}]},
                {"ts": ts, "event": "call", "task": tid, "agent": BOT, "tool": "crm.lookup",
                 "args": {"customer": customer}, "expect": "allow" if n % 5 else "deny"},
                {"ts": ts, "event": "delegate", "task": tid, "from": BOT, "to": BILLING,
                 "scope": {"tools": ["payments.refund"], "ttl": "5m"}},
                {"ts": ts, "event": "call", "task": tid, "agent": BILLING,
                 "tool": "payments.refund", "args": {"amount": 40 + 30 * (n % 5),
                                                     "customer": customer},
                 "expect": {"decision": "allow", "rules": ["refund_small"]}},
                {"ts": ts, "event": "task.end", "task": tid},
                {"ts": ts, "event": "call", "task": tid, "agent": BOT, "tool": "crm.lookup",
                 "args": {"customer": customer}, "expect": {"decision": "deny",
                                                            "rules": ["task.ended"]}},
            ][step]
            lines.append(json.dumps(event))
            if n % 11 == 3 and step == 1:
                lines.append(json.dumps({"ts": ts, "event": "request", "expect": "deny",
                                         "request": {"agent": {"id": BOT}, "tool": "http.get",
                                                     "now": ts}}))
                lines.append("// a comment")
                lines.append("")
                lines.append(f'{{"ts": "{ts}", "event": "call", "tool": 7}}')
                lines.append('{"ts": "oops"')
                lines.append(json.dumps({"ts": ts, "event": "call", "task": "never",
                                         "agent": BOT, "tool": "crm.lookup",
                                         "expect": "deny"}))
            if n == 4 and step == 2:
                lines.append(lines[0].replace("10:00:00", ts[11:19]))  # t-0 started again
    if swap is not None:
        lines[swap], lines[swap + 1] = lines[swap + 1], lines[swap]
    return "\n".join(lines) + "\n"


@pytest.fixture
def one_trace(suite, monkeypatch):
    """A single long trace, spread over the workers whatever its size."""
    monkeypatch.setattr(test_cmd, "SPLIT_BYTES", 0)
    path = suite / "long.jsonl"
    path.write_bytes(_long_trace(40).encode() + b'{"ts": "\xff"}\n')
    return path


def _spy_file(monkeypatch) -> list[str]:
    """The files this process replays itself (the workers are other processes)."""
    replayed: list[str] = []
    file = test_cmd.Run.file

    def spy(self, path, bar, update):
        replayed.append(str(path))
        return file(self, path, bar, update)

    monkeypatch.setattr(test_cmd.Run, "file", spy)
    return replayed


@pytest.mark.parametrize("args", [
    ["-v", "--coverage"],
    ["--format", "json", "--coverage"],
    ["-k", "refund"],
    [],
], ids=["verbose", "json", "k", "plain"])
def test_one_trace_over_jobs_is_byte_identical(one_trace, monkeypatch, args):
    one = outputs(["long.jsonl", *args], "1", one_trace.parent / "one.xml")
    assert one[0] == 2 and one[1]  # failures and malformed lines
    replayed = _spy_file(monkeypatch)
    for jobs in ("2", "3"):
        assert outputs(["long.jsonl", *args], jobs, one_trace.parent / f"j{jobs}.xml") == one
    assert replayed == []  # the workers replayed it, in parts


def test_one_trace_that_passes_exits_0_over_jobs(suite, monkeypatch):
    monkeypatch.setattr(test_cmd, "SPLIT_BYTES", 0)
    (suite / "good.jsonl").write_text(
        (SUITE / "traces" / "support.trace.jsonl").read_text() * 1)
    one = outputs(["good.jsonl"], "1")
    assert one[0] == 0
    replayed = _spy_file(monkeypatch)
    assert outputs(["good.jsonl"], "2") == one
    assert replayed == []


def test_one_trace_out_of_time_order_is_replayed_in_one_process(suite, monkeypatch):
    # The delegations of t-3 and t-4 swapped: with two workers, each has one of them, and neither
    # sees its own lines out of order, but the trace is; the parent then replays it itself.
    monkeypatch.setattr(test_cmd, "SPLIT_BYTES", 0)
    assert part_of({"task": "t-3"}, 0, 2) != part_of({"task": "t-4"}, 0, 2)
    at = next(i for i, line in enumerate(_long_trace(40).splitlines())
              if '"delegate", "task": "t-3"' in line)
    text = _long_trace(40, swap=at)
    assert '"t-4"' in text.splitlines()[at] and '"t-3"' in text.splitlines()[at + 1]
    (suite / "swapped.jsonl").write_text(text)
    one = outputs(["swapped.jsonl"], "1")
    assert "is earlier than the event before" in one[1]
    replayed = _spy_file(monkeypatch)
    assert outputs(["swapped.jsonl"], "2") == one
    assert replayed == ["swapped.jsonl"]


def test_a_small_trace_stays_in_one_process(suite, monkeypatch):
    replayed = _spy_file(monkeypatch)
    one = outputs(["set/traces/support.trace.jsonl"], "1")
    assert outputs(["set/traces/support.trace.jsonl"], "2") == one
    assert replayed == ["set/traces/support.trace.jsonl"] * 2  # under SPLIT_BYTES


def test_every_line_has_exactly_one_part():
    values = [None, {"task": "t-1"}, {"task": {"id": "t-1"}}, {"task": "t-2"}, {"task": None},
              {"task": {"id": 3}}, {"request": {}}, [], "x", {"task": "\ud800"}]
    for n in (1, 2, 3):
        for number, value in enumerate(values, 1):
            assert 0 <= part_of(value, number, n) < n
        # A task's start and its other events go to the same part.
        assert part_of(values[1], 1, n) == part_of(values[2], 2, n)
