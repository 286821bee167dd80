"""Worst-case requests (issue 16, items 11 and 12): one decision at the documented limits.

    python bench/worst_request.py            # every case, both evaluators
    python bench/worst_request.py --quick    # the same cases, one run each (for CI)
    python bench/worst_request.py -k subset  # the cases whose name contains "subset"

Each case is a one-rule policy and the request that makes it work hardest within the limits of
docs/limits.md (lists of 10,000 items, strings of 1 MiB, 100,000 values): the issue's
reproductions, then, for each kind of step of the evaluation budget (agp.budget), a request that
spends just under the budget on that kind, and the worst `matches` allowed. The run checks the
outcome each case expects (a budget error, a pattern refused, or a decision without error) and
prints the time of one decision with the reference and with the compiled evaluator (which, when
a rule fails, runs it again with the reference to write the error: its time includes both).
"""

from __future__ import annotations

import argparse
import gc
import re
import time
from dataclasses import dataclass

import agp
from agp import glob
from agp.compile import compile_policy
from agp.limits import (
    MAX_EVAL_STEPS,
    MAX_LIST_LENGTH,
    MAX_MATCH_WORK,
    MAX_STRING_LENGTH,
)
from agp.loader import check_sources
from agp.source import Source

HEADER = "tool t { args { a?: list, b?: list, c?: list, s?: string, p?: string } }\n"
BUDGET = "budget error"  # the expected outcome: the evaluation budget runs out
REFUSED = "pattern refused"  # `matches` refuses the pattern (MAX_MATCH_WORK)
DECIDED = "decided"  # the rule is evaluated to the end, without error

MiB = MAX_STRING_LENGTH
N = MAX_LIST_LENGTH


@dataclass(frozen=True)
class Case:
    name: str
    condition: str
    args: dict
    expect: str
    note: str = ""


