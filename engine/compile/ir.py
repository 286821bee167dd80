"""The compiler's IR: a checked Policy as plain JSON-able data, and back.

This is what a bundle stores (no pickle: a bundle is JSON, and loading it runs no code from it;
every string reaches generated Python only through `repr`). Expressions are nested lists,
`[tag, ..., span]`, with spans as `[source index, start, end]` into `ir["sources"]`, so that error
messages and the line map point at the policy text without parsing it again.
"""

from __future__ import annotations

from datetime import timedelta

from agp.glob import compile_glob
from agp.policy import Policy, RuleInfo, TaskInfo, ToolInfo
from agp.source import Source, Span
from agp.syntax import ast
from agp.values import Label, Lattice

_US = timedelta(microseconds=1)


class _Exact:
    """An exact tool pattern: no regular expression to build (thousands of them in big sets)."""

    __slots__ = ("pattern",)
    is_exact = True

    def __init__(self, pattern):
        self.pattern = pattern

    def match(self, subject):
        return subject == self.pattern


def exact_or_glob(pattern: str):
    return _Exact(pattern) if "*" not in pattern and "?" not in pattern else compile_glob(pattern)


def td_out(value: timedelta | None):
    return None if value is None else value // _US


def td_in(value) -> timedelta | None:
    if value is None:
        return None
    if type(value) is not int:
        raise ValueError(f"bad duration {value!r}")
    return timedelta(microseconds=value)


class _Sources:
    def __init__(self):
        self.index: dict[int, int] = {}
        self.items: list[list[str]] = []

    def span(self, span: Span) -> list[int]:
        key = id(span.source)
        if key not in self.index:
            self.index[key] = len(self.items)
            self.items.append([span.source.name, span.source.text])
        return [self.index[key], span.start, span.end]


