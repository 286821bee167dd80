"""The decision tree: tool name, then task kind, then each rule's agent test.

Level 1 is a dict from every exact tool name the policy mentions to its leaf; glob families
(`http.*`, `crm.*` in a rule) are resolved against those names once, at compile time, and only a
name the policy never mentions is matched against the globs at run time (and memoised, within a
bound). Level 2 picks, inside a leaf, the rules that can apply to the request's task kind. Each
leaf knows the tool declarations that match its name (their intents, data classes and duration
arguments), and its rules in the order forbid, ask, permit.
"""

from __future__ import annotations

from agp.compile.codegen import generate_leaf
from agp.compile.ir import exact_or_glob as _glob


class Leaf:
    """The rules that can apply to one tool name; one compiled function per task kind."""

    __slots__ = ("name", "tools", "tool_intents", "tool_data", "durations", "intents0", "data0",
                 "rules", "kinds", "fns", "fn_none", "index")

    def __init__(self, name, tools, rules, index):
        self.name = name
        self.tools = tools  # indices of the matching tool declarations, in policy order
        self.tool_intents = tuple(index.tool_intents[i] for i in tools)
        self.tool_data = tuple(index.tool_data[i] for i in tools)
        self.durations = frozenset().union(*(index.tool_durations[i] for i in tools))
        # The sets of §5 step 1 for a request that names no intent or class itself, built the
        # way the reference builds them (so they iterate in the same order).
        self.intents0 = frozenset([]).union(*self.tool_intents)
        self.data0 = frozenset([]).union(*self.tool_data)
        self.rules = rules  # (index, rule, dynamic on-intents or None), in policy order
        self.kinds = frozenset(k for _, r, _ in rules for k in (r["tasks"] or ()))
        self.fns: dict = {}
        self.fn_none = None
        self.index = index

    def rules_for(self, kind):
        return [r for r in self.rules if r[1]["tasks"] is None or kind in r[1]["tasks"]]

    def fn_for(self, kind):
        """The compiled function for a task kind (None: no task), generated on first use."""
        if kind is not None and kind not in self.kinds:
            kind = None
        fn = self.fn_none if kind is None else self.fns.get(kind)
        if fn is None:
            fn, filename, line_map, delegated, _ = generate_leaf(
                self, kind, self.rules_for(kind), self.index.ctx)
            self.index.ctx.note(filename, line_map, delegated)
            if kind is None:
                self.fn_none = fn
            else:
                self.fns[kind] = fn
        return fn

    def source(self, kind) -> str:
        return generate_leaf(self, kind, self.rules_for(kind), self.index.ctx)[4]


