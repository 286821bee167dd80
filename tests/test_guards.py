"""std.guards against server-side request forgery, and the functions it stands on (issue 16,
items 5 and 6): every spelling of a metadata endpoint is refused, ordinary hosts are not, and the
host, address and time functions never raise anything but an evaluation error."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agp
from agp.compile import compile_policy
from agp.loader import check_sources
from agp.source import Source
from agp.stdlib.builtins import BUILTINS
from agp.values import EvalError, member

POLICY = """
import std.guards

agent fetcher "spiffe://acme.com/agents/fetcher"
tool web.get { intent read  args { url: string } }

permit fetches on web.get by fetcher
"""


@pytest.fixture(scope="module")
def engines():
    policy, diagnostics = check_sources([Source("guarded.agp", POLICY)])
    assert policy is not None, diagnostics
    return agp.Engine(policy, compiled=False), agp.Engine(policy, evaluator=compile_policy(policy))


def fetch(engines, host):
    request = {"agent": {"id": "spiffe://acme.com/agents/fetcher"}, "tool": "web.get",
               "args": {"url": "http://x/"}, "target": {"host": host},
               "now": "2026-11-28T09:00:00Z"}
    reference, compiled = engines
    decision = reference.decide(request)
    assert compiled.decide(request) == decision
    return decision


# Each of these reaches a metadata endpoint (or, for the last ones, an address that routes to
# one); the first six are the bypasses.
SSRF = {
    "::ffff:169.254.169.254": "IPv4-mapped IPv6",
    "METADATA.GOOGLE.INTERNAL": "upper case",
    "metadata.google.internal.": "a trailing dot (the DNS root)",
    "2852039166": "IPv4 as one decimal number",
    "169.254.169.254.": "an address with a trailing dot",
    "fd00:ec2::254": "AWS's IPv6 endpoint",
    "169.254.169.254": "the address itself",
    "metadata.google.internal": "the name itself",
    "metadata": "Google Cloud's short name",
    "instance-data": "AWS's name",
    "Metadata.Google.Internal.:80": "mixed case, trailing dot and a port",
    "0xa9fea9fe": "IPv4 as one hexadecimal number",
    "0XA9FEA9FE": "in upper case",
    "0x00000000a9fea9fe": "with leading zeros",
    "0251.0376.0251.0376": "octal bytes",
    "0xa9.0xfe.0xa9.0xfe": "hexadecimal bytes",
    "0251.0xfe.169.254": "mixed radixes",
    "169.254.43518": "three parts, the last filling two bytes",
    "169.16689662": "two parts, the last filling three bytes",
    "0x0a9.254.0251.0xfe": "hex with a leading zero digit",
    "169.254.169.254:80": "a port",
    "user:pw@169.254.169.254:8080": "an authority with user and port",
    "evil.example@169.254.169.254": "the host after the `@`",
    "%31%36%39.254.169.254": "percent-encoded digits",
    "\uff11\uff16\uff19\uff0e\uff12\uff15\uff14\uff0e\uff11\uff16\uff19\uff0e\uff12\uff15\uff14":
        "full-width digits and dots",
    "169\u3002254\u3002169\u3002254": "ideographic full stops",
    "\u24dcetadata.google.internal": "a circled letter",
    "[::ffff:a9fe:a9fe]": "bracketed IPv4-mapped IPv6 in hex",
    "[::ffff:169.254.169.254]:80": "bracketed, with a port",
    "0:0:0:0:0:ffff:a9fe:a9fe": "IPv4-mapped, uncompressed",
    "::ffff:0:a9fe:a9fe": "IPv4-translated IPv6 (SIIT)",
    "[FD00:EC2::254]": "AWS's IPv6 endpoint, bracketed, upper case",
    "fd00:0ec2:0000:0000:0000:0000:0000:0254": "uncompressed",
    "fd00:ec2::254%eth0": "a zone id",
    "[fd00:ec2::254%25eth0]:80": "a percent-encoded zone id in brackets",
    "fe80::a9fe:a9fe": "OpenStack's IPv6 endpoint (link-local)",
    "fe80::1%en0": "any link-local IPv6 address",
    "169.254.0.1": "anywhere in 169.254.0.0/16",
    "100.100.100.200": "Alibaba Cloud's endpoint",
    "::169.254.169.254": "IPv4-compatible IPv6",
    "64:ff9b::169.254.169.254": "NAT64's well-known prefix",
    "64:ff9b::a9fe:a9fe": "NAT64, in hex",
}

ORDINARY = ["example.com", "api.acme.com", "API.ACME.COM.", "acme.com:443", "169.255.0.1",
            "169.253.255.255", "10.0.0.1", "8.8.8.8", "0x08080808", "2001:db8::1",
            "[2001:db8::1]:443", "::ffff:8.8.8.8", "fd00:ec2::253", "fe00::1",
            "100.100.100.201", "metadata.example.com", "metadata.google.internal.evil.io",
            "google.internal", "instance-data.example", "metadata-google-internal",
            "169.254.169.254.example.com", "1.2.3.999"]


@pytest.mark.parametrize("host", sorted(SSRF), ids=lambda h: SSRF[h])
def test_every_spelling_of_a_metadata_endpoint_is_refused(engines, host):
    decision = fetch(engines, host)
    assert decision.decision == "deny"
    assert decision.rules == ["guard_no_metadata_endpoint"], decision
    assert decision.errors == []


@pytest.mark.parametrize("host", ORDINARY)
def test_ordinary_hosts_are_not_refused(engines, host):
    decision = fetch(engines, host)
    assert (decision.decision, decision.rules, decision.errors) == ("allow", ["fetches"], [])


@pytest.mark.parametrize("host", [2852039166, ["169.254.169.254"], {"ip": "169.254.169.254"}])
def test_a_host_that_is_not_a_string_is_refused(engines, host):
    decision = fetch(engines, host)
    assert decision.decision == "deny" and decision.rules == ["guard_no_metadata_endpoint"]
    assert "expects a string" in decision.errors[0]


# ---- the functions --------------------------------------------------------------------------------


def call(name, *args):
    return BUILTINS[name].impl(*args)


@pytest.mark.parametrize(("host", "canonical"), [
    ("Example.COM.", "example.com"),
    ("example.com..", "example.com"),
    ("user@example.com:8080", "example.com"),
    ("2852039166", "169.254.169.254"),
    ("0", "0.0.0.0"),
    ("0x", "0.0.0.0"),
    ("127.1", "127.0.0.1"),
    ("[::1]:80", "::1"),
    ("::FFFF:7F00:1", "127.0.0.1"),
    ("FD00:0EC2::0254", "fd00:ec2::254"),
    ("fe80::1%25eth0", "fe80::1"),
    ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d", "example.com"),
    ("1.2.3.999", "1.2.3.999"),  # not an address (a client refuses it): left as it is
    ("1.2.3.4.5", "1.2.3.4.5"),
    ("08.1.2.3", "08.1.2.3"),  # 8 is not an octal digit
    ("[not-ipv6]", "[not-ipv6]"),
    ("", ""),
])
def test_canonical_host(host, canonical):
    assert call("canonical_host", host) == canonical


def test_the_address_functions_read_hosts_the_same_way():
    assert call("is_ip", "2852039166") and call("is_ip", "[::1]:80")
    assert not call("is_ip", "example.com") and not call("is_ip", "1.2.3.999")
    assert call("ip_in_cidr", "::ffff:10.1.2.3", "10.0.0.0/8")
    assert call("ip_in_cidr", "0x0a010203", "10.0.0.0/8")
    assert call("ip_in_cidr", "::ffff:10.1.2.3", "::ffff:0:0/96") is False  # it is 10.1.2.3
    assert call("ip_in_cidr", "64:ff9b::a01:203", "64:ff9b::/96")  # itself, and 10.1.2.3
    assert call("is_private_ip", "0x7f000001") and call("is_private_ip", "::ffff:192.168.0.1")
    assert not call("is_private_ip", "::ffff:8.8.8.8")  # Python alone says it is private
    assert call("host_within", "API.Acme.COM.", "acme.com")
    assert call("host_within", "acme.com:443", "ACME.com.")
    assert not call("host_within", "acme.com.evil.io", "acme.com")
    assert not call("host_within", "10.1.2.3", "2.3")  # an address has no subdomains
    with pytest.raises(EvalError, match="not an IP address"):
        call("ip_in_cidr", "example.com", "10.0.0.0/8")


HOSTISH = st.one_of(
    st.text(),
    st.text("0123456789abcdefxX.:[]%@ \u3002\uff0e\uff11", max_size=40),
    st.builds(lambda parts, sep: sep.join(parts),
              st.lists(st.sampled_from(["0x", "0", "00", "0xff", "255", "4294967295",
                                        "99999999999999", "0" * 50 + "1", "ffff", "::", ""]),
                       max_size=6),
              st.sampled_from([".", ":", "::"])),
)
VALUES = st.one_of(HOSTISH, st.integers(), st.none(), st.lists(st.text(), max_size=2))


@settings(max_examples=3000)
@given(VALUES, VALUES)
def test_the_host_functions_raise_only_evaluation_errors(a, b):
    for name in ("canonical_host", "is_ip", "is_private_ip"):
        try:
            call(name, a)
        except EvalError:
            pass
    for name in ("ip_in_cidr", "host_within"):
        try:
            call(name, a, b)
        except EvalError:
            pass


@settings(max_examples=3000)
@given(st.text(alphabet=st.characters(blacklist_characters="%")))
def test_canonical_host_is_idempotent(host):
    # (Percent-escapes are decoded once, as a client does: "%2541" is "%41", not "a".)
    once = call("canonical_host", host)
    assert call("canonical_host", once) == once


# ---- hour() and weekday() ---------------------------------------------------------------------


def test_hour_and_weekday_of_the_first_day_of_the_calendar():
    # The reproduction: an OverflowError before. In UTC this is 0000-12-31T23:30, a
    # Sunday (the calendar's first day, 0001-01-01, is a Monday).
    t = datetime.fromisoformat("0001-01-01T00:30:00+01:00")
    assert (call("hour", t), call("weekday", t)) == (23, 6)
    t = datetime.fromisoformat("9999-12-31T23:30:00-01:00")
    assert (call("hour", t), call("weekday", t)) == (0, 5)  # 10000-01-01 would be a Saturday


OFFSETS = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                        max_value=timedelta(hours=23, minutes=59))


@settings(max_examples=2000)
@given(st.datetimes(), OFFSETS)
def test_hour_and_weekday_agree_with_utc_and_never_overflow(t, offset):
    aware = t.replace(tzinfo=timezone(offset))
    try:
        utc = aware.astimezone(timezone.utc)
    except OverflowError:
        utc = None
    hour, weekday = call("hour", aware), call("weekday", aware)
    if utc is not None:
        assert (hour, weekday) == (utc.hour, utc.weekday())
    assert 0 <= hour <= 23 and 0 <= weekday <= 6


def test_a_time_without_zone_is_an_evaluation_error():
    with pytest.raises(EvalError, match="no time zone"):
        call("hour", datetime(2026, 1, 1))


# ---- subset() and intersects() ----------------------------------------------------------------

SCALARS = st.one_of(st.integers(-3, 3), st.sampled_from([1.0, 2.5, -0.0, True, False]),
                    st.sampled_from(["a", "b", ""]), st.none(),
                    st.sampled_from([timedelta(0), timedelta(seconds=1)]),
                    st.sampled_from([datetime(2026, 1, 1, tzinfo=timezone.utc),
                                     datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))])
                    )
ITEMS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["k", "l"]), inner, max_size=2)),
    max_leaves=6)


@settings(max_examples=2000)
@given(st.lists(ITEMS, max_size=6), st.lists(ITEMS, max_size=6))
def test_subset_and_intersects_are_membership_with_equality(a, b):
    # The definition (quadratic) against the implementation (sets of keys): `==` semantics,
    # so 1 == 1.0, True != 1, lists and objects compare by content, times as instants.
    assert call("subset", a, b) == all(member(x, b) for x in a)
    assert call("intersects", a, b) == any(member(x, b) for x in a)


def test_subset_and_intersects_on_the_longest_lists():
    # Two 10,000-item lists: 71-92 s per decision before (quadratic); now linear.
    a = [f"item-{i}" for i in range(10_000)]
    b = [f"item-{i}" for i in range(10_000, 0, -1)] + ["item-0"]
    assert call("subset", a, b) and not call("subset", a + ["x"], b)
    assert call("intersects", a, ["x", "item-9999"]) and not call("intersects", a, ["x"])
    assert call("subset", [1, 2.0, [3]], [3, 2, 1, [3.0]]) and not call("subset", [True], [1])


def test_subset_and_intersects_do_linear_work(monkeypatch):
    # Counted, not timed: the quadratic versions compared every pair (4,000,000 comparisons for
    # two lists of 2,000); hashing compares none pairwise.
    from agp import values

    calls = 0
    real = values.equal

    def counting(a, b):
        nonlocal calls
        calls += 1
        return real(a, b)

    monkeypatch.setattr(values, "equal", counting)
    a, b = [[i] for i in range(2000)], [[-i] for i in range(1, 2001)]
    assert call("subset", a, a[::-1]) and not call("intersects", a, b)
    assert calls <= 4 * (len(a) + len(b))
