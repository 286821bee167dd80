"""The peers of the benchmark, each given the scenario in its own language.

Each `make_*` returns `(prepare, decide)` or raises ImportError when the package is missing
(`pip install -e .[bench]`): `prepare(request)` turns a scenario request into the peer's input
(outside the timed region), `decide(prepared)` returns "allow" or "deny".
"""

from __future__ import annotations

import json

from scenario import RANK, Scenario


def _rank(req):
    return max(RANK[c] for c in req["data"]) if req["data"] else 0


def make_cedar(s: Scenario):
    import cedarpy

    lines = []
    for p in s.permits:
        roles = ", ".join(f'"{r}"' for r in p.roles)
        lines.append(f'permit(principal, action == Action::"{p.tool}", resource) when {{ '
                     f'[{roles}].contains(principal.role) && context.amount <= {p.bound} && '
                     f'context.rank <= {RANK[p.ceiling]} }};')
    for t in s.forbid_tools:
        lines.append(f'forbid(principal, action == Action::"{t}", resource) '
                     f'when {{ context.external }};')
    policies = cedarpy.PolicySet.from_str("\n".join(lines))  # parsed once, reused

    def prepare(req):
        entities = [{"uid": {"__entity": {"type": "Agent", "id": "a"}},
                     "attrs": {"role": req["agent"]["attrs"]["role"]}, "parents": []}]
        request = {"principal": 'Agent::"a"', "action": f'Action::"{req["tool"]}"',
                   "resource": 'Tool::"t"',
                   "context": {"amount": req["args"]["amount"], "rank": _rank(req),
                               "external": req["target"]["external"]}}
        return request, entities

    def decide(prepared):
        request, entities = prepared
        result = cedarpy.is_authorized(request, policies, entities)
        return "allow" if result.allowed else "deny"

    return prepare, decide


def make_regorus(s: Scenario):
    import regorus

    rules = ["package bench", "import rego.v1", "default allow := false",
             "default deny := false"]
    for p in s.permits:
        roles = ", ".join(f'"{r}"' for r in p.roles)
        rules.append(f'allow if {{ input.tool == "{p.tool}"; input.role in {{{roles}}}; '
                     f'input.amount <= {p.bound}; input.rank <= {RANK[p.ceiling]} }}')
    for t in s.forbid_tools:
        rules.append(f'deny if {{ input.tool == "{t}"; input.external }}')
    rules.append('default decision := "deny"')
    rules.append('decision := "allow" if { allow; not deny }')
    engine = regorus.Engine()
    # regorus refuses a policy file over 1 MB: split the rules over files of one package.
    head, body, chunk, size = rules[:2], rules[2:], [], 0
    for i, line in enumerate(body):
        chunk.append(line)
        size += len(line) + 1
        if size > 500_000 or i == len(body) - 1:
            engine.add_policy(f"bench{i}.rego", "\n".join(head + chunk))
            chunk, size = [], 0

    def prepare(req):
        # As JSON text: this binding's set_input(dict) passes Python's True as the number 1.
        return json.dumps({"tool": req["tool"], "role": req["agent"]["attrs"]["role"],
                           "amount": req["args"]["amount"], "rank": _rank(req),
                           "external": req["target"]["external"]})

    def decide(prepared):
        engine.set_input_json(prepared)
        return engine.eval_rule("data.bench.decision")

    return prepare, decide


def _cel_rules(s: Scenario):
    """One CEL expression per rule, indexed by tool (the per-action index a caller would add)."""
    by_tool: dict[str, list] = {}
    for p in s.permits:
        roles = ", ".join(f'"{r}"' for r in p.roles)
        by_tool.setdefault(p.tool, ([], []))[0].append(
            f"role in [{roles}] && amount <= {p.bound} && rank <= {RANK[p.ceiling]}")
    for t in s.forbid_tools:
        by_tool.setdefault(t, ([], []))[1].append("external")
    return by_tool


def make_cel_rust(s: Scenario):
    import cel

    index = {t: ([cel.compile(e) for e in permits], [cel.compile(e) for e in forbids])
             for t, (permits, forbids) in _cel_rules(s).items()}

    def prepare(req):
        return req["tool"], {"role": req["agent"]["attrs"]["role"],
                             "amount": req["args"]["amount"], "rank": _rank(req),
                             "external": req["target"]["external"]}

    def decide(prepared):
        tool, ctx = prepared
        permits, forbids = index.get(tool, ((), ()))
        if any(f.execute(ctx) for f in forbids):
            return "deny"
        return "allow" if any(p.execute(ctx) for p in permits) else "deny"

    return prepare, decide


def make_cel_python(s: Scenario):
    import celpy

    env = celpy.Environment()
    index = {t: ([env.program(env.compile(e)) for e in permits],
                 [env.program(env.compile(e)) for e in forbids])
             for t, (permits, forbids) in _cel_rules(s).items()}

    def prepare(req):
        return req["tool"], celpy.json_to_cel({
            "role": req["agent"]["attrs"]["role"], "amount": req["args"]["amount"],
            "rank": _rank(req), "external": req["target"]["external"]})

    def decide(prepared):
        tool, ctx = prepared
        permits, forbids = index.get(tool, ((), ()))
        if any(bool(f.evaluate(ctx)) for f in forbids):
            return "deny"
        return "allow" if any(bool(p.evaluate(ctx)) for p in permits) else "deny"

    return prepare, decide


CASBIN_MODEL = """
[request_definition]
r = role, act, amount, rank, external

[policy_definition]
p = role, act, bound, rank, eft

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.act == p.act && ((p.eft == "deny" && r.external) || (p.eft == "allow" && \
r.role == p.role && r.amount <= num(p.bound) && r.rank <= num(p.rank)))
"""


def make_casbin(s: Scenario):
    import logging

    import casbin

    logging.getLogger("casbin").setLevel(logging.WARNING)
    lines: dict[str, list] = {}
    for p in s.permits:
        for r in p.roles:
            lines.setdefault(p.tool, []).append([r, p.tool, str(p.bound), str(RANK[p.ceiling]),
                                                 "allow"])
    for t in s.forbid_tools:
        lines.setdefault(t, []).append(["*", t, "0", "0", "deny"])
    index = {}
    for tool, rows in lines.items():  # one enforcer per action: casbin's per-action index
        model = casbin.model.Model()
        model.load_model_from_text(CASBIN_MODEL)
        e = casbin.Enforcer(model, enable_log=False)
        e.add_function("num", float)
        e.add_policies(rows)
        index[tool] = e

    def prepare(req):
        return (req["agent"]["attrs"]["role"], req["tool"], req["args"]["amount"], _rank(req),
                req["target"]["external"])

    def decide(prepared):
        e = index.get(prepared[1])
        return "allow" if e is not None and e.enforce(*prepared) else "deny"

    return prepare, decide


PEERS = {
    "cedarpy (Rust Cedar)": make_cedar,
    "regorus (Rust Rego)": make_regorus,
    "common-expression-language (Rust CEL)": make_cel_rust,
    "casbin (per-action index)": make_casbin,
    "cel-python (interpreted)": make_cel_python,
}
