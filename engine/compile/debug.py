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
from bisect import bisect_right
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from agp.source import Span

LINE_MAP = "__agp_lines__"  # the key of a generated function's LineMap in its namespace
_POLICY_FRAME = "__agp_policy_frame__"  # marks the namespace of a frame made here
_E = TypeVar("_E", bound=BaseException)

log = logging.getLogger("agp.compile")


@dataclass(frozen=True, slots=True)
class LineMap:
    """Where the lines of one generated function come from."""

    spans: dict[int, Span]  # generated line -> policy span
    starts: tuple[int, ...]  # the first generated line of each rule's code, ascending
    rules: tuple[str, ...]  # for each start, the rule as `effect name`

    def rule_at(self, line: int) -> str | None:
        i = bisect_right(self.starts, line) - 1
        return self.rules[i] if i >= 0 else None


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
            span = lines.spans.get(tb.tb_lineno)
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
