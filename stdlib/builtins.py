"""The standard functions: name -> signature, implementation and doc (shown on hover).

Every function is pure. A bad value (wrong type, malformed address) raises EvalError, which makes
the condition an evaluation error: it never allows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from agp.values import EvalError, LabelSet, kind_of, member, show


@dataclass(frozen=True, slots=True)
class Builtin:
    name: str
    params: tuple[tuple[str, ...], ...]  # accepted static type names, per parameter
    returns: str  # a static type name, as the checker spells it
    impl: Callable
    doc: str

    @property
    def signature(self) -> str:
        names = ", ".join("|".join(p) for p in self.params)
        return f"{self.name}({names}) -> {self.returns}"


def _need(value, kind: str, fn: str):
    if kind_of(value) != kind:
        raise EvalError(f"{fn}() expects a {kind}, got {kind_of(value)} {show(value)}")
    return value


def _len(x):
    if isinstance(x, LabelSet):
        return len(x.names)
    if kind_of(x) in ("string", "list", "object"):
        return len(x)
    raise EvalError(f"len() expects a string, list or object, got {kind_of(x)} {show(x)}")


def _ip(value, fn: str):
    _need(value, "string", fn)
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise EvalError(f"{fn}(): {show(value)} is not an IP address") from None


def _ip_in_cidr(ip, cidr):
    addr = _ip(ip, "ip_in_cidr")
    _need(cidr, "string", "ip_in_cidr")
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise EvalError(f"ip_in_cidr(): {show(cidr)} is not a CIDR range") from None
    return addr.version == net.version and addr in net


def _is_ip(s):
    _need(s, "string", "is_ip")
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def _host_within(host, domain):
    host = _need(host, "string", "host_within").lower().rstrip(".")
    domain = _need(domain, "string", "host_within").lower().rstrip(".")
    return host == domain or host.endswith("." + domain)


def _lists(a, b, fn):
    return _need(a, "list", fn), _need(b, "list", fn)


def _time(t, fn) -> datetime:
    """A timestamp, or an RFC 3339 string (as arguments carry them)."""
    if isinstance(t, str):
        from agp.model import parse_timestamp

        try:
            return parse_timestamp(t)
        except ValueError:
            raise EvalError(f"{fn}(): {show(t)} is not an RFC 3339 timestamp") from None
    return _need(t, "timestamp", fn)


def _utc(t: datetime) -> datetime:
    from datetime import timezone

    return t.astimezone(timezone.utc)


S, N, L, A = ("string",), ("number",), ("list",), ("any",)
TS = ("timestamp", "string")

BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in [
        Builtin("lower", (S,), "string", lambda s: _need(s, "string", "lower").lower(),
                "The string in lower case: `lower(args.email) == \"ops@acme.com\"`."),
        Builtin("upper", (S,), "string", lambda s: _need(s, "string", "upper").upper(),
                "The string in upper case."),
        Builtin("len", (("string", "list", "object", "data", "intents"),), "number", _len,
                "The length of a string, list or object, or the number of data classes or "
                "intents: `len(args.recipients) <= 5`."),
        Builtin("startswith", (S, S), "bool",
                lambda s, p: _need(s, "string", "startswith").startswith(
                    _need(p, "string", "startswith")),
                "Whether the string begins with the prefix: `startswith(args.path, \"/repo/\")`."),
        Builtin("endswith", (S, S), "bool",
                lambda s, p: _need(s, "string", "endswith").endswith(
                    _need(p, "string", "endswith")),
                "Whether the string ends with the suffix: `endswith(args.to, \"@acme.com\")`."),
        Builtin("contains", (A, A), "bool", lambda x, y: member(y, x),
                "`contains(x, y)` is `y in x`: list membership, a substring, a data class or "
                "intent in the request's sets."),
        Builtin("hour", (TS,), "number", lambda t: _utc(_time(t, "hour")).hour,
                "The hour (0-23) of a timestamp (or RFC 3339 string) in UTC: `hour(now) >= 9`."),
        Builtin("weekday", (TS,), "number", lambda t: _utc(_time(t, "weekday")).weekday(),
                "The day of the week of a timestamp in UTC, 0 for Monday to 6 for Sunday."),
        Builtin("ip_in_cidr", (S, S), "bool", _ip_in_cidr,
                "Whether an IP address lies in a CIDR range: "
                "`ip_in_cidr(target.ip, \"10.0.0.0/8\")`. A malformed address is an error."),
        Builtin("is_ip", (S,), "bool", _is_ip,
                "Whether the string is an IPv4 or IPv6 address (a raw-IP target often means "
                "someone is avoiding DNS-based controls)."),
        Builtin("is_private_ip", (S,), "bool",
                lambda s: _ip(s, "is_private_ip").is_private,
                "Whether an IP address is private, loopback or link-local (RFC 1918 and friends): "
                "a guard against server-side request forgery to internal services."),
        Builtin("host_within", (S, S), "bool", _host_within,
                "Whether a host name is the domain or one of its subdomains: "
                "`host_within(target.host, \"acme.com\")` holds for `api.acme.com`, not for "
                "`acme.com.evil.io`."),
        Builtin("intersects", (L, L), "bool",
                lambda a, b: (lambda x, y: any(member(v, y) for v in x))(
                    *_lists(a, b, "intersects")),
                "Whether two lists have an element in common."),
        Builtin("subset", (L, L), "bool",
                lambda a, b: (lambda x, y: all(member(v, y) for v in x))(
                    *_lists(a, b, "subset")),
                "Whether every element of the first list is in the second: "
                "`subset(args.recipients, task.params.contacts)`."),
    ]
}
