"""Reading JSON from users: strict, positioned errors, never a traceback."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, NoReturn


class JSONInputError(ValueError):
    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def where(self, name: str) -> str:
        if self.line is None:
            return f"{name}: {self.message}"
        return f"{name}:{self.line}:{self.column}: {self.message}"


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # a key given twice: name the first one
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONInputError(f"duplicate key {key!r}")
            seen.add(key)
    return obj


def _constant(name: str) -> NoReturn:
    raise JSONInputError(f"{name} is not valid JSON")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONInputError(f"number {text[:20]} is out of range")
    return value


# One decoder for every call: json.loads with options builds a new one each time (trace replay
# reads one line at a time).
_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_constant,
                            parse_float=_float)
# The decoder's own (C) scanner, called directly (typeshed does not declare the attribute).
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _trailing_comma(text: str, offset: int) -> int | None:
    """The offset of the comma when the error at `offset` is a closing bracket right after one."""
    if text[offset : offset + 1] not in ("}", "]"):
        return None
    before = text[:offset].rstrip(" \t\r\n")
    return len(before) - 1 if before.endswith(",") else None


def loads(text: str) -> Any:
    """Parse JSON, refusing duplicate keys, NaN/Infinity, out-of-range numbers and deep nesting.

    Errors carry the line and column: a trailing comma, which JSON does not allow, is named
    and pointed at.

        >>> loads('{"a": 1,}')
        Traceback (most recent call last):
        agp.jsonio.JSONInputError: invalid JSON: trailing comma before `}`
        >>> try:
        ...     loads('{"a": 1,}')
        ... except JSONInputError as exc:
        ...     print(exc.where("r.json"))
        r.json:1:8: invalid JSON: trailing comma before `}`
    """
    try:
        if text.startswith("\ufeff"):  # as json.loads says it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        # The scanner itself, without `decode`'s two passes of a whitespace pattern: a trace's
        # lines come stripped. Anything else (space around the value, a syntax error, no value
        # at all) is decoded again by `decode`, which says what is wrong.
        try:
            value, end = _SCAN(text, 0)
        except StopIteration:
            return _DECODER.decode(text)
        return value if end == len(text) else _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        comma = _trailing_comma(exc.doc, exc.pos)
        if comma is not None:
            raise JSONInputError(f"invalid JSON: trailing comma before `{exc.doc[exc.pos]}`",
                                 *_position(exc.doc, comma)) from None
        raise JSONInputError(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:
        raise JSONInputError("JSON nested too deeply") from None
    except ValueError as exc:  # int conversion limits and the like
        if isinstance(exc, JSONInputError):
            raise
        raise JSONInputError(f"invalid JSON: {exc}") from None
