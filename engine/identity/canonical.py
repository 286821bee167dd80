"""RFC 8785 canonical JSON (JCS): one byte string per JSON value, so that two parties that parse
the same arguments compute the same digest.

Why not `json.dumps(sort_keys=True)`: JCS sorts keys by UTF-16 code units (not code points) and
writes numbers as ECMAScript does (`1e+21`, `1e-7`, `4.5`, `2` for `2.0`, `-0` as `0`), so a
tool server in JavaScript, Go or Java gets the same bytes.

    >>> canonical_json({"b": [1.0, 1e21, 0.000001, -0.0], "a": "\u20ac\\n"})
    b'{"a":"\\xe2\\x82\\xac\\\\n","b":[1,1e+21,0.000001,0]}'
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

# Strings as JSON.stringify writes them: `"`, `\` and controls escaped (\b \t \n \f \r, else
# \u00xx in lower case), everything else as it is. json.dumps(ensure_ascii=False) does exactly
# that.
_string = json.JSONEncoder(ensure_ascii=False).encode


def _number(value: float) -> str:
    """ECMAScript's Number.prototype.toString for a finite double (ECMA-262 Number::toString).

    Python's repr is the shortest representation that round-trips, as ECMAScript's is; only the
    layout differs.
    """
    if value == 0:
        return "0"  # also -0
    if not math.isfinite(value):
        raise ValueError("JSON has no NaN or infinity")
    sign = "-" if value < 0 else ""
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    exp = int(exp_text) if exp_text else 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac.rstrip("0")).lstrip("0") or "0"
    # n: the position of the decimal point relative to the digits (value = 0.digits * 10**n)
    n = len(whole.lstrip("0")) + exp if whole.strip("0") else \
        exp - (len(frac) - len(frac.lstrip("0")))
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{head}e{'+' if e > 0 else '-'}{abs(e)}"


def _utf16(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare as the code units do.
    return key.encode("utf-16-be", "surrogatepass")


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, (int, float)):
        # JSON numbers are doubles in JCS: an integer beyond 2**53 is written as its nearest
        # double, as every other implementation will have parsed it.
        out.append(_number(float(value)))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"a JSON object key is a string, not {type(key).__name__}")
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16)):
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, datetime):
        # Python callers may put an aware datetime in `args` (agp.values): it travels as the
        # RFC 3339 string the request's JSON would carry.
        out.append(_string(value.isoformat().replace("+00:00", "Z")))
    elif isinstance(value, timedelta):
        out.append(_number(value.total_seconds()))
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 bytes of a JSON value (UTF-8). Raises ValueError or TypeError for what JSON
    cannot carry."""
    out: list[str] = []
    _write(value, out)
    # A lone surrogate has no UTF-8 form; JSON.stringify would escape it, and so does this.
    return "".join(out).encode("utf-8", "backslashreplace")