class Index:
    """Level 1: tool name -> Leaf."""

    UNDECLARED_CACHE = 4096  # leaves memoised for names the policy does not mention

    def __init__(self, ir: dict, rules: list, ctx):
        self.ctx = ctx
        tools = ir["tools"]
        self.tool_intents = [frozenset(t["intents"]) for t in tools]
        self.tool_data = [frozenset(t["data"]) for t in tools]
        self.tool_durations = [frozenset(t["durations"]) for t in tools]
        self.exact_tools: dict[str, list[int]] = {}
        self.glob_tools: list[tuple[int, object]] = []
        for i, t in enumerate(tools):
            g = _glob(t["pattern"])
            if g.is_exact:
                self.exact_tools.setdefault(g.pattern, []).append(i)
            else:
                self.glob_tools.append((i, g))
        self.rules = rules
        self.by_name: dict[str, list[int]] = {}  # rules naming the tool exactly
        self.by_glob: list[tuple[int, tuple]] = []  # rules with a tool glob in `on`
        self.general: list[int] = []  # rules with no `on`, or with `on intent ...`
        self.position = {}
        self.on_globs: list[tuple] = []  # each rule's `on` tool globs, compiled once
        for pos, (i, r) in enumerate(rules):
            self.position[i] = pos
            globs = [_glob(p) for p in r["on_tools"]]
            self.on_globs.append(tuple(globs))
            for g in globs:
                if g.is_exact:
                    self.by_name.setdefault(g.pattern, []).append(pos)
            inexact = tuple(g for g in globs if not g.is_exact)
            if inexact:
                self.by_glob.append((pos, inexact))
            if not r["scoped_on"] or r["on_intents"]:
                self.general.append(pos)
        names = set(self.exact_tools) | set(self.by_name)
        for t in ir["tasks"].values():
            names.update(p for p in t["tools"] or () if "*" not in p and "?" not in p)
        self.leaves: dict[str, Leaf] = {n: self.plan(n) for n in sorted(names)}
        self.undeclared: dict[str, Leaf] = {}

    def plan(self, name: str) -> Leaf:
        tools = sorted(self.exact_tools.get(name, []) +
                       [i for i, g in self.glob_tools if g.match(name)])
        static_intents = frozenset().union(*(self.tool_intents[i] for i in tools))
        positions = set(self.by_name.get(name, ()))
        positions.update(pos for pos, globs in self.by_glob if any(g.match(name) for g in globs))
        positions.update(self.general)
        chosen = []
        for pos in sorted(positions):
            i, r = self.rules[pos]
            dyn = None
            if r["scoped_on"]:
                on_tool = any(g.match(name) for g in self.on_globs[pos])
                on_intents = frozenset(r["on_intents"])
                if not on_tool and not (on_intents & static_intents):
                    if not on_intents:
                        continue
                    dyn = on_intents  # in scope when the request itself names one of them
            chosen.append((i, r, dyn))
        return Leaf(name, tuple(tools), chosen, self)

    def leaf(self, name: str) -> Leaf:
        """The leaf of a name the policy does not mention: globs matched now, then memoised."""
        leaf = self.undeclared.get(name)
        if leaf is None:
            leaf = self.plan(name)
            if len(self.undeclared) < self.UNDECLARED_CACHE:
                self.undeclared[name] = leaf
        return leaf


def explain(index: Index, ir: dict, removed: int) -> str:
    """The tree, readably: which dimension each level tests, which rules sit at each leaf."""
    out = [f"decision tree for policy {ir['hash']}",
           f"  {len(ir['rules'])} rules ({removed} removed by the passes), "
           f"{len(ir['tools'])} tool declarations, {len(ir['tasks'])} tasks",
           "level 1: tool name, by exact dictionary lookup over "
           f"{len(index.leaves)} names; other names are matched against tool globs at run time"]

    def describe(i, r, dyn):
        words = [r["effect"], r["name"]]
        if r["agents"] is not None:
            words.append("by " + ", ".join(r["agent_names"] or r["agents"]))
        if dyn:
            words.append("if the request names intent " + " or ".join(sorted(dyn)))
        if r["when"] is None and r["unless"] is None:
            words.append("(unconditional)")
        return " ".join(words)

    def leaf_lines(leaf: Leaf, indent: str):
        kinds = sorted(leaf.kinds)
        groups = [(k, leaf.rules_for(k)) for k in kinds] + [(None, leaf.rules_for(None))]
        if kinds:
            out.append(f"{indent}level 2: task kind")
        for k, rules in groups:
            label = f"task {k}" if k is not None else (
                "no task, or any other kind" if kinds else "any task")
            ordered = sorted(rules, key=lambda r: ("forbid", "ask", "permit").index(r[1]["effect"]))
            body = "; ".join(describe(*r) for r in ordered) or "no rule: default deny"
            out.append(f"{indent}  {label}: {body}")

    for name, leaf in index.leaves.items():
        decls = [ir["tools"][i]["pattern"] for i in leaf.tools]
        extra = f"  (declared by {', '.join(decls)})" if decls else "  (no tool declaration)"
        out.append(f"  tool {name}{extra}")
        leaf_lines(leaf, "    ")
    globs = [g.pattern for _, g in index.glob_tools]
    rule_globs = sorted({g.pattern for _, gs in index.by_glob for g in gs})
    out.append("  any other tool name" + (f"  (run-time globs: {', '.join(globs + rule_globs)})"
                                          if globs or rule_globs else ""))
    general = Leaf("*", (), [(i, r, None if not r["on_intents"] else frozenset(r["on_intents"]))
                             for i, r in (index.rules[p] for p in index.general)], index)
    leaf_lines(general, "    ")
    return "\n".join(out) + "\n"
