"""`agp test --update`: write actual decisions into `expect`, leaving the rest of a line as is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agp.model import Decision
from agp.runtime.events import ExpectSpec
from agp.source import replaced

_DECODER = json.JSONDecoder()
_WS = " \t\r\n"


def expect_value(old: object, decision: Decision) -> str | dict[str, Any]:
    """The new `expect`: a word stays a word; an object keeps its keys and gets the core three."""
    if isinstance(old, str):
        return decision.decision
    keys = {"decision", "ttl", "rules"}
    if isinstance(old, ExpectSpec) and old.reasons is not None:
        keys.add("reasons")
    full = {"decision": decision.decision, "ttl": decision.ttl, "rules": list(decision.rules),
            "reasons": list(decision.reasons)}
    return {k: v for k, v in full.items() if k in keys}


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def top_level_members(text: str) -> tuple[int, list[tuple[str, int, int, int]]]:
    """The members of the JSON object `text`: (key, key start, value start, value end), and the
    offset of its closing brace. Raises ValueError when `text` is not one JSON object."""
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        raise ValueError("not an object")
    i = _skip(text, i + 1)
    members: list[tuple[str, int, int, int]] = []
    if text[i : i + 1] == "}":
        return i, members
    while True:
        if text[i : i + 1] != '"':
            raise ValueError("expected a key")
        key_start = i
        key, i = _DECODER.raw_decode(text, i)  # a JSON string: the key
        i = _skip(text, i)
        if text[i : i + 1] != ":":
            raise ValueError("expected ':'")
        start = _skip(text, i + 1)
        _, end = _DECODER.raw_decode(text, start)
        members.append((key, key_start, start, end))
        i = _skip(text, end)
        if text[i : i + 1] == "}":
            return i, members
        if text[i : i + 1] != ",":
            raise ValueError("expected ','")
        i = _skip(text, i + 1)


def with_expect(text: str, value: object) -> str:
    """`text` (one JSON object on one line) with its `expect` member set to `value`.

    Everything else on the line (key order, spacing, the other values) is kept byte for byte;
    a missing `expect` is added at the end of the object.
    """
    encoded = json.dumps(value, ensure_ascii=False)
    close, members = top_level_members(text)
    for key, _, start, end in members:
        if key == "expect":
            return text[:start] + encoded + text[end:]
    if not members:
        return text[:close] + f'"expect": {encoded}' + text[close:]
    last_end = members[-1][3]
    return text[:last_end] + f', "expect": {encoded}' + text[last_end:]


def rewrite_lines(path: str | Path, replacements: dict[int, str]) -> None:
    """Replace whole lines (1-based numbers, text without the newline) of a file, atomically."""
    path = Path(path)
    with replaced(path) as out, open(path, "rb") as src:
        for number, raw in enumerate(src, 1):
            new = replacements.get(number)
            if new is not None:
                ending = raw[len(raw.rstrip(b"\r\n")):]
                bom = b"\xef\xbb\xbf" if number == 1 and raw.startswith(b"\xef\xbb\xbf") else b""
                raw = bom + new.encode("utf-8") + ending
            out.write(raw)