def words(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def deep(last: int, size: int) -> list:
    """10,000 lists of `size` numbers, the last one ending in `last` (one longer when `size` is
    0): `==` between deep(0, size) and deep(1, size) visits every value."""
    return [[0] * size for _ in range(N - 1)] + [[0] * (size - 1) + [last] if size else [last]]


def cases() -> list[Case]:
    wild = MAX_MATCH_WORK // MiB  # the longest `?` piece allowed against a 1 MiB subject
    return [
        # -- the reproductions of issue 16 --
        Case("subset: two 10,000-item lists", "subset(args.a, args.b)",
             {"a": words("a", N), "b": words("b", N)}, DECIDED, "issue: 71-92 s"),
        Case("intersects: two 10,000-item lists", "intersects(args.a, args.b)",
             {"a": words("a", N), "b": words("b", N)}, DECIDED, "issue: 71-92 s"),
        Case("nested quantifiers: 3,000 items",
             'any(x in args.a: any(y in args.a: x == y and x == "zz"))',
             {"a": words("a", 3000)}, BUDGET, "issue: 7-32 s"),
        Case("matches: 200k subject, 100k request pattern", "args.s matches args.p",
             {"s": "a" * 200_000, "p": "*" + "a?" * 50_000 + "b*"}, REFUSED, "issue: 12 s"),
        # -- as much work as the budget allows, one kind of step at a time --
        Case("nested quantifiers: 10,000 items",
             'any(x in args.a: any(y in args.a: x == y and x == "zz"))',
             {"a": words("a", N)}, BUDGET),
        Case("quantifier items, just under the budget",
             'any(x in args.a: any(y in args.b: y == "zz"))',
             {"a": words("a", 12), "b": words("b", N)}, DECIDED, "120,000 bodies of 3 nodes"),
        Case("quantifier items with a bigger body, just under the budget",
             'any(x in args.a: any(y in args.b: y == "zz" or y == "zy" or startswith(y, "q") '
             'or endswith(y, "q") or len(y) > 100))',
             {"a": words("a", 2), "b": words("b", N)}, DECIDED, "20,000 bodies of 20 nodes"),
        Case("list scans (`in`), just under the budget", "any(x in args.a: x in args.b)",
             {"a": words("a", 99), "b": words("b", N)}, DECIDED, "990,000 items compared"),
        Case("list scans (`in`), 10,000 x 10,000", "any(x in args.a: x in args.b)",
             {"a": words("a", N), "b": words("b", N)}, BUDGET),
        Case("list scans of numbers, just under the budget", "any(x in args.a: x in args.b)",
             {"a": list(range(-99, 0)), "b": list(range(N))}, DECIDED, "990,000 items compared"),
        Case("deep `==`, just under the budget", "any(x in args.a: args.b == args.c)",
             {"a": words("a", 7), "b": deep(0, 3), "c": deep(1, 3)}, DECIDED,
             "7 comparisons of 10,000 lists of 3"),
        Case("deep `==` of empty lists, just under the budget",
             "any(x in args.a: args.b == args.c)",
             {"a": words("a", 9), "b": deep(0, 0), "c": deep(1, 0)}, DECIDED,
             "9 comparisons of 10,000 lists"),
        Case("substring search in 1 MiB, just under the budget",
             'any(x in args.a: "xy" in args.s)',
             {"a": words("a", 60), "s": "x" * MiB}, DECIDED, "60 searches"),
        Case("lower() of 1 MiB, just under the budget", 'any(x in args.a: lower(args.s) == "x")',
             {"a": words("a", 60), "s": "\u00c9" * MiB}, DECIDED, "60 conversions"),
        Case("substring search in 1 MiB, 10,000 times", 'any(x in args.a: "xy" in args.s)',
             {"a": words("a", N), "s": "x" * MiB}, BUDGET),
        # -- `matches` and the functions, outside quantifiers --
        Case(f"matches: 1 MiB subject, `?` piece of {wild} (the most allowed)",
             "args.s matches args.p",
             {"s": "a" * MiB, "p": "*" + "a?" * (wild // 2 - 1) + "ab*"}, DECIDED),
        Case("matches: 4,096 subject, `?` piece of 4,095 (the most allowed)",
             "args.s matches args.p",
             {"s": "a" * 4096, "p": "*" + "a?" * 2047 + "b*"}, DECIDED),
        Case("matches: 1 MiB subject, 1 MiB pattern without inner `?`",
             "args.s matches args.p",
             {"s": ("a" * 63 + "b") * (MiB // 64),
              "p": "*" + "*".join(["a" * 63 + "b"] * 16_000) + "*"}, DECIDED),
        Case("deep `==`: two lists of 40,000 values", "args.b == args.c",
             {"b": deep(0, 3), "c": deep(1, 3)}, DECIDED),
        Case("canonical_host of a 1 MiB host", 'canonical_host(args.s) == "metadata"',
             {"s": "0x" + "0" * (MiB - 10) + "a9fea9fe"}, DECIDED),
    ]


def engines(condition: str):
    text = HEADER + f"forbid worst on t when {condition}\n"
    policy, diagnostics = check_sources([Source("worst.agp", text)])
    if policy is None:
        raise SystemExit(f"policy does not check: {diagnostics}")
    return (("reference", agp.Engine(policy, compiled=False)),
            ("compiled", agp.Engine(policy, evaluator=compile_policy(policy))))


def outcome(decision) -> str:
    if not decision.errors:
        return DECIDED
    if "evaluation steps" in decision.errors[0]:
        return BUDGET
    if "pattern too costly" in decision.errors[0]:
        return REFUSED
    return decision.errors[0]


def measure(case: Case, runs: int) -> dict[str, float]:
    request = {"agent": {"id": "a"}, "tool": "t", "now": "2026-11-28T09:00:00Z",
               "args": case.args}
    request = agp.Request.model_validate(request)  # validation is not what is measured
    times = {}
    for name, engine in engines(case.condition):
        best = None
        for _ in range(runs):
            glob._cached.cache_clear()  # cold: a request brings a pattern never seen before
            re.purge()
            gc.collect()
            t0 = time.perf_counter()
            decision = engine.decide(request)
            elapsed = time.perf_counter() - t0
            best = elapsed if best is None else min(best, elapsed)
        got = outcome(decision)
        if got != case.expect:
            raise SystemExit(f"{case.name} ({name}): expected {case.expect}, got {got}")
        times[name] = best
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one run per case (default: best of 3)")
    ap.add_argument("-k", default="", help="only the cases whose name contains this")
    args = ap.parse_args()
    runs = 1 if args.quick else 3
    print(f"budget {MAX_EVAL_STEPS:,} steps per quantifier; matches work limit {MAX_MATCH_WORK:,}")
    print()
    print("| case | outcome | reference | compiled | note |")
    print("|---|---|---:|---:|---|")
    for case in cases():
        if args.k not in case.name:
            continue
        t = measure(case, runs)
        print(f"| {case.name} | {case.expect} | {t['reference'] * 1000:,.0f} ms "
              f"| {t['compiled'] * 1000:,.0f} ms | {case.note} |", flush=True)


if __name__ == "__main__":
    main()
