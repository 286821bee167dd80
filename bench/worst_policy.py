"""Worst cases of issue 16 for policy loading and the compiled evaluator: time and peak memory.

    python bench/worst_policy.py            # the sizes of the issue (a few minutes)
    python bench/worst_policy.py --quick    # a tenth of them (a smoke run)

Cases:

- `names x globs`: 6,000 exact tool names (declarations) and 6,000 glob rules
  (`forbid g on "svcK.opJ*" when ...`); each exact name matches a few globs. Reports the check,
  the compilation (the decision tree) and the first decision of every exact name (which
  generates its code).
- `families x patterns`: 6,000 glob tool declarations (`tool svcK.opJ.*`) against 6,000 rules,
  half naming a tool of a family exactly (`svcK.opJ.read`), half a glob over families
  (`"svcK.opJ*"`): the checker relates patterns to patterns in both directions. Reports the
  check.
- `unmentioned names`: 40,000 distinct tool names the policy does not mention, decided against
  that policy (a third match one of its globs, the rest none).
- `long names`: 100 distinct unmentioned names of 1 MiB each (the request limit on a string).
- `6 MiB list`: `permit p on t when args.x in [...]` with a 6 MiB list literal: `agp.load` and a
  decision.

Times are wall-clock without tracing; peak memory is `tracemalloc`'s peak over another run of
the same step (tracing slows Python down several times, so it is never timed). "generated
functions" are those alive for the evaluator at the end (each with one linecache entry and one
line map), "shared leaves" the leaves of unmentioned names: both must stay bounded whatever the
number and size of the names. The last line prints every `<agp ...>` linecache entry left in the
process once every engine is dropped: it must be 0.
"""

from __future__ import annotations

import argparse
import gc
import linecache
import platform
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import agp
from agp.compile import compile_policy
from agp.limits import MAX_STRING_LENGTH
from agp.loader import check_sources
from agp.source import Source

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789.-_"


def names_x_globs_policy(n: int) -> str:
    out = ["intent call", "dataclass public", ""]
    out += [f"tool svc{i % 97}.op{i} {{ intent call }}" for i in range(n)]
    out += [f'forbid g{j} on "svc{j % 97}.op{j}*" when args.x == {j}' for j in range(n)]
    out += ["permit p on svc1.* when args.x < 10", "forbid deep when chain.depth > 3"]
    return "\n".join(out) + "\n"


def families_policy(n: int) -> str:
    out = ["intent call", ""]
    out += [f"tool svc{i % 97}.op{i}.* {{ intent call  args {{ x: number }} }}" for i in range(n)]
    out += [f"forbid e{j} on svc{j % 97}.op{j}.read when args.x == {j}" if j % 2 else
            f'forbid g{j} on "svc{j % 97}.op{j}*" when args.x == {j}' for j in range(n)]
    return "\n".join(out) + "\n"


def list_policy(size: int) -> str:
    items, total = [], 0
    while total < size:
        items.append(f'"item-{len(items):08d}"')
        total += len(items[-1]) + 2
    return ("intent call\ntool t { intent call  args { x: string } }\n"
            f"permit p on t when args.x in [{', '.join(items)}]\n")


def measure(step):
    """(seconds, peak MiB, result): the time and result of one run, the peak of a second, traced
    run (whose result is dropped)."""
    gc.collect()
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    gc.collect()
    t0 = time.perf_counter()
    result = step()
    return time.perf_counter() - t0, peak, result


def check(text: str):
    policy, diags = check_sources([Source("worst.agp", text)])
    if policy is None:
        raise SystemExit("\n".join(d.headline() for d in diags if d.is_error))
    return policy


def generated(ev) -> int:
    """The generated functions alive for this evaluator (each has one linecache entry)."""
    gc.collect()
    return len(ev.ctx.line_maps)


def linecache_entries() -> int:
    return sum(1 for f in list(linecache.cache) if f.startswith("<agp "))


def request(tool: str, x) -> dict:
    return {"agent": {"id": "spiffe://x/a"}, "tool": tool, "args": {"x": x}}


def decide_all(ev, requests) -> float:
    """Mean microseconds per decision (every request decided once, as a stream)."""
    t0 = time.perf_counter()
    for r in requests:
        ev.decide(r)
    return (time.perf_counter() - t0) / len(requests) * 1e6


def warm(ev, requests) -> float:
    """The best of five passes over the stream (the machine may be busy with other work)."""
    return min(decide_all(ev, requests) for _ in range(5))


