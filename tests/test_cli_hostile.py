"""No CLI command prints a traceback, whatever it is given (issue 7)."""

import pytest
from click.testing import CliRunner
from support import SPEC

from agp.cli import main

HOSTILE_FILES = {
    "empty": b"",
    "nul": b"\x00\x00\x00",
    "bad-utf8": b"\xff\xfe\xfa",
    "not-json": b"{not json",
    "deep-json": b"[" * 100_000 + b"]" * 100_000,
    "json-list": b"[1, 2, 3]",
    "nan": b'{"agent": {"id": "a"}, "tool": "t", "args": {"x": NaN}}',
    "dup-keys": b'{"tool": "a", "tool": "b", "agent": {"id": "x"}}',
    "huge-number": b'{"agent": {"id": "a"}, "tool": "t", "args": {"x": 1e999}}',
    "bad-time": b'{"agent": {"id": "a"}, "tool": "t", "now": "2026-02-30T25:61:00Z"}',
    "trace-garbage": b'{"ts": "x", "event": "nope"}\n// c\n\n{"ts": 1}\n',
    "policy-garbage": b"permit ( when ) {{{ \"\n tool",
}


# Where the hostile files are written: the invocations are listed before any test runs, so that
# each is a test of its own; `hostile_dir` writes the files and fills in this placeholder.
DIR = "{dir}"


def _invocations() -> list[list[str]]:
    good = str(SPEC)
    out = []
    for name in HOSTILE_FILES:
        agp_file, json_file = f"{DIR}/{name}.agp", f"{DIR}/{name}.jsonl"
        out.append(["check", agp_file])
        out.append(["eval", "-p", agp_file, json_file])
        out.append(["eval", "-p", good, json_file])
        for command in ("test", "replay"):
            if command in main.commands:
                out.append([command, "-p", good, json_file])
                out.append([command, "-p", agp_file, json_file])
        if "diff" in main.commands:
            out.append(["diff", "-p", good, "-p", agp_file, json_file])
        if "fmt" in main.commands:
            out.append(["fmt", "--check", agp_file])
        if "compile" in main.commands:
            out.append(["compile", "-p", agp_file])
            out.append(["compile", "--check-bundle", agp_file])
            out.append(["compile", "--check-bundle", agp_file, "-p", good])
        out.append(["init", agp_file])  # a file where a directory should be
    out.append(["eval", "-p", f"{DIR}/missing", f"{DIR}/missing.json"])
    out.append(["check"])
    out.append(["eval"])
    out.append(["nonsense-command"])
    out.append(["check", "--no-such-option", good])
    out.append(["init", f"{DIR}/starter"])
    out.append(["init", f"{DIR}/starter"])  # again: refuses to overwrite
    return out


INVOCATIONS = _invocations()


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    """Every hostile file twice, as a policy (`.agp`) and as a request or trace (`.jsonl`)."""
    root = tmp_path_factory.mktemp("hostile")
    for name, data in HOSTILE_FILES.items():
        (root / f"{name}.agp").write_bytes(data)
        (root / f"{name}.jsonl").write_bytes(data)
    return root


def test_many_invocations_are_tried():
    assert len(INVOCATIONS) > 40


@pytest.mark.parametrize("args", INVOCATIONS,
                         ids=lambda args: " ".join(args).replace(str(SPEC), "SPEC"))
def test_no_command_raises(hostile_dir, args):
    args = [a.replace(DIR, str(hostile_dir)) for a in args]
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args, repr(result.exception))
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output[-500:])
    assert "Traceback" not in result.output, args


@pytest.mark.parametrize("name", ["not-json", "deep-json", "nan", "dup-keys", "huge-number"])
def test_eval_refuses_bad_json_with_exit_2(tmp_path, name):
    path = tmp_path / "r.json"
    path.write_bytes(HOSTILE_FILES[name])
    result = CliRunner().invoke(main, ["eval", "-p", str(SPEC), str(path)])
    assert result.exit_code == 2
    assert "agp: error:" in result.output
