"""The benchmark scenario of issue 3: an agent tool-call policy set with N permit rules.

About N/2 tools; each permit tests the agent's role attribute against a small set, a numeric
argument bound and a data-class ceiling; N/10 forbids on an external-target flag; a seeded stream
of requests mixing allow, forbid and no-match. `expected` is the hand-written decision function
(the practical floor) that every engine is checked against.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CLASSES = ("public", "internal", "confidential", "restricted")  # a chain: rank = position
RANK = {c: i for i, c in enumerate(CLASSES)}
ROLES = tuple(f"r{i}" for i in range(6))
AGENT = "spiffe://bench.example/agents/worker"


@dataclass
class Permit:
    name: str
    tool: str
    roles: tuple[str, ...]
    bound: int
    ceiling: str


@dataclass
class Scenario:
    n: int
    tools: list[str]
    permits: list[Permit]
    forbid_tools: list[str]  # forbid f_j on tool when target.external
    requests: list[dict]


def build(n: int, requests: int, seed: int = 7) -> Scenario:
    rnd = random.Random(seed * 1000 + n)
    tools = [f"tool_{k}" for k in range(max(n // 2, 1))]
    permits = [Permit(f"p{i}", tools[i % len(tools)], tuple(sorted(rnd.sample(ROLES, 3))),
                      rnd.randrange(100, 1000), rnd.choice(CLASSES[1:])) for i in range(n)]
    forbid_tools = [tools[(5 * j) % len(tools)] for j in range(max(n // 10, 1))]
    stream = []
    for _ in range(requests):
        tool = rnd.choice(tools) if rnd.random() >= 0.1 else f"undeclared_{rnd.randrange(50)}"
        stream.append({
            "agent": {"id": AGENT, "attrs": {"role": rnd.choice(ROLES)}},
            "tool": tool,
            "args": {"amount": rnd.randrange(0, 1200)},
            "data": [rnd.choice(CLASSES)],
            "target": {"external": rnd.random() < 0.3},
        })
    return Scenario(n, tools, permits, forbid_tools, stream)


def agp_source(s: Scenario) -> str:
    out = ["dataclass public", "dataclass internal > public",
           "dataclass confidential > internal", "dataclass restricted > confidential",
           "intent call", ""]
    for t in s.tools:
        out.append(f"tool {t} {{ intent call  data public  args {{ amount: number }} }}")
    for p in s.permits:
        roles = ", ".join(f'"{r}"' for r in p.roles)
        out.append(f"permit {p.name} on {p.tool} when agent.attrs.role in [{roles}] "
                   f"and args.amount <= {p.bound} and data <= {p.ceiling}")
    for j, t in enumerate(s.forbid_tools):
        out.append(f"forbid f{j} on {t} when target.external")
    return "\n".join(out) + "\n"


def hand_written(s: Scenario):
    """The practical floor: a dict of closures per tool, written by hand for this scenario."""
    by_tool: dict[str, list] = {}
    for p in s.permits:
        roles, bound, ceiling = frozenset(p.roles), p.bound, RANK[p.ceiling]
        by_tool.setdefault(p.tool, []).append(
            lambda role, amount, rank, roles=roles, bound=bound, ceiling=ceiling:
            role in roles and amount <= bound and rank <= ceiling)
    forbidden = frozenset(s.forbid_tools)
    rank_of = RANK

    def decide(req: dict) -> str:
        tool = req["tool"]
        if tool in forbidden and req["target"]["external"]:
            return "deny"
        rank = max(rank_of[c] for c in req["data"]) if req["data"] else 0
        role, amount = req["agent"]["attrs"]["role"], req["args"]["amount"]
        for test in by_tool.get(tool, ()):
            if test(role, amount, rank):
                return "allow"
        return "deny"

    return decide