class Table:
    def __init__(self):
        self.rows: list[str] = []

    def row(self, case, step, seconds=None, peak=None, note="", us=None):
        took = f"{seconds:,.2f} s" if seconds is not None else f"{us:,.1f} µs"
        peak_text = f"{peak:,.0f}" if peak is not None else ""
        self.rows.append(f"| {case} | {step} | {took} | {peak_text} | {note} |")
        print(self.rows[-1], flush=True)


def names_x_globs(t: Table, n: int):
    text = names_x_globs_policy(n)
    s, peak, policy = measure(lambda: check(text))
    t.row(f"{n:,} names x {n:,} globs", "check (parse, resolve, types)", s, peak)
    s, peak, ev = measure(lambda: compile_policy(policy))
    t.row("", "compile (decision tree)", s, peak, f"{len(ev.index.leaves):,} leaves")
    exact = [request(f"svc{i % 97}.op{i}", i % 20) for i in range(n)]

    def first_use():
        e = compile_policy(policy)
        decide_all(e, exact)
        return e

    s, peak, ev = measure(first_use)
    t.row("", f"compile + first decision of each of the {n:,} names", s, peak,
          f"{generated(ev):,} generated functions")
    t.row("", "decision, exact name (mean)", us=warm(ev, exact))
    return policy


def families(t: Table, n: int) -> None:
    text = families_policy(n)
    s, peak, _ = measure(lambda: check(text))
    t.row(f"{n:,} families x {n:,} patterns", "check (parse, resolve, types)", s, peak)


def unmentioned_names(t: Table, policy, count: int, n: int, rng) -> None:
    names = []
    for i in range(count):
        body = "".join(rng.choices(ALPHABET, k=rng.randint(4, 40)))
        names.append(f"svc{i % 97}.op{i % n}-{body}" if i % 3 == 0 else body)
    stream = [request(name, i % 20) for i, name in enumerate(names)]

    def step():
        e = compile_policy(policy)
        return e, decide_all(e, stream)

    s, peak, (ev, cold) = measure(step)
    index = ev.index
    t.row(f"{count:,} unmentioned names", "compile + decide each once", s, peak,
          f"{generated(ev):,} generated functions, {len(index.signatures):,} shared leaves, "
          f"{len(index.names):,} names memoised")
    t.row("", "decision, first time (mean)", us=cold)
    t.row("", "decision, again (mean)", us=warm(ev, stream))


def long_names(t: Table, policy, count: int, n: int, rng) -> None:
    stream = []
    for i in range(count):
        head = f"svc{i % 97}.op{i % n}" if i % 2 == 0 else ""
        filler = rng.choice(ALPHABET) * (MAX_STRING_LENGTH - len(head) - 8)
        stream.append(request(head + filler + f"{i:08d}", 1))

    def step():
        e = compile_policy(policy)
        return e, decide_all(e, stream)

    s, peak, (ev, us) = measure(step)
    t.row(f"{count:,} names of 1 MiB", "compile + decide each once", s, peak,
          f"{generated(ev):,} generated functions, {len(ev.index.signatures):,} shared leaves")
    t.row("", "decision (mean)", us=us)


def big_list(t: Table, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.agp"
        path.write_text(list_policy(size))
        mib = path.stat().st_size / 2**20
        s, peak, engine = measure(lambda: agp.load(path))
        t.row(f"{mib:.1f} MiB `in [...]` list", "agp.load (check + compile)", s, peak)
        hit, miss = request("t", "item-00000007"), request("t", "nope")
        t0 = time.perf_counter()
        first = engine.decide(hit)
        t.row("", "first decision (generates the leaf)", time.perf_counter() - t0, None,
              first.decision)
        t.row("", "decision, value in the list (mean)", us=warm(engine, [hit] * 100))
        t.row("", "decision, value not in the list (mean)", us=warm(engine, [miss] * 100))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    ap.add_argument("--skip-list", action="store_true", help="skip the 6 MiB list case")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    n = 6000 // scale
    rng = random.Random(16)
    t = Table()
    policy = names_x_globs(t, n)
    families(t, n)
    unmentioned_names(t, policy, 40_000 // scale, n, rng)
    long_names(t, policy, 100 // scale, n, rng)
    del policy
    if not args.skip_list:
        big_list(t, 6 * 2**20 // scale)
    gc.collect()
    print(f"\nlinecache entries of generated code left: {linecache_entries()}\n")
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"{'--quick' if args.quick else 'full sizes'}")
    print("| case | step | time | peak MiB | notes |")
    print("|---|---|---|---|---|")
    print("\n".join(t.rows))


if __name__ == "__main__":
    sys.exit(main())
