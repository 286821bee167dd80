"""Decision benchmark (issue 3): agp compiled vs agp reference vs a hand-written function vs peers.

    python bench/decide.py --quick          # CI-sized: N = 10, 100; peers that are installed
    python bench/decide.py                  # the table of docs/performance.md: N up to 10,000
    python bench/decide.py --write docs/performance.md

Every engine decides the same seeded request stream and must agree with the hand-written
function on every decision (the run stops otherwise). Warm: each request is decided `--reps`
times in a row and the mean is its cost, the least of three passes over the stream (a process
preempted by a shared machine during one request's repetitions would otherwise show as that
request's cost, and as the p99; the cyclic collector is off while timing). Cold: each request is decided once, in a shuffled
order, by an engine that has decided nothing before (agp: loaded afresh; peers: as prepared).
p50 and p99 are taken over the stream. Peers are given their input already converted (outside
the timed region) and a parsed policy, their best case.
Peers are optional: `pip install -e .[bench]`; a missing one is reported and skipped.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402
import scenario  # noqa: E402

import agp  # noqa: E402
from agp.compile import compile_policy, load_bundle_evaluator, write_bundle  # noqa: E402
from agp.compile.ir import policy_to_ir  # noqa: E402
from agp.loader import check_sources  # noqa: E402
from agp.source import Source  # noqa: E402

SLOW_PEERS = {"cel-python (interpreted)": 100}  # largest N a slow peer is run at
REFERENCE_MAX_N = 10_000
WARM_PASSES = 3  # warm: each request's cost is the least of this many passes


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.99))]


def timed(decide, inputs, reps: int, passes: int = 1) -> list[float]:
    """Each input's cost in µs: the mean of `reps` decisions in a row, the least of `passes`
    passes over the inputs (so that a process preempted by the shared machine during one
    request's repetitions does not show as that request's cost)."""
    clock = time.perf_counter_ns
    best = [float("inf")] * len(inputs)
    gc.disable()
    try:
        for _ in range(passes):
            for i, x in enumerate(inputs):
                t0 = clock()
                for _ in range(reps):
                    decide(x)
                best[i] = min(best[i], (clock() - t0) / reps / 1000)
    finally:
        gc.enable()
    return best


def check_policy(text: str, n: int, notes: list):
    policy, diags = check_sources([Source("bench.agp", text)])
    if policy is None:
        raise SystemExit("\n".join(d.headline() for d in diags if d.is_error))
    return policy


def run(n: int, requests: int, reps: int, peer_names, rows: list, notes: list) -> None:
    s = scenario.build(n, requests)
    text = scenario.agp_source(s)
    expected = [scenario.hand_written(s)(r) for r in s.requests]

    t0 = time.perf_counter()
    policy = check_policy(text, n, notes)
    check_s = time.perf_counter() - t0
    gc.collect()
    t0 = time.perf_counter()
    compiled = compile_policy(policy)  # what agp.load does: the tree and every leaf
    compile_s = time.perf_counter() - t0
    tracemalloc.start()  # memory from a second compilation: tracing slows it down
    measured = compile_policy(policy)
    memory_mb = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    del measured

    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "bench.agpb"
    write_bundle(policy_to_ir(policy), path)
    gc.collect()
    t0 = time.perf_counter()
    from_bundle = load_bundle_evaluator(path)  # ready: every leaf generated
    load_s = time.perf_counter() - t0
    bundle_kb = path.stat().st_size / 1024

    engines = {
        "agp compiled (dict, validated)": (compiled.decide, list(s.requests),
                                           lambda d: d.decision),
        "agp compiled (Request)": (compiled.decide,
                                   [agp.Request.model_validate(r) for r in s.requests],
                                   lambda d: d.decision),
        "agp compiled from bundle (dict)": (from_bundle.decide, list(s.requests),
                                            lambda d: d.decision),
    }
    if n <= REFERENCE_MAX_N:
        reference = agp.Engine(policy, compiled=False)
        engines["agp reference (dict)"] = (reference.decide, list(s.requests),
                                           lambda d: d.decision)
    hand = scenario.hand_written(s)
    engines["hand-written Python"] = (hand, list(s.requests), lambda d: d)
    for name in peer_names:
        if n > SLOW_PEERS.get(name, n):
            continue
        try:
            prepare, decide = peers.PEERS[name](s)
        except ImportError as exc:
            note = f"{name}: not installed ({exc.name}); `pip install -e .[bench]`"
            if note not in notes:
                notes.append(note)
            continue
        except Exception as exc:  # a peer that cannot take the scenario at this size
            notes.append(f"{name} at N = {n:,}: {str(exc).splitlines()[0]}")
            continue
        engines[name] = (decide, [prepare(r) for r in s.requests], lambda d: d)

    # Cold first, while no agp engine has decided anything: a fresh engine per stream.
    fresh = {"agp compiled (dict, validated)": lambda: compile_policy(policy).decide,
             "agp compiled (Request)": lambda: compile_policy(policy).decide,
             "agp compiled from bundle (dict)": lambda: load_bundle_evaluator(path).decide}
    order = list(range(len(s.requests)))
    random.Random(n).shuffle(order)
    cold = {}
    for name, (decide, inputs, _) in engines.items():
        if "reference" in name or name in SLOW_PEERS:
            continue
        decide = fresh[name]() if name in fresh else decide
        cold[name] = percentiles(timed(decide, [inputs[i] for i in order], 1))
    tmp.cleanup()

    results = {}
    for name, (decide, inputs, word) in engines.items():
        got = [word(decide(x)) for x in inputs]  # warm-up, and the agreement check
        wrong = sum(a != b for a, b in zip(got, expected, strict=True))
        if wrong:
            raise SystemExit(f"N={n}: {name} disagrees with the hand-written function on "
                             f"{wrong} of {len(expected)} decisions")
        # Peers that take milliseconds a decision at this size: fewer repetitions, one pass.
        slow = name in SLOW_PEERS or "reference" in name or n >= 1000 and (
            "cedar" in name or "regorus" in name)
        k = max(1, reps // 10) if slow else reps
        items = inputs if not slow or len(inputs) <= 200 else inputs[:200]
        results[name] = percentiles(timed(decide, items, k, 1 if slow else WARM_PASSES))
    # The reference decides with the full explanation too: check it matches exactly.
    if "agp reference (dict)" in engines:
        ref = engines["agp reference (dict)"][0]
        for r in s.requests[:300]:
            if ref(r) != compiled.decide(r):
                raise SystemExit(f"N={n}: compiled and reference decisions differ on {r}")
    floor = results["hand-written Python"][0]
    rows.append({"n": n, "results": results, "cold": cold, "floor": floor, "check_s": check_s,
                 "compile_s": compile_s, "load_s": load_s,
                 "memory_mb": memory_mb, "bundle_kb": bundle_kb,
                 "allow": expected.count("allow"), "total": len(expected)})


def render(rows: list, notes: list, command: str) -> str:
    names = []
    for row in rows:
        for name in row["results"]:
            if name not in names:
                names.append(name)
    ns = [row["n"] for row in rows]
    out = []
    for title, key in (("Warm: each request decided --reps times, the mean; the least of "
                        f"{WARM_PASSES} passes", "results"),
                       ("Cold: each request decided once, in a shuffled order, by a fresh engine",
                        "cold")):
        out += [f"{title}.", "",
                "| engine | " + " | ".join(f"N = {n:,}: p50 / p99 µs (x floor)" for n in ns)
                + " |", "|---|" + "---|" * len(ns)]
        for name in names:
            cells = []
            for row in rows:
                r = row[key].get(name)
                cells.append("—" if r is None else
                             f"{r[0]:,.2f} / {r[1]:,.2f} ({r[0] / row['floor']:,.1f}x)")
            if any(c != "—" for c in cells):
                out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    out.append("Load, beside the decisions above (x floor: against the warm hand-written p50).")
    out.append("")
    out.append("| N | parse + check s | compile, every leaf s | load = both s | memory MB |"
               " bundle KB | bundle load, every leaf s | allow / requests |")
    out.append("|---|---|---|---|---|---|---|---|")
    for row in rows:
        out.append(f"| {row['n']:,} | {row['check_s']:.3f} | {row['compile_s']:.3f} | "
                   f"{row['check_s'] + row['compile_s']:.3f} | {row['memory_mb']:.1f} | "
                   f"{row['bundle_kb']:,.0f} | {row['load_s']:.3f} | "
                   f"{row['allow']} / {row['total']} |")
    first, last = rows[0], rows[-1]
    a, b = (first["results"]["agp compiled (dict, validated)"][0],
            last["results"]["agp compiled (dict, validated)"][0])
    out.append("")
    out.append(f"Growth of agp compiled p50 from N = {first['n']:,} to N = {last['n']:,}: "
               f"{b / a:.2f}x.")
    for note in notes:
        out.append(f"- {note}")
    out.append("")
    out.append(f"Command: `{command}`  ")
    out.append(f"Machine: {platform.machine()} {_cpu()}, {os.cpu_count()} CPUs, "
               f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    return "\n".join(out) + "\n"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run: N = 10, 100")
    ap.add_argument("--n", help="comma-separated sizes (default 10,100,1000,10000)")
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--peers", default="all", help="comma-separated peer names, all, or none")
    ap.add_argument("--write", help="replace the results section of this markdown file")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.n.split(",")] if args.n else (
        [10, 100] if args.quick else [10, 100, 1000, 10000])
    requests = args.requests or (300 if args.quick else 2000)
    reps = args.reps or (5 if args.quick else 20)
    peer_names = list(peers.PEERS) if args.peers == "all" else (
        [] if args.peers == "none" else [p for p in peers.PEERS
                                         if any(q in p for q in args.peers.split(","))])
    rows, notes = [], []
    for n in sizes:
        run(n, requests, reps, peer_names, rows, notes)
        print(f"N={n} done", file=sys.stderr)
    command = "python bench/decide.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = render(rows, notes, command.strip())
    print(table)
    if args.write:
        path = Path(args.write)
        text = path.read_text() if path.exists() else ""
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        if start in text and end in text:
            text = text[: text.index(start) + len(start)] + "\n" + table + text[text.index(end):]
        else:
            text += f"\n{start}\n{table}{end}\n"
        path.write_text(text)


if __name__ == "__main__":
    main()