def expr_out(e, S: _Sources):
    if e is None:
        return None
    sp = S.span(e.span)
    if isinstance(e, ast.Literal):
        v = e.value
        return ["lit", {"us": v // _US} if isinstance(v, timedelta) else v, sp]
    if isinstance(e, ast.ListExpr):
        return ["list", [expr_out(i, S) for i in e.items], sp]
    if isinstance(e, ast.NameRef):
        return ["name", e.name, sp]
    if isinstance(e, ast.Attr):
        return ["attr", expr_out(e.obj, S), e.name.text, S.span(e.name.span), sp]
    if isinstance(e, ast.Unary):
        return ["un", e.op, expr_out(e.operand, S), sp]
    if isinstance(e, ast.Binary):
        return ["bin", e.op, expr_out(e.left, S), expr_out(e.right, S), sp]
    if isinstance(e, ast.Has):
        return ["has", expr_out(e.obj, S), e.field.text, S.span(e.field.span), sp]
    if isinstance(e, ast.Is):
        return ["is", expr_out(e.obj, S), e.name.text, S.span(e.name.span), sp]
    if isinstance(e, ast.Quant):
        return ["quant", e.kind, e.var.text, S.span(e.var.span), expr_out(e.seq, S),
                expr_out(e.body, S), sp]
    if isinstance(e, ast.Call):
        return ["call", e.func.text, S.span(e.func.span), [expr_out(a, S) for a in e.args], sp]
    raise TypeError(f"unknown expression node {type(e).__name__}")


def literal_value(v):
    if isinstance(v, dict):
        return td_in(v["us"])
    if v is None or isinstance(v, list):
        raise ValueError(f"bad literal {v!r}")
    return v


def expr_in(x, sources: list[Source]):
    """Rebuild the AST of an expression (for the reference evaluator, on the error path only)."""
    if x is None:
        return None

    def sp(s):
        return Span(sources[s[0]], s[1], s[2])

    tag = x[0]
    if tag == "lit":
        return ast.Literal(literal_value(x[1]), sp(x[2]))
    if tag == "list":
        return ast.ListExpr(tuple(expr_in(i, sources) for i in x[1]), sp(x[2]))
    if tag == "name":
        return ast.NameRef(x[1], sp(x[2]))
    if tag == "attr":
        return ast.Attr(expr_in(x[1], sources), ast.Name(x[2], sp(x[3])), sp(x[4]))
    if tag == "un":
        return ast.Unary(x[1], expr_in(x[2], sources), sp(x[3]))
    if tag == "bin":
        return ast.Binary(x[1], expr_in(x[2], sources), expr_in(x[3], sources), sp(x[4]))
    if tag == "has":
        return ast.Has(expr_in(x[1], sources), ast.Name(x[2], sp(x[3])), sp(x[4]))
    if tag == "is":
        return ast.Is(expr_in(x[1], sources), ast.Name(x[2], sp(x[3])), sp(x[4]))
    if tag == "quant":
        return ast.Quant(x[1], ast.Name(x[2], sp(x[3])), expr_in(x[4], sources),
                         expr_in(x[5], sources), sp(x[6]))
    if tag == "call":
        return ast.Call(ast.Name(x[1], sp(x[2])), tuple(expr_in(a, sources) for a in x[3]),
                        sp(x[4]))
    raise ValueError(f"unknown expression tag {tag!r}")


def policy_to_ir(policy: Policy) -> dict:
    """The JSON-able IR of a checked policy set."""
    S = _Sources()
    rules = []
    for r in policy.rules:
        agent_names = [n.text for n in r.decl.agents] if r.decl.agents is not None else None
        rules.append({
            "name": r.name, "effect": r.effect,
            "on_tools": [g.pattern for g in r.on_tools], "on_intents": sorted(r.on_intents),
            "scoped_on": r.scoped_on,
            "tasks": sorted(r.tasks) if r.tasks is not None else None,
            "agents": [g.pattern for g in r.agents] if r.agents is not None else None,
            "agent_names": agent_names,
            "when": expr_out(r.when, S), "unless": expr_out(r.unless, S),
            "ttl": td_out(r.ttl), "because": r.because,
            "span": S.span(r.decl.span), "name_span": S.span(r.decl.name.span),
        })
    tasks = {}
    for name, t in policy.tasks.items():
        tasks[name] = {
            "tools": [g.pattern for g in t.tools] if t.tools is not None else None,
            "intents": sorted(t.intents) if t.intents is not None else None,
            "ceiling": t.ceiling, "ttl": td_out(t.ttl), "delegate": t.delegate,
            "delegate_to": [g.pattern for g in t.delegate_to] if t.delegate_to is not None
            else None,
            "depth": t.depth,
        }
    return {
        "hash": policy.hash,
        "lattice": {k: sorted(v) for k, v in policy.lattice.below.items()},
        "intents": sorted(policy.intents),
        "labels": {n: [lb.kind, lb.glob.pattern if lb.glob is not None else None]
                   for n, lb in policy.labels.items()},
        "agents": {n: g.pattern for n, g in policy.agents.items()},
        "tools": [{"pattern": t.glob.pattern, "intents": sorted(t.intents),
                   "data": sorted(t.data), "durations": sorted(t.durations)}
                  for t in policy.tools],
        "tasks": tasks,
        "rules": rules,
        "default_ttl": td_out(policy.default_ttl),
        "max_ttl": td_out(policy.max_ttl),
        "sources": S.items,
    }


def _strs(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what}: expected a list of strings")
    return value


def runtime_policy(ir: dict) -> Policy:
    """A Policy for the shared steps (envelope, TTL, labels), without rules: bundles rebuild a
    rule's AST only when the reference evaluator must explain an error of that rule."""
    lattice = Lattice({k: frozenset(_strs(v, "lattice")) for k, v in ir["lattice"].items()})
    labels = {}
    for name, (kind, pattern) in ir["labels"].items():
        if kind not in ("class", "intent", "agent", "task"):
            raise ValueError(f"bad label kind {kind!r}")
        labels[name] = Label(kind, name, compile_glob(pattern) if pattern is not None else None)
    tools = tuple(ToolInfo(exact_or_glob(t["pattern"]), frozenset(_strs(t["intents"], "tool")),
                           frozenset(_strs(t["data"], "tool")),
                           frozenset(_strs(t["durations"], "tool")), None)
                  for t in ir["tools"])
    tasks = {}
    for name, t in ir["tasks"].items():
        tasks[name] = TaskInfo(
            name,
            tuple(compile_glob(p) for p in _strs(t["tools"], "task")) if t["tools"] is not None
            else None,
            frozenset(_strs(t["intents"], "task")) if t["intents"] is not None else None,
            t["ceiling"], td_in(t["ttl"]), bool(t["delegate"]),
            tuple(compile_glob(p) for p in _strs(t["delegate_to"], "task"))
            if t["delegate_to"] is not None else None,
            t["depth"], None)
    return Policy(
        lattice=lattice, intents=frozenset(_strs(ir["intents"], "intents")),
        agents={n: compile_glob(p) for n, p in ir["agents"].items()},
        tools=tools, tasks=tasks, rules=(), labels=labels,
        default_ttl=td_in(ir["default_ttl"]), max_ttl=td_in(ir["max_ttl"]),
        hash=ir["hash"], sources=())


def sources_of(ir: dict) -> list[Source]:
    return [Source(name, text) for name, text in ir["sources"]]


def rule_info(r: dict, sources: list[Source]) -> RuleInfo:
    """The RuleInfo of one IR rule, with its conditions' AST (spans into `sources`)."""
    span = Span(sources[r["span"][0]], r["span"][1], r["span"][2])
    ns = r["name_span"]
    name = ast.Name(r["name"], Span(sources[ns[0]], ns[1], ns[2]))
    when, unless = expr_in(r["when"], sources), expr_in(r["unless"], sources)
    decl = ast.Rule(r["effect"], name, None, None, None, when, unless, None, None, span)
    return RuleInfo(
        r["name"], r["effect"], tuple(compile_glob(p) for p in r["on_tools"]),
        frozenset(r["on_intents"]), r["scoped_on"],
        frozenset(r["tasks"]) if r["tasks"] is not None else None,
        tuple(compile_glob(p) for p in r["agents"]) if r["agents"] is not None else None,
        when, unless, td_in(r["ttl"]), r["because"], decl)
