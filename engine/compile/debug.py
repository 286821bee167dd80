"""Tracebacks of generated code that point at the policy (jinja's `debug.py`, for leaves).

Every generated function runs in its own namespace, which holds its `LineMap` under `LINE_MAP`:
the policy span each generated line came from, and the rule whose code starts at each line. When
generated code raises where it should not (a defect of the compiler: the reference evaluator
finds no error there), `policy_traceback` rewrites the exception's traceback so that each frame
of generated code is preceded by a frame at the policy file and line, named after the rule, with
its carets under the condition:

    File "policies/refunds.agp", line 4, in permit refund_small
      permit refund_small on payments.refund when args.amount <= 500
                                                  ^^^^^^^^^^^^^^^^^^
    File "<agp 0d1c2a9f3b4e leaf 7>", line 9, in leaf_7
      if (_t1 <= 500 if type(_t1 := ARGS['amount']) in _NUM else ...):  # at 'policies/...'

The generated frame stays: its source is registered in `linecache`, so both lines show. Nothing
here runs unless a traceback is rewritten, so it costs a decision nothing.
"""

from __future__ import annotations

import logging
import typing
from abc import abstractmethod
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TypeVar

from agp.source import Span

LINE_MAP = "__agp_lines__"  # the key of a generated function's LineMap in its namespace
_POLICY_FRAME = "__agp_policy_frame__"  # marks the namespace of a frame made here
_E = TypeVar("_E", bound=BaseException)

log = logging.getLogger("agp.compile")


class LineMap(Mapping[int, Span]):
    """Where the lines of one generated function come from: generated line -> policy span, and
    the rule whose code starts at each line.

    Worked out when first read (a traceback, `locate`, `agp compile --emit python`), by `make`:
    a policy set loads with thousands of functions whose lines are never looked at, and working
    out each line's span (and the text `linecache` shows, `Text`) was about 40 % of generating
    them."""

    __slots__ = ("starts", "_spans", "_rules")

    def __init__(self, starts: tuple[int, ...]):
        self.starts = starts  # the first generated line of each rule's code, ascending
        self._spans: dict[int, Span] | None = None
        self._rules: tuple[str, ...] = ()

    @abstractmethod
    def make(self) -> tuple[dict[int, Span], tuple[str, ...], list[str]]:
        """The spans, each start's rule as `effect name`, and the lines as shown."""

    @property
    def spans(self) -> dict[int, Span]:
        spans = self._spans
        if spans is None:
            spans, self._rules, _ = self.make()
            self._spans = spans
        return spans

    def __getitem__(self, line: int) -> Span:
        return self.spans[line]

    def __iter__(self) -> Iterator[int]:
        return iter(self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    def rule_at(self, line: int) -> str | None:
        self.spans  # noqa: B018 - worked out on first use
        i = bisect_right(self.starts, line) - 1
        return self._rules[i] if i >= 0 else None

    def text(self) -> list[str]:
        """The function's lines as shown (with comments naming the policy), each with its "\n"."""
        return self.make()[2]


class Text(Sequence[str]):
    """The lines of a generated function that `linecache` holds, made when first read (a
    traceback shows them): `linecache.cache[filename] = (0, None, Text(lines), filename)`. A
    sequence rather than a list, so that nothing reads it without its lines made."""

    __slots__ = ("_map", "_lines")

    def __init__(self, lines: LineMap):
        self._map = lines
        self._lines: list[str] | None = None

    def _made(self) -> list[str]:
        lines = self._lines
        if lines is None:
            lines = self._lines = self._map.text()
        return lines

    @typing.overload
    def __getitem__(self, i: int) -> str: ...

    @typing.overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        return self._made()[i]

    def __len__(self) -> int:
        return len(self._made())

    def __iter__(self) -> Iterator[str]:
        return iter(self._made())


class _Here(Exception):
    """Raised by a policy frame's code, only to obtain the frame."""


def _raise_here() -> None:
    raise _Here


def policy_frame(span: Span, name: str) -> TracebackType:
    """A traceback entry at `span`'s first line in its policy file, in a function called `name`,
    whose position (the carets of a traceback) is the span's part of that line."""
    line = span.source.line_text(span.line)
    start = len(line[: span.column - 1].encode())  # traceback positions are UTF-8 offsets
    end_line, end_column = span.end_position
    end = len(line[: end_column - 1].encode()) if end_line == span.line else len(line.encode())
    # A call at exactly those columns of the second line: `(` opens a continuation so that the
    # call may start at any column; the code's first line is moved so that the second is the
    # span's. The call, not the `raise` inside `_raise_here`, is where this frame stops.
    call = "_raise_here(" + " " * max(end - start - 13, 0) + ")"
    code = compile("(\n" + " " * start + call + ")", span.source.name, "exec")
    code = code.replace(co_firstlineno=span.line - 1, co_name=name, co_qualname=name)
    try:
        exec(code, {"_raise_here": _raise_here, _POLICY_FRAME: True})  # noqa: S102 - ours
    except _Here as here:
        tb = here.__traceback__
        assert tb is not None and tb.tb_next is not None
        return tb.tb_next  # the frame of `code` (the first is this function's)
    raise AssertionError("unreachable")


def policy_traceback(exc: _E) -> _E:
    """`exc`, with its traceback rewritten so that each frame of generated code is preceded by
    a frame at the policy line that code came from. Rewriting twice adds nothing."""
    frames: list[TracebackType] = []
    tb = exc.__traceback__
    while tb is not None:
        lines = tb.tb_frame.f_globals.get(LINE_MAP)
        made = bool(frames) and frames[-1].tb_frame.f_globals.get(_POLICY_FRAME, False)
        if isinstance(lines, LineMap) and not made:
            span = lines.get(tb.tb_lineno)
            if span is not None:
                try:
                    frames.append(policy_frame(span, lines.rule_at(tb.tb_lineno) or "<policy>"))
                except Exception:  # noqa: S110 - this explains an error: it must not add one
                    pass
        frames.append(tb)
        tb = tb.tb_next
    following: TracebackType | None = None
    for tb in reversed(frames):
        tb.tb_next = following
        following = tb
    return exc.with_traceback(following)


def report_defect(rule: str, exc: BaseException, strict: bool) -> None:
    """The compiled code of `rule` raised `exc` where the reference evaluator finds no error: a
    defect of the compiler (the reference's result stands). It is logged with a traceback that
    points at the policy, or raised as an AssertionError when `strict` (the tests)."""
    policy_traceback(exc)
    if strict:
        raise AssertionError(f"compiled rule {rule} raised, the reference did not") from exc
    log.warning("the compiled code of rule %s raised where the reference evaluator finds no "
                "error, a defect of agp (the decision uses the reference's result)", rule,
                exc_info=exc)
