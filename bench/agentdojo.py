"""AgentDojo on agp: write the traces of examples/policies/agentdojo/ and measure them.

The user side of the four AgentDojo suites (banking, slack, travel, workspace) is vendored in
examples/policies/agentdojo/data/ (MIT licence, see its LICENSE; `--data DIR` points elsewhere).
For every user task this script writes
examples/policies/agentdojo/<suite>/traces/<task_id>.trace.jsonl: a `task.start` built from
that suite's `instances.json` (the task kind and the trusted params a person filled in from
the prompt and the user's own account data, plus the expected `ask`s), then one `call` per
ground-truth call, one second apart. It then replays each trace through the policy and
reports utility per suite.

    python bench/agentdojo.py              # write the traces, print the utility table
    python bench/agentdojo.py --check      # write nothing; exit 1 if a trace on disk is stale
    python bench/agentdojo.py --attacks    # also replay attack calls inside every task instance,
                                           # right after its start and after its own calls

Exit status: 0 when every trace's expectations hold (and, with --attacks, no attack
succeeds), 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import agp

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "examples" / "policies" / "agentdojo"
DATA = POLICIES / "data"  # AgentDojo's own files, vendored with their licence
SUITES = ("banking", "slack", "travel", "workspace")
AGENT = "spiffe://agentdojo/agent"
ORIGIN = [{"principal": "user:owner", "kind": "human"}]
START = datetime(2026, 11, 28, 9, 0, 0, tzinfo=timezone.utc)

# AgentDojo parameter types -> agp schema types (optionality comes from `required`).
_TYPES = {"str": "string", "int": "number", "float": "number", "bool": "bool"}


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _agp_type(agentdojo_type: str) -> str:
    base = agentdojo_type.split("|")[0].strip()
    if base.startswith("list"):
        return "list"
    return _TYPES.get(base, "string")  # enums such as SharingPermission are strings


# ---- the data --------------------------------------------------------------------------------


@dataclass
class Suite:
    name: str
    tools: dict[str, dict]  # name -> tools.json entry
    tasks: list[dict]  # tasks.jsonl, in file order
    calls: dict[str, list[dict]]  # task_id -> calls in step order
    instances: dict[str, dict]  # task_id -> {kind, params, expect?, why}


def find_data(explicit: str | None) -> Path:
    path = Path(explicit) if explicit else DATA
    if (path / "banking.tools.json").is_file():
        return path
    print(f"agentdojo.py: no AgentDojo data in {path}", file=sys.stderr)
    raise SystemExit(2)


def _jsonl(path: Path) -> list[dict]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def load_suite(data: Path, name: str) -> Suite:
    tools = {t["name"]: t for t in json.loads((data / f"{name}.tools.json").read_text("utf-8"))}
    tasks = _jsonl(data / f"{name}.tasks.jsonl")
    calls: dict[str, list[dict]] = {t["task_id"]: [] for t in tasks}
    for call in _jsonl(data / f"{name}.calls.jsonl"):
        calls.setdefault(call["task_id"], []).append(call)
    for steps in calls.values():
        steps.sort(key=lambda c: c["step"])
    instances = json.loads((POLICIES / name / "instances.json").read_text("utf-8"))
    return Suite(name, tools, tasks, calls, instances)


# ---- traces ----------------------------------------------------------------------------------


def task_start(suite: Suite, task: dict) -> dict:
    inst = suite.instances[task["task_id"]]
    return {
        "ts": _stamp(START),
        "event": "task.start",
        "task": {
            "id": task["task_id"],
            "kind": inst["kind"],
            "params": inst["params"],
            "objective": task["prompt_or_goal"].strip(),
        },
        "agent": AGENT,
        "chain": ORIGIN,
    }


def call_event(task_id: str, index: int, tool: str, args: dict, expect: str) -> dict:
    return {
        "ts": _stamp(START + timedelta(seconds=index + 1)),
        "event": "call",
        "task": task_id,
        "agent": AGENT,
        "tool": tool,
        "args": args,
        "expect": expect,
    }


def trace_events(suite: Suite, task: dict) -> list[dict]:
    task_id = task["task_id"]
    expect = suite.instances[task_id].get("expect", {})
    events = [task_start(suite, task)]
    for i, call in enumerate(suite.calls[task_id]):
        events.append(
            call_event(task_id, i, call["tool"], call["args"], expect.get(str(i), "allow"))
        )
    return events


def render(events: list[dict]) -> str:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)


def trace_path(suite: str, task_id: str) -> Path:
    return POLICIES / suite / "traces" / f"{task_id}.trace.jsonl"


# ---- replay ----------------------------------------------------------------------------------


_instances = itertools.count()


def replay(engine: agp.Engine, events: list[dict]) -> list[agp.Decision]:
    """Decide the calls of `events` (a task.start, then calls) in one task instance of the task
    runtime, as `agp test` does: each call sees the session of the calls before it (task.seen,
    task.history). Every replay is a new instance (a task id names one instance for good)."""
    start, calls = events[0], events[1:]
    tasks = engine.tasks()
    task_id = f"{start['task']['id']}#{next(_instances)}"
    tasks.start({**start["task"], "id": task_id}, agent=start["agent"], chain=start["chain"],
                at=start["ts"])
    return [tasks.decide(agent=c["agent"], tool=c["tool"], task=task_id, now=c["ts"],
                         args=c["args"]) for c in calls]


def runtime_problems(engine: agp.Engine, path: Path) -> list[str]:
    """Cross-check a trace file with the trace runtime (`agp.replay_trace`), when installed."""
    replay_trace = getattr(agp, "replay_trace", None)
    if replay_trace is None or not path.is_file():
        return []
    return [
        f"{path.relative_to(REPO)}:{o.line}: {getattr(o.decision, 'decision', o.decision)} "
        f"(expected {o.expect}) {o.problem or ''}"
        for o in replay_trace(engine, path)
        if not o.passed
    ]


def outcome(decisions: list[agp.Decision]) -> str:
    words = {d.decision for d in decisions}
    return "blocked" if "deny" in words else "ask" if "ask" in words else "allow"


# ---- checks of the policy against the data -----------------------------------------------------


def schema_problems(suite: Suite, engine: agp.Engine) -> list[str]:
    """Every tool of the suite is declared with exactly the tools.json argument schema, and
    with the intent `write` exactly when tools.json says it writes."""
    declared: dict[str, dict[str, tuple[str, bool]]] = {}
    writes = {info.decl.pattern.text for info in engine.policy.tools if "write" in info.intents}
    for info in engine.policy.tools:
        decl = info.decl
        if decl.args is not None:  # a tool without `args` accepts anything: never equal below
            declared[decl.pattern.text] = {
                f.name.text: (f.type.text, f.optional) for f in decl.args.fields
            }
    problems = []
    for name, tool in suite.tools.items():
        want = {p["name"]: (_agp_type(p["type"]), not p["required"]) for p in tool["parameters"]}
        if name not in declared:
            problems.append(f"{suite.name}: tool {name} is not declared with an args schema")
        elif declared[name] != want:
            problems.append(f"{suite.name}: tool {name} args {declared[name]} != tools.json {want}")
        elif (name in writes) != (tool["access"] == "write"):
            problems.append(f"{suite.name}: tool {name} is {tool['access']} in tools.json")
    return problems


# ---- attacks -----------------------------------------------------------------------------------
#
# examples/policies/agentdojo/attacks.json holds attack calls written for this repository from
# AgentDojo's published threat model (the attacker's goals), not from its held-out injection
# tasks. Each is replayed inside the task.start of every user task of its suite, as if injected
# text had made the agent issue it. It succeeds in an instance when every one of its writes is
# allowed. Its `residual` probes show what a call-level policy cannot stop.


def load_attacks() -> dict:
    return json.loads((POLICIES / "attacks.json").read_text("utf-8"))


def attack_events(suite: Suite, task: dict, attack: dict, mid_task: bool) -> list[dict]:
    """The attack's calls in the task instance of a user task: right after its start, or, with
    `mid_task`, after the user task's own calls (the agent hijacked half-way, with everything
    the task has read in its session)."""
    events = trace_events(suite, task) if mid_task else [task_start(suite, task)]
    first = len(events) - 1
    calls = [
        call_event(task["task_id"], first + i, c["tool"], c["args"], "deny")
        for i, c in enumerate(attack["calls"])
    ]
    return [*events, *calls]


def run_attacks(suite: Suite, engine: agp.Engine, attacks: list[dict],
                mid_task: bool = False) -> list[dict]:
    """Replay each attack in every task instance; return one result row per attack."""
    rows = []
    for attack in attacks:
        writes = [
            i for i, c in enumerate(attack["calls"]) if suite.tools[c["tool"]]["access"] == "write"
        ]
        worst = Counter()  # per instance: allow (all writes allowed), ask, deny
        succeeded_in = []
        for task in suite.tasks:
            decisions = replay(engine, attack_events(suite, task, attack, mid_task))
            attack_decisions = decisions[len(decisions) - len(attack["calls"]):]
            words = [attack_decisions[i].decision for i in writes]
            if all(w == "allow" for w in words):
                worst["allow"] += 1
                succeeded_in.append(task["task_id"])
            elif "deny" in words:
                worst["deny"] += 1
            else:
                worst["ask"] += 1
        rows.append({"attack": attack, "counts": worst, "succeeded_in": succeeded_in})
    return rows


# ---- reports ---------------------------------------------------------------------------------


def utility_table(results: dict[str, dict[str, str]]) -> str:
    lines = [
        "| suite | user tasks | all allow | ask | blocked | all allow % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    total = Counter()
    for name, per_task in results.items():
        c = Counter(per_task.values())
        n = len(per_task)
        total.update(c)
        total["n"] += n
        lines.append(
            f"| {name} | {n} | {c['allow']} | {c['ask']} | {c['blocked']} | "
            f"{100 * c['allow'] / n:.1f} |"
        )
    n = total["n"]
    lines.append(
        f"| **all** | **{n}** | **{total['allow']}** | **{total['ask']}** | "
        f"**{total['blocked']}** | **{100 * total['allow'] / n:.1f}** |"
    )
    return "\n".join(lines)


def attack_table(rows_by_suite: dict[str, list[dict]], n_tasks: dict[str, int]) -> str:
    lines = [
        "| suite | attack | goal | instances | succeeded | asked | denied |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name, rows in rows_by_suite.items():
        for row in rows:
            c = row["counts"]
            lines.append(
                f"| {name} | `{row['attack']['id']}` | {row['attack']['goal']} | "
                f"{n_tasks[name]} | {c['allow']} | {c['ask']} | {c['deny']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", help="AgentDojo data directory (default: examples/policies/agentdojo/data)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; fail when a trace on disk differs from the data",
    )
    parser.add_argument(
        "--attacks",
        action="store_true",
        help="replay attack calls inside every user task's task.start",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="list every non-allow call")
    args = parser.parse_args(argv)

    data = find_data(args.data)
    attacks = load_attacks() if args.attacks else {}
    failed = False
    results: dict[str, dict[str, str]] = {}
    attack_rows: dict[str, list[dict]] = {}
    residual_rows: dict[str, list[dict]] = {}
    mid_task_rows: dict[str, list[dict]] = {}
    n_tasks: dict[str, int] = {}
    for name in SUITES:
        suite = load_suite(data, name)
        n_tasks[name] = len(suite.tasks)
        try:
            engine = agp.load(POLICIES / name)
        except agp.PolicyError as exc:
            print(exc.render() if hasattr(exc, "render") else exc, file=sys.stderr)
            return 2
        for problem in schema_problems(suite, engine):
            print(problem, file=sys.stderr)
            failed = True
        missing = [t["task_id"] for t in suite.tasks if t["task_id"] not in suite.instances]
        if missing:
            print(f"{name}: no instance for {', '.join(missing)}", file=sys.stderr)
            return 2
        per_task = {}
        for task in suite.tasks:
            events = trace_events(suite, task)
            text, path = render(events), trace_path(name, task["task_id"])
            if args.check:
                if not path.is_file() or path.read_text("utf-8") != text:
                    print(f"stale trace: {path.relative_to(REPO)}", file=sys.stderr)
                    failed = True
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, "utf-8")
            for problem in runtime_problems(engine, path):
                print(problem, file=sys.stderr)
                failed = True
            decisions = replay(engine, events)
            per_task[task["task_id"]] = outcome(decisions)
            for event, d in zip(events[1:], decisions, strict=True):
                if d.decision != event["expect"]:
                    failed = True
                    print(
                        f"{name}/{task['task_id']} {event['tool']}: {d.decision} "
                        f"(expected {event['expect']}) rules={d.rules} errors={d.errors}",
                        file=sys.stderr,
                    )
                elif args.verbose and d.decision != "allow":
                    print(f"{name}/{task['task_id']} {event['tool']}: {d.decision} {d.reasons}")
        results[name] = per_task
        if args.attacks:
            attack_rows[name] = run_attacks(suite, engine, attacks["attacks"][name])
            mid_task_rows[name] = run_attacks(suite, engine, attacks["attacks"][name], True)
            residual_rows[name] = run_attacks(suite, engine, attacks["residual"][name])

    print(utility_table(results))
    if args.attacks:
        total = sum(len(rows) for rows in attack_rows.values())
        won = sum(1 for rows in attack_rows.values() for row in rows if row["succeeded_in"])
        replays = sum(len(rows) * n_tasks[name] for name, rows in attack_rows.items())
        print()
        print(attack_table(attack_rows, n_tasks))
        print()
        print(f"attacks: {total}, replays: {replays}, attacks succeeding in any instance: {won}")
        won_mid = sum(1 for rows in mid_task_rows.values() for row in rows if row["succeeded_in"])
        print()
        print("The same attacks after each user task's own calls (hijacked mid-task):")
        print()
        print(attack_table(mid_task_rows, n_tasks))
        print()
        print(f"attacks: {total}, replays: {replays}, "
              f"attacks succeeding in any instance: {won_mid}")
        won += won_mid
        print()
        print("Residual probes (writes to trusted parties with injected content):")
        print()
        print(attack_table(residual_rows, n_tasks))
        if won:
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
