"""Shared helpers for the conformance suite (policies from text, requests, CLI output parsing)."""

from __future__ import annotations

import copy
import re
import tempfile
import textwrap
from pathlib import Path

import agp

DATA = Path(__file__).parent / "data"
SPEC_DIR = DATA / "spec"

_engines: dict[str, object] = {}
_tmp = Path(tempfile.mkdtemp(prefix="agp-conformance-"))


def load_text(text: str):
    """Load a policy set from source text (cached by text: loading is pure)."""
    text = textwrap.dedent(text)
    if text not in _engines:
        path = _tmp / f"p{len(_engines)}.agp"
        path.write_text(text)
        _engines[text] = agp.load(str(path))
    return _engines[text]


def load_data(name: str):
    """Load a policy file or directory under data/ (cached)."""
    key = f"data:{name}"
    if key not in _engines:
        _engines[key] = agp.load(str(DATA / name))
    return _engines[key]


def outcome(d) -> dict:
    """The fixed fields of a Decision, minus `policy`."""
    return {
        "decision": d.decision,
        "ttl": d.ttl,
        "rules": list(d.rules),
        "reasons": list(d.reasons),
        "errors": list(d.errors),
    }


def deep(obj):
    return copy.deepcopy(obj)


# `file:line:col: severity[CODE]: message`, wherever the file lives.
_DIAG = re.compile(
    r"(?P<file>[^\s:]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning)\[(?P<code>[^\]]+)\]: (?P<msg>.*)"
)


def diagnostics(output: str) -> list[dict]:
    """The headline diagnostics of `agp check` output, as dicts."""
    found = []
    for m in _DIAG.finditer(output):
        found.append(
            {
                "file": Path(m["file"]).name,
                "line": int(m["line"]),
                "col": int(m["col"]),
                "sev": m["sev"],
                "code": m["code"],
                "msg": m["msg"],
            }
        )
    return found


def position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the n-th occurrence of `needle` as a whole word in `text`."""
    start = -1
    for _ in range(occurrence):
        m = re.compile(r"(?<![\w.])" + re.escape(needle) + r"(?!\w)").search(text, start + 1)
        assert m is not None, f"{needle!r} not found {occurrence} times"
        start = m.start()
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return line, col
