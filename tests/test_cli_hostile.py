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


def _invocations(tmp_path):
    files = {}
    for name, data in HOSTILE_FILES.items():
        path = tmp_path / f"{name}.agp"
        path.write_bytes(data)
        jpath = tmp_path / f"{name}.jsonl"
        jpath.write_bytes(data)
        files[name] = (str(path), str(jpath))
    good = str(SPEC)
    for agp_file, json_file in files.values():
        yield ["check", agp_file]
        yield ["eval", "-p", agp_file, json_file]
        yield ["eval", "-p", good, json_file]
        for command in ("test", "replay"):
            if command in main.commands:
                yield [command, "-p", good, json_file]
                yield [command, "-p", agp_file, json_file]
        if "diff" in main.commands:
            yield ["diff", "-p", good, "-p", agp_file, json_file]
        if "fmt" in main.commands:
            yield ["fmt", "--check", agp_file]
        if "compile" in main.commands:
            yield ["compile", "-p", agp_file]
            yield ["compile", "--check-bundle", agp_file]
            yield ["compile", "--check-bundle", agp_file, "-p", good]
        yield ["init", agp_file]  # a file where a directory should be
    yield ["eval", "-p", str(tmp_path / "missing"), str(tmp_path / "missing.json")]
    yield ["check"]
    yield ["eval"]
    yield ["nonsense-command"]
    yield ["check", "--no-such-option", good]
    yield ["init", str(tmp_path / "starter")]
    yield ["init", str(tmp_path / "starter")]  # again: refuses to overwrite


def test_no_command_raises(tmp_path):
    runner = CliRunner()
    seen = 0
    for args in _invocations(tmp_path):
        result = runner.invoke(main, args, catch_exceptions=True)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args, repr(result.exception))
        assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output[-500:])
        assert "Traceback" not in result.output, args
        seen += 1
    assert seen > 40


@pytest.mark.parametrize("name", ["not-json", "deep-json", "nan", "dup-keys", "huge-number"])
def test_eval_refuses_bad_json_with_exit_2(tmp_path, name):
    path = tmp_path / "r.json"
    path.write_bytes(HOSTILE_FILES[name])
    result = CliRunner().invoke(main, ["eval", "-p", str(SPEC), str(path)])
    assert result.exit_code == 2
    assert "agp: error:" in result.output
