"""Limits that keep every decision and every check bounded. Documented in docs/limits.md.

Exceeding a policy limit is a clear error with a position; exceeding a request limit is a deny
with `request.invalid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

MAX_POLICY_FILE_BYTES = 8 * 1024 * 1024  # one .agp file
MAX_TOOL_HINTS = 100  # "did you mean" hints on unmatched tool patterns, per check
MAX_EXPR_DEPTH = 100  # nesting of one condition (parentheses, operators, `not` chains)

MAX_REQUEST_DEPTH = 32  # nesting of objects and lists inside a request
MAX_REQUEST_NODES = 100_000  # values in a request, all levels together
MAX_STRING_LENGTH = 1024 * 1024  # characters in any one string of a request
MAX_LIST_LENGTH = 10_000  # items in any one list of a request

# Values (docs/limits.md, "Values"). Inside these bounds every operation of a decision is defined:
# a time plus or minus any duration stays a representable datetime, and a number is a finite
# float64 (an int may be larger than 2**53, but float(n) must not overflow). A request value
# outside them is `request.invalid`; a policy literal outside them is a checker error; an
# arithmetic result outside them is an evaluation error.
MAX_DURATION = timedelta(days=36_500)  # the magnitude of any duration: about 100 years
MIN_TIME = datetime(1900, 1, 1, tzinfo=timezone.utc)  # inclusive
MAX_TIME = datetime(9000, 1, 1, tzinfo=timezone.utc)  # exclusive

# Evaluation cost (docs/limits.md, "Evaluation cost"; the cost model is agp.budget). A quantifier
# that is not inside another one may spend this many steps, nested quantifiers and the lists and
# strings its body scans included; more is an evaluation error of the condition.
MAX_EVAL_STEPS = 1_000_000
# `matches` with a `?` between literal characters searches in up to len(subject) * len(piece)
# character comparisons (matching with wildcards has no practical linear algorithm); above this
# many it is an evaluation error rather than seconds of work. Other patterns match in linear time.
MAX_MATCH_WORK = 1 << 24

# Sessions (docs/limits.md, "Sessions"; LANGUAGE.md §6). A request whose `task.history` holds this
# many items or more is denied `session.full`: a pure function of the request, so the task runtime
# (which never appends past it) and a stateless caller agree, and no call is ever decided on a
# truncated history.
MAX_SESSION_CALLS = 10_000


@dataclass(frozen=True, slots=True)
class LimitExceeded:
    where: str
    message: str


def check_request_value(value: object) -> LimitExceeded | None:
    """The first limit a request (plain JSON-like data) exceeds, or None. Iterative: no recursion."""
    stack: list[tuple[object, str, int]] = [(value, "request", 0)]
    nodes = 0
    while stack:
        v, where, depth = stack.pop()
        nodes += 1
        if nodes > MAX_REQUEST_NODES:
            return LimitExceeded("request", f"more than {MAX_REQUEST_NODES} values")
        if isinstance(v, str):
            if len(v) > MAX_STRING_LENGTH:
                return LimitExceeded(where, f"string longer than {MAX_STRING_LENGTH} characters")
        elif isinstance(v, dict):
            if depth >= MAX_REQUEST_DEPTH:
                return LimitExceeded(where, f"nested deeper than {MAX_REQUEST_DEPTH} levels")
            for k, item in v.items():
                if isinstance(k, str) and len(k) > MAX_STRING_LENGTH:
                    return LimitExceeded(where, "key too long")
                stack.append((item, f"{where}.{k}" if where != "request" else str(k), depth + 1))
        elif isinstance(v, (list, tuple)):
            if depth >= MAX_REQUEST_DEPTH:
                return LimitExceeded(where, f"nested deeper than {MAX_REQUEST_DEPTH} levels")
            if len(v) > MAX_LIST_LENGTH:
                return LimitExceeded(where, f"list longer than {MAX_LIST_LENGTH} items")
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(v))
    return None
