"""The standard functions: name -> signature, implementation and doc (shown on hover).

Every function is pure. A bad value (wrong type, malformed address) raises EvalError, which makes
the condition an evaluation error: it never allows. Functions that read a long string or a list
spend steps from the evaluation budget (agp.budget), like the operators.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote

from agp import budget
from agp.values import EvalError, LabelSet, kind_of, member, show


@dataclass(frozen=True, slots=True)
class Builtin:
    name: str
    params: tuple[tuple[str, ...], ...]  # accepted static type names, per parameter
    returns: str  # a static type name, as the checker spells it
    impl: Callable[..., object]  # takes one value per parameter
    doc: str

    @property
    def signature(self) -> str:
        names = ", ".join("|".join(p) for p in self.params)
        return f"{self.name}({names}) -> {self.returns}"


def _expects(kind: str, value: object, fn: str) -> EvalError:
    return EvalError(f"{fn}() expects a {kind}, got {kind_of(value)} {show(value)}")


def _string(value: object, fn: str) -> str:
    if isinstance(value, str):
        return value
    raise _expects("string", value, fn)


def _text(value: object, fn: str) -> str:
    """A string argument that the function reads whole."""
    text = _string(value, fn)
    budget.spend_text(len(text))
    return text


def _len(x: object) -> int:
    if isinstance(x, LabelSet):
        return len(x.names)
    if isinstance(x, (str, list, tuple, dict)):
        return len(x)
    raise EvalError(f"len() expects a string, list or object, got {kind_of(x)} {show(x)}")


# ---- hosts and addresses ------------------------------------------------------------------------
#
# A guard against server-side request forgery is only as good as its idea of where a request goes.
# HTTP clients and resolvers accept many spellings of one host: any case, a trailing dot,
# brackets, a port, an IPv6 zone, percent-encoding, full-width characters, and for IPv4 the forms
# of inet_aton and of the WHATWG URL standard (`2852039166`, `0xa9fea9fe`, `0251.0376.0251.0376`,
# `169.254.43518`). The functions below read a host the way such a client does, so that a policy
# compares one canonical form.

_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})  # dots that IDNA maps to "."
_RADIX_DIGITS = {10: frozenset("0123456789"), 8: frozenset("01234567"),
                 16: frozenset("0123456789abcdef")}
# IPv6 ranges whose last 32 bits are an IPv4 address that traffic may reach: IPv4-compatible and
# IPv4-translated (deprecated, but still translated by some stacks), NAT64's well-known prefix.
_CARRY_IPV4 = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("::ffff:0:0:0/96"),
               ipaddress.IPv6Network("64:ff9b::/96"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _host(text: str) -> tuple[str, IPAddress | None]:
    """The host a client connects to for `text` (a host, or a URL authority `user@host:port`),
    in canonical form (see `canonical_host`'s doc), and the IP address it is, if it is one.
    Linear in the length of `text`.

    >>> _host("[::FFFF:a9fe:a9fe]:80")
    ('169.254.169.254', IPv4Address('169.254.169.254'))
    """
    if "%" in text:
        text = unquote(text)  # never raises: malformed escapes stay as they are
    if text.isascii():
        text = text.lower()
    else:  # what IDNA's mapping does to the characters a host may use: fold case and width
        text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        text = text.translate(_DOTS)
    text = text.rpartition("@")[2].rstrip(".")
    if text.startswith("["):
        close = text.find("]")
        rest = text[close + 1:]
        if (not rest or (rest[0] == ":" and rest[1:].isdigit())) and ":" in text[1:close]:
            text = text[1:close]  # brackets hold an IPv6 address, nothing else
    elif text.count(":") == 1:
        name, _, port = text.partition(":")
        if port.isdigit() or not port:
            text = name
    text = text.rstrip(".")
    address = _address(text)
    return (text, None) if address is None else (str(address), address)


def _address(host: str) -> IPAddress | None:
    """The IP address a canonical host names, or None; IPv4-mapped IPv6 is its IPv4 address."""
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host.partition("%")[0])  # without a zone
        except ValueError:
            return None
        return address.ipv4_mapped or address
    value = _ipv4(host)
    return None if value is None else ipaddress.IPv4Address(value)


def _ipv4(host: str) -> int | None:
    """The WHATWG URL standard's IPv4 parser (as inet_aton): 1 to 4 dot-separated numbers, each
    decimal, octal (leading 0) or hexadecimal (0x), the last filling the remaining bytes.

    >>> [_ipv4(h) for h in ("169.254.169.254", "2852039166", "0xa9.0376.43518", "1.2.3.999")]
    [2852039166, 2852039166, 2852039166, None]
    """
    parts = host.split(".")
    if len(parts) > 4:
        return None
    numbers = []
    for part in parts:
        radix = 10
        if part[:2] == "0x":
            radix, part = 16, part[2:]
        elif len(part) > 1 and part[0] == "0":
            radix, part = 8, part[1:]
        elif not part:
            return None
        if not _RADIX_DIGITS[radix].issuperset(part):
            return None
        part = part.lstrip("0")
        if len(part) > 12:  # more than 2**32 in any radix (and no int() of a huge string)
            return None
        numbers.append(int(part or "0", radix))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    for i, n in enumerate(head):
        last += n << (8 * (3 - i))
    return last


def _ip(value: object, fn: str) -> IPAddress:
    address = _host(_text(value, fn))[1]
    if address is None:
        raise EvalError(f"{fn}(): {show(value)} is not an IP address")
    return address


def _forms(address: IPAddress) -> tuple[IPAddress, ...]:
    """The address, and the IPv4 address an IPv6 one carries (see _CARRY_IPV4)."""
    if address.version == 6 and int(address) >> 24 & 0xFF and any(
            address in net for net in _CARRY_IPV4):
        return address, ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return (address,)


def _ip_in_cidr(ip: object, cidr: object) -> bool:
    address = _ip(ip, "ip_in_cidr")
    try:
        net = ipaddress.ip_network(_text(cidr, "ip_in_cidr"), strict=False)
    except ValueError:
        raise EvalError(f"ip_in_cidr(): {show(cidr)} is not a CIDR range") from None
    return any(a.version == net.version and a in net for a in _forms(address))


def _is_ip(s: object) -> bool:
    return _host(_text(s, "is_ip"))[1] is not None


def _is_private_ip(s: object) -> bool:
    return any(a.is_private for a in _forms(_ip(s, "is_private_ip")))


def _canonical_host(s: object) -> str:
    return _host(_text(s, "canonical_host"))[0]


def _host_within(host: object, domain: object) -> bool:
    name, address = _host(_text(host, "host_within"))
    within = _host(_text(domain, "host_within"))[0]
    # an address has no subdomains: 10.1.2.3 is not "within" 2.3
    return name == within or (address is None and name.endswith("." + within))


# ---- times --------------------------------------------------------------------------------------


def _time(t: object, fn: str) -> datetime:
    """A timestamp, or an RFC 3339 string (as arguments carry them)."""
    if isinstance(t, str):
        from agp.model import parse_timestamp

        try:
            return parse_timestamp(t)
        except ValueError as exc:  # not RFC 3339, or outside the bounds of agp.limits
            raise EvalError(f"{fn}(): {show(t)}: {exc}") from None
    if isinstance(t, datetime):
        return t
    raise _expects("timestamp", t, fn)


_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000


def _utc_clock(t: datetime, fn: str) -> tuple[int, int]:
    """(hour, weekday) of `t` in UTC, by arithmetic on the wall clock and the offset: converting
    a time near year 1 or 9999 to UTC would leave the calendar (OverflowError)."""
    try:
        offset = t.utcoffset()
    except (ValueError, OverflowError, TypeError):  # a tzinfo that cannot say
        offset = None
    if offset is None:
        raise EvalError(f"{fn}(): {show(t)} has no time zone")
    local = ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond
    days, of_day = divmod(local - offset // _US, _DAY_US)
    return of_day // 3_600_000_000, (t.weekday() + days) % 7


def _hour(t: object) -> int:
    return _utc_clock(_time(t, "hour"), "hour")[0]


def _weekday(t: object) -> int:
    return _utc_clock(_time(t, "weekday"), "weekday")[1]


# ---- lists --------------------------------------------------------------------------------------


def _key(value: object) -> Hashable:
    """A hashable stand-in for `value` with the equality of `==` (agp.values.equal): two values
    have equal keys exactly when they are equal, so list functions can use sets.

    >>> _key(1) == _key(1.0), _key(True) == _key(1), _key([1, "a"]) == _key([1.0, "a"])
    (True, False, True)
    """
    kind = kind_of(value)
    if isinstance(value, (list, tuple)):
        budget.spend(budget.CONTAINER_STEPS + len(value))
        return kind, tuple(_key(x) for x in value)
    if isinstance(value, dict):
        budget.spend(budget.CONTAINER_STEPS + len(value))
        return kind, frozenset((k, _key(x)) for k, x in value.items())
    if isinstance(value, str):
        budget.spend_text(len(value))
    elif isinstance(value, datetime):  # an instant, whatever its zone (as `==` compares them)
        return kind, _utc_instant(value)
    return kind, value


def _utc_instant(t: datetime) -> int:
    offset = t.utcoffset()
    # microseconds since the epoch of the proleptic calendar, in UTC: no datetime overflow
    return (t.replace(tzinfo=None) - datetime.min) // _US - (offset // _US if offset else 0)


def _list(value: object, fn: str) -> Sequence[object]:
    if isinstance(value, (list, tuple)):
        return value
    raise _expects("list", value, fn)


def _lists(a: object, b: object, fn: str) -> tuple[Sequence[object], Sequence[object]]:
    pair = _list(a, fn), _list(b, fn)
    budget.spend(len(pair[0]) + len(pair[1]))
    return pair


def _intersects(a: object, b: object) -> bool:
    small, large = _lists(a, b, "intersects")
    if len(small) > len(large):
        small, large = large, small
    keys = {_key(x) for x in small}
    return any(_key(y) in keys for y in large)


def _subset(a: object, b: object) -> bool:
    sub, sup = _lists(a, b, "subset")
    keys = {_key(y) for y in sup}
    return all(_key(x) in keys for x in sub)


S, L, A = ("string",), ("list",), ("any",)
TS = ("timestamp", "string")

BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in [
        Builtin("lower", (S,), "string", lambda s: _text(s, "lower").lower(),
                "The string in lower case: `lower(args.email) == \"ops@acme.com\"`."),
        Builtin("upper", (S,), "string", lambda s: _text(s, "upper").upper(),
                "The string in upper case."),
        Builtin("len", (("string", "list", "object", "data", "intents"),), "number", _len,
                "The length of a string, list or object, or the number of data classes or "
                "intents: `len(args.recipients) <= 5`."),
        Builtin("startswith", (S, S), "bool",
                lambda s, p: _string(s, "startswith").startswith(
                    _text(p, "startswith")),
                "Whether the string begins with the prefix: `startswith(args.path, \"/repo/\")`."),
        Builtin("endswith", (S, S), "bool",
                lambda s, p: _string(s, "endswith").endswith(
                    _text(p, "endswith")),
                "Whether the string ends with the suffix: `endswith(args.to, \"@acme.com\")`."),
        Builtin("contains", (A, A), "bool", lambda x, y: member(y, x),
                "`contains(x, y)` is `y in x`: list membership, a substring, a data class or "
                "intent in the request's sets."),
        Builtin("hour", (TS,), "number", _hour,
                "The hour (0-23) of a timestamp (or RFC 3339 string) in UTC: `hour(now) >= 9`."),
        Builtin("weekday", (TS,), "number", _weekday,
                "The day of the week of a timestamp in UTC, 0 for Monday to 6 for Sunday."),
        Builtin("canonical_host", (S,), "string", _canonical_host,
                "The host a client connects to, in one spelling: lower case, no trailing dot, "
                "no brackets, port, user or IPv6 zone, percent-escapes and full-width "
                "characters decoded, and an IP address in its standard form whatever form it "
                "came in (`2852039166`, `0xa9fea9fe`, `169.254.43518`, `::ffff:a9fe:a9fe` are "
                "all `169.254.169.254`): `canonical_host(target.host) == \"metadata\"`."),
        Builtin("ip_in_cidr", (S, S), "bool", _ip_in_cidr,
                "Whether an IP address lies in a CIDR range: "
                "`ip_in_cidr(target.ip, \"10.0.0.0/8\")`. The address is read as "
                "`canonical_host` reads it, and an IPv6 address that carries an IPv4 one "
                "(`::ffff:a.b.c.d`, `64:ff9b::a.b.c.d`) is in the IPv4 ranges of that address. "
                "A malformed address is an error."),
        Builtin("is_ip", (S,), "bool", _is_ip,
                "Whether the string is an IPv4 or IPv6 address in any form a client accepts "
                "(`2852039166` and `[::1]:80` are; see `canonical_host`): a raw-IP target often "
                "means someone is avoiding DNS-based controls. Never an error on a string."),
        Builtin("is_private_ip", (S,), "bool", _is_private_ip,
                "Whether an IP address (read as `ip_in_cidr` reads it) is private, loopback or "
                "link-local (RFC 1918 and friends): a guard against server-side request "
                "forgery to internal services."),
        Builtin("host_within", (S, S), "bool", _host_within,
                "Whether a host is the domain or one of its subdomains, both read as "
                "`canonical_host` reads them: `host_within(target.host, \"acme.com\")` holds "
                "for `API.acme.com.`, not for `acme.com.evil.io`."),
        Builtin("intersects", (L, L), "bool", _intersects,
                "Whether two lists have an element in common (as `==` compares them). Linear: "
                "prefer it to a quantifier over one list testing `in` the other."),
        Builtin("subset", (L, L), "bool", _subset,
                "Whether every element of the first list is in the second (as `==` compares "
                "them): `subset(args.recipients, task.params.contacts)`. Linear."),
    ]
}
