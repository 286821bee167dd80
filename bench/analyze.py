"""How long `agp analyze -p POLICY` takes: each example set, and generated sets of N rules.

    python bench/analyze.py                    # the example sets, then 100 and 1,000 rules
    python bench/analyze.py --sizes 100        # only the generated sets of these sizes
    python bench/analyze.py --examples         # only the example sets

Each line: the set, its rules, the wall time of the analysis (the library call, the policy
already loaded), the solver checks run, and the findings. A generated set is a realistic shape:
tools in families (`svc3.read`, `svc3.write`, ...), a task per family, permits with conditions
on arguments and data, forbids and asks that cover some of them, and a few planted dead and
shadowed rules (so the findings are not zero by construction). Not a test: the figures go in
docs/analyze.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from agp.analyze import analyze
from agp.loader import check_paths, check_sources
from agp.policy import Policy
from agp.source import Source

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "policies"


def generated(rules: int, seed: int = 7) -> str:
    """A policy of `rules` rules (and the declarations they use)."""
    rnd = random.Random(seed)
    families = max(1, rules // 10)
    out = ["dataclass public", "dataclass internal > public", "dataclass secret > internal",
           "intent read, write, egress"]
    for f in range(families):
        out += [f"tool svc{f}.read {{ intent read }}",
                f"tool svc{f}.write {{ intent write  data internal }}",
                f"tool svc{f}.send {{ intent egress }}",
                f"task job{f} {{ tools svc{f}.*  data <= secret }}"]
    made = 0
    while made < rules:
        f = rnd.randrange(families)
        kind = rnd.random()
        n = made
        if kind < 0.5:
            cond = rnd.choice([f"args.amount < {rnd.randint(10, 1000)}",
                               f'args.to matches "*@{f}.example.com"',
                               "data <= internal", "not (secret in data)",
                               f"task.params.limit > {rnd.randint(1, 9)}"])
            op = rnd.choice(["read", "write", "send"])
            out.append(f"permit p{n} on svc{f}.{op} in job{f} when args has amount and {cond}"
                       if cond.startswith("args.amount") else
                       f"permit p{n} on svc{f}.{op} in job{f} when {cond}")
        elif kind < 0.75:
            out.append(rnd.choice([
                f"forbid f{n} on svc{f}.send when data >= secret",
                f"forbid f{n} on svc{f}.write when args has amount and args.amount > "
                f"{rnd.randint(1000, 5000)}",
                f"forbid f{n} on svc{f}.* when chain.depth > {rnd.randint(2, 5)}"]))
        elif kind < 0.95:
            out.append(rnd.choice([
                f"ask a{n} on svc{f}.send when target.external",
                f"ask a{n} on svc{f}.write when task.seen >= secret"]))
        elif kind < 0.975:  # planted: a dead rule
            out.append(f"permit dead{n} on svc{f}.read when args.n > 5 and args.n < 3")
        else:  # planted: shadowed by the forbid that follows
            out += [f"permit shadow{n} on svc{f}.send in job{f} when secret in data",
                    f"forbid cover{n} on svc{f}.send when data >= secret"]
            made += 1
        made += 1
    return "\n".join(out) + "\n"


def run(name: str, policy: Policy, timeout: float) -> None:
    start = time.perf_counter()
    report = analyze(policy, timeout=timeout)
    took = time.perf_counter() - start
    print(f"{name:<28} {len(policy.rules):>6} rules {took:>8.1f} s {report.checks:>6} checks "
          f"{len(report.diagnostics):>4} findings", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--examples", action="store_true", help="only the example sets")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per check")
    args = parser.parse_args()
    if args.examples or "--sizes" not in sys.argv:
        # every folder that holds policy files is a set (agentdojo holds one per suite)
        for folder in sorted({p.parent for p in EXAMPLES.rglob("*.agp")}):
            name = str(folder.relative_to(EXAMPLES))
            checked, _ = check_paths([folder])
            if checked is None:
                print(f"{name:<28} does not check: skipped", flush=True)
                continue
            run(name, checked, args.timeout)
    if not args.examples:
        for size in args.sizes:
            checked, diagnostics = check_sources([Source(f"generated-{size}.agp",
                                                         generated(size))])
            if checked is None:
                print(f"generated-{size}: {diagnostics[0]}", file=sys.stderr)
                return 1
            run(f"generated-{size}", checked, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
