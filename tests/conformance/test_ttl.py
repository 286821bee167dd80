"""LANGUAGE.md §5 step 5: the grant's TTL."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from support import load_text

NOW = "2026-11-28T10:00:00Z"
BOT = "spiffe://t/bot"


def decide(policy, **request):
    request.setdefault("agent", {"id": BOT})
    request.setdefault("tool", "x.y")
    request.setdefault("now", NOW)
    return load_text(policy).decide(request)


@pytest.mark.parametrize(
    "policy, ttl",
    [
        ("permit p", 900),
        ("permit p ttl 2h", 7200),
        ("permit p ttl 1d", 86400),
        ("permit p ttl 1h30m", 5400),
        ("permit p ttl 1d2h3m4s", 93784),
        ("permit p ttl 45s", 45),
        ("defaults { ttl 3m }\npermit p", 180),
        ("defaults { ttl 3m }\npermit p ttl 10m", 600),
        ("defaults { ttl 15m  max_ttl 1m }\npermit p ttl 5m", 60),
        ("defaults { ttl 15m  max_ttl 1m }\npermit p", 60),
        ("defaults { ttl 2h  max_ttl 1h }\npermit p", 3600),
        ("permit p ttl 5m\npermit q ttl 2m", 120),
        ("permit p ttl 2m\npermit q ttl 5m", 120),
        ("defaults { ttl 15m }\npermit p ttl 20m\npermit q", 900),
        ("defaults { ttl 15m }\npermit p ttl 20m\npermit q ttl 1h", 1200),
    ],
    ids=["default-15m", "no-max-without-defaults", "days", "compound", "all-units", "seconds",
         "defaults-ttl", "rule-ttl-over-defaults", "max-ttl-caps-rule", "max-ttl-caps-default",
         "max-ttl-caps-defaults-ttl", "min-of-permits", "min-of-permits-reversed",
         "permit-without-ttl-contributes-default", "largest-rules"],
)
def test_allow_ttl(policy, ttl):
    d = decide(policy)
    assert d.decision == "allow"
    assert d.ttl == ttl


def test_non_matching_permit_does_not_contribute():
    d = decide("permit p when false ttl 1m\npermit q ttl 10m")
    assert (d.decision, list(d.rules), d.ttl) == ("allow", ["q"], 600)


def test_deny_ttl_zero():
    d = decide("permit p ttl 5m\nforbid f")
    assert (d.decision, d.ttl) == ("deny", 0)


def test_default_deny_ttl_zero():
    d = decide("permit p when false ttl 5m")
    assert (d.decision, d.ttl) == ("deny", 0)


def test_ask_alone_gets_defaults_ttl():
    d = decide("defaults { ttl 3m }\nask a")
    assert (d.decision, d.ttl) == ("ask", 180)


def test_ask_alone_without_defaults():
    d = decide("ask a")
    assert (d.decision, d.ttl) == ("ask", 900)


def test_ask_takes_matching_permits_ttl():
    d = decide("defaults { ttl 3m }\nask a\npermit p ttl 1m")
    assert (d.decision, d.ttl) == ("ask", 60)


def test_ask_capped_by_max_ttl():
    d = decide("defaults { ttl 30m  max_ttl 10m }\nask a")
    assert (d.decision, d.ttl) == ("ask", 600)


TASKED = """
task job { ttl 10m }
agent bot "spiffe://t/bot"
permit p ttl 1h
ask a when context.needs_human
"""


def test_task_remaining_bounds_ttl():
    d = decide(TASKED, task={"kind": "job", "started_at": NOW}, now="2026-11-28T10:07:00Z",
               context={"needs_human": False})
    assert (d.decision, d.ttl) == ("allow", 180)


def test_task_remaining_rounds_down():
    d = decide(TASKED, task={"kind": "job", "started_at": NOW}, now="2026-11-28T10:07:30.600Z",
               context={"needs_human": False})
    assert (d.decision, d.ttl) == ("allow", 149)


def test_task_remaining_bounds_ask():
    d = decide(TASKED, task={"kind": "job", "started_at": NOW}, now="2026-11-28T10:08:20Z",
               context={"needs_human": True})
    assert (d.decision, d.ttl) == ("ask", 100)


def test_task_remaining_with_started_at_offset():
    # 10:00+02:00 is 08:00Z: the task of 10m ran out long before 10:00Z.
    d = decide(TASKED, task={"kind": "job", "started_at": "2026-11-28T10:00:00+02:00"},
               context={"needs_human": False})
    assert d.decision == "deny"
    assert "task.expired" in d.rules


HOPS = """
agent bot "spiffe://t/bot"
permit p ttl 1h
"""


def hop_chain(*scopes):
    chain = [{"principal": "user:alice", "kind": "human"}]
    for i, (at, ttl) in enumerate(scopes):
        last = i == len(scopes) - 1
        chain.append({"principal": BOT if last else f"spiffe://t/a{i}", "kind": "agent",
                      "at": at, "scope": {"ttl": ttl}})
    return chain


def test_hop_remaining_bounds_ttl():
    d = decide(HOPS, chain=hop_chain((NOW, "5m")), now="2026-11-28T10:01:00Z")
    assert (d.decision, d.ttl) == ("allow", 240)


def test_hop_remaining_rounds_down():
    d = decide(HOPS, chain=hop_chain((NOW, "1m")), now="2026-11-28T10:00:00.250Z")
    assert (d.decision, d.ttl) == ("allow", 59)


def test_hop_numeric_ttl_in_seconds():
    d = decide(HOPS, chain=hop_chain((NOW, 90)))
    assert (d.decision, d.ttl) == ("allow", 90)


def test_hop_compound_ttl():
    d = decide(HOPS, chain=hop_chain((NOW, "1h30m")))
    assert (d.decision, d.ttl) == ("allow", 3600)


def test_smallest_of_several_hops():
    d = decide(HOPS, chain=hop_chain((NOW, "10m"), ("2026-11-28T10:01:00Z", "3m")),
               now="2026-11-28T10:02:00Z")
    assert (d.decision, d.ttl) == ("allow", 120)


def test_ttl_is_smallest_of_all_bounds():
    policy = """
    defaults { ttl 15m  max_ttl 1h }
    task job { ttl 30m }
    agent bot "spiffe://t/bot"
    permit p ttl 5m
    """
    base = {"task": {"kind": "job", "started_at": NOW}}
    # The rule's 5m is smallest.
    assert decide(policy, **base, now="2026-11-28T10:02:00Z").ttl == 300
    # The task's remaining 2m is smallest.
    assert decide(policy, **base, now="2026-11-28T10:28:00Z").ttl == 120
    # The hop's remaining 30s is smallest.
    d = decide(policy, **base, chain=hop_chain(("2026-11-28T10:00:00Z", "2m30s")),
               now="2026-11-28T10:02:00Z")
    assert d.ttl == 30


def test_max_ttl_alone_caps():
    d = decide("defaults { max_ttl 1m }\npermit p ttl 5m")
    assert (d.decision, d.ttl) == ("allow", 60)


def test_hop_fractional_numeric_ttl_rounds_down():
    d = decide(HOPS, chain=hop_chain((NOW, 90.5)))
    assert (d.decision, d.ttl) == ("allow", 90)


# Times are instants: a zone is converted to UTC before any arithmetic, so lifetimes are elapsed
# time even across a daylight-saving change (Europe/Paris falls back at 03:00 on 2026-10-25).
PARIS = ZoneInfo("Europe/Paris")
LONG_TASK = """
task job { ttl 2h }
agent bot "spiffe://t/bot"
permit p ttl 3h
"""


def test_task_remaining_is_elapsed_time_across_dst():
    started = datetime(2026, 10, 25, 1, 30, tzinfo=PARIS)  # 23:30Z
    now = datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=PARIS)  # the second 02:15: 01:15Z
    d = decide(LONG_TASK, task={"kind": "job", "started_at": started}, now=now)
    assert (d.decision, d.ttl) == ("allow", 15 * 60)


def test_task_expires_by_elapsed_time_across_dst():
    started = datetime(2026, 10, 25, 1, 30, tzinfo=PARIS)
    now = datetime(2026, 10, 25, 2, 45, fold=1, tzinfo=PARIS)  # 2h15m later, 1h15m on the wall
    d = decide(LONG_TASK, task={"kind": "job", "started_at": started}, now=now)
    assert d.decision == "deny" and "task.expired" in d.rules


def test_hop_remaining_is_elapsed_time_across_dst():
    at = datetime(2026, 10, 25, 1, 30, tzinfo=PARIS)
    now = datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=PARIS)
    d = decide(HOPS, chain=hop_chain((at, "2h")), now=now)
    assert (d.decision, d.ttl) == ("allow", 15 * 60)


def test_ttl_near_the_upper_time_bound():
    d = decide(LONG_TASK, task={"kind": "job", "started_at": "8999-12-31T23:00:00Z"},
               now="8999-12-31T23:59:59Z")
    assert (d.decision, d.ttl) == ("allow", 3601)


def test_hop_ttl_at_the_duration_bound():
    d = decide(HOPS, chain=hop_chain((NOW, "36500d")))
    assert (d.decision, d.ttl) == ("allow", 3600)


def test_hop_ttl_beyond_the_duration_bound_is_invalid():
    d = decide(HOPS, chain=hop_chain((NOW, 36_501 * 86_400)))
    assert (d.decision, d.rules, d.ttl) == ("deny", ["request.invalid"], 0)
