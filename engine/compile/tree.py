"""The decision tree: tool name, then task kind, then each rule's agent test.

Level 1 is a dict from every exact tool name the policy mentions to its leaf. A leaf depends on
its name only through the tool declarations and the rule `on` globs that match the name (its
*signature*), so:

- the globs are filed by their literal prefix or suffix (`agp.glob.GlobSet`): finding those
  that match a name walks a few characters instead of trying every glob, and building the tree
  is near-linear in names plus globs, not their product;
- a name the policy never mentions is matched at run time and gets the leaf of its signature,
  shared by every name with the same one; the code a leaf runs is shared in turn by every leaf
  with the same candidate rules (`Context.function`).

The run-time memos (names, signatures, generated functions) are bounded, so no stream of tool
names can grow memory, linecache or the line maps without limit. Level 2 picks, inside a leaf, the
rules that can apply to the request's task kind. Each leaf knows the tool declarations that match
it (their intents, data classes and duration arguments), and its rules in policy order.
"""

from __future__ import annotations

import linecache
import threading
from typing import TYPE_CHECKING

from agp.compile.codegen import LeafFunction, reads_now
from agp.compile.ir import EFFECTS, IRRule, Program, interned
from agp.glob import GlobSet, compile_glob, is_exact

if TYPE_CHECKING:
    from agp.compile.evaluator import Context

# A rule that can apply at a leaf, with the `on intent` names the request itself must name for
# it to be in scope there (None: it is in scope whatever the request's intents).
Candidate = tuple[IRRule, frozenset[str] | None]

_NONE: frozenset[str] = frozenset()  # the task kinds of most leaves (shared: see `interned`)


class Leaf:
    """The rules that can apply to one signature; one compiled function per task kind."""

    __slots__ = ("name", "tools", "tool_intents", "tool_data", "durations", "intents0", "data0",
                 "rules", "kinds", "fns", "fn_none", "now_none", "ctx")

    def __init__(self, name: str, tools: tuple[int, ...], rules: list[Candidate],
                 index: Index):
        self.name = name  # the tool name, or "*" for a leaf shared by unmentioned names
        self.tools = tools  # indices of the matching tool declarations, in policy order
        self.tool_intents = tuple(index.tool_intents[i] for i in tools)
        self.tool_data = tuple(index.tool_data[i] for i in tools)
        self.durations = index.union(tuple(index.tool_durations[i] for i in tools))
        # The sets of §5 step 1 for a request that names no intent or class itself, built the
        # way the reference builds them (so they iterate in the same order).
        self.intents0 = index.union(self.tool_intents)
        self.data0 = index.union(self.tool_data)
        self.rules = rules  # in policy order
        kinds = [k for r, _ in rules for k in (r.tasks or ())]
        self.kinds = frozenset(kinds) if kinds else _NONE
        self.fns: dict[str, LeafFunction] = {}
        self.fn_none: LeafFunction | None = None
        self.now_none = True  # whether fn_none reads the time (known once it is generated)
        # The context, not the index: the index holds its leaves, and a leaf that pointed back
        # would make a cycle, freed only by the cyclic collector after a reload.
        self.ctx = index.ctx

    def task_groups(self) -> list[tuple[str, str | None]]:
        """The task kinds the leaf tells apart, with how they are named: one for each kind a
        rule names, then one for the rest (None: no task, or a kind no rule names)."""
        kinds = sorted(self.kinds)
        rest = "no task, or any other kind" if kinds else "any task"
        return [(f"task {k}", k) for k in kinds] + [(rest, None)]

    def rules_for(self, kind: str | None) -> list[Candidate]:
        return [c for c in self.rules if c[0].tasks is None or kind in c[0].tasks]

    def fn_for(self, kind: str | None) -> LeafFunction:
        """The compiled function for a task kind (None: no task), found or generated on first
        use."""
        if kind is not None and kind not in self.kinds:
            kind = None
        fn = self.fn_none if kind is None else self.fns.get(kind)
        if fn is None:
            fn = self.ctx.function(self.durations, self.rules_for(kind))
            if kind is None:
                self.now_none = reads_now(fn)
                self.fn_none = fn
            else:
                self.fns[kind] = fn
        return fn


class Index:
    """Level 1: tool name -> Leaf."""

    # Bounds of the run-time memos (docs/limits.md). Names longer than NAME_LENGTH are matched
    # again at each decision rather than kept, so the memo's size does not follow the names'.
    # Leaves of unmentioned names: SIGNATURES, plus one per glob of the policy, so that traffic
    # reaching every glob's family never has its leaves rebuilt.
    NAMES = 4096
    NAME_LENGTH = 256
    SIGNATURES = 256
    UNIONS = 4096

    def __init__(self, program: Program, ctx: Context):
        """The tree of `program`'s rules (once the passes ran), with `ctx` to generate leaves."""
        self.ctx = ctx
        tools = program.tools
        sets: dict[tuple[str, ...], frozenset[str]] = {}
        self.tool_intents = [interned(t.intents, sets) for t in tools]
        self.tool_data = [interned(t.data, sets) for t in tools]
        self.tool_durations = [interned(t.durations, sets) for t in tools]
        self._unions: dict[tuple[int, ...], frozenset[str]] = {}
        self.exact_tools: dict[str, list[int]] = {}
        glob_tools = []
        # Exact names are told apart without building their Glob (thousands of them at load).
        for i, t in enumerate(tools):
            if is_exact(t.pattern):
                self.exact_tools.setdefault(t.pattern, []).append(i)
            else:
                glob_tools.append((i, compile_glob(t.pattern)))
        self.glob_tools = GlobSet(glob_tools)
        self.rules = rules = program.rules
        # The positions of the rules naming the tool exactly, ascending, each once.
        self.by_name: dict[str, list[int]] = {}
        rule_globs = []  # (position, glob) of each tool glob in a rule's `on`
        self.general: list[int] = []  # rules with no `on`, or with `on intent ...`
        self.on_intents = [interned(r.on_intents, sets) for r in rules]
        for pos, r in enumerate(rules):
            for p in r.on_tools:
                if is_exact(p):
                    named = self.by_name.setdefault(p, [])
                    if not named or named[-1] != pos:
                        named.append(pos)
                else:
                    rule_globs.append((pos, compile_glob(p)))
            if not r.scoped_on or r.on_intents:
                self.general.append(pos)
        self.rule_globs = GlobSet(rule_globs)
        self.signature_bound = self.SIGNATURES + len(glob_tools) + len(rule_globs)
        names = set(self.exact_tools) | set(self.by_name)
        for task in program.tasks.values():
            names.update(p for p in task.tools or () if is_exact(p))
        self.leaves: dict[str, Leaf] = {n: self.plan(n) for n in sorted(names)}
        self.names: dict[str, Leaf] = {}  # memo: unmentioned name -> its signature's leaf
        self.signatures: dict[tuple[tuple[int, ...], frozenset[int]], Leaf] = {}
        self._lock = threading.Lock()

    def union(self, sets: tuple[frozenset[str], ...]) -> frozenset[str]:
        """`frozenset([]).union(*sets)`, of sets of this index (`interned`), one object for each
        combination: the leaves of thousands of tools share a few (see `interned`)."""
        key = tuple(map(id, sets))  # the sets live as long as the index
        found = self._unions.get(key)
        if found is None:
            found = frozenset([]).union(*sets)
            if len(self._unions) < self.UNIONS:  # names not mentioned may bring new ones
                self._unions[key] = found
        return found

    def plan(self, name: str) -> Leaf:
        """The leaf of a name the policy mentions (built at compile time)."""
        tools = self.exact_tools.get(name, []) + self.glob_tools.matching(name)
        matched = frozenset(self.by_name.get(name, ())).union(self.rule_globs.matching(name))
        return self.build(name, tuple(sorted(tools)), matched)

    def build(self, name: str, tools: tuple[int, ...], matched: frozenset[int]) -> Leaf:
        """The leaf of a signature: the tool declarations and the rules whose `on` globs match."""
        static_intents: frozenset[str] = frozenset().union(*(self.tool_intents[i] for i in tools))
        chosen: list[Candidate] = []
        for pos in sorted(matched.union(self.general)):
            r = self.rules[pos]
            dyn = None
            if r.scoped_on and pos not in matched:
                on_intents = self.on_intents[pos]
                if not (on_intents & static_intents):
                    if not on_intents:
                        continue
                    dyn = on_intents  # in scope when the request itself names one of them
            chosen.append((r, dyn))
        return Leaf(name, tools, chosen, self)

    def leaf_of(self, tools: tuple[int, ...], matched: frozenset[int]) -> Leaf:
        """The leaf shared by the names the policy does not mention with this signature."""
        signature = (tools, matched)
        with self._lock:  # readers need none: dict.get is atomic, a missed entry is rebuilt
            leaf = self.signatures.get(signature)
            if leaf is None:
                leaf = self.build("*", tools, matched)
                if len(self.signatures) >= self.signature_bound:
                    # The memo of names may point at the leaf dropped: clear it, so that the
                    # leaves of unmentioned names alive never outnumber the bound.
                    del self.signatures[next(iter(self.signatures))]
                    self.names.clear()
                self.signatures[signature] = leaf
        return leaf

    def leaf(self, name: str) -> Leaf:
        """The leaf of a name the policy does not mention: the one of its signature."""
        leaf = self.names.get(name)
        if leaf is not None:
            return leaf
        # No exact name can match here (every mentioned name has its own leaf).
        leaf = self.leaf_of(tuple(self.glob_tools.matching(name)),
                            frozenset(self.rule_globs.matching(name)))
        with self._lock:
            if len(name) <= self.NAME_LENGTH:
                if len(self.names) >= self.NAMES:
                    del self.names[next(iter(self.names))]
                self.names[name] = leaf
        return leaf


def explain(index: Index, program: Program) -> str:
    """The tree, readably: which dimension each level tests, which rules sit at each leaf.
    `program` is the IR before the passes (the index holds the rules after them)."""
    removed = len(program.rules) - len(index.rules)
    out = [f"decision tree for policy {program.hash}",
           f"  {len(program.rules)} rules ({removed} removed by the passes), "
           f"{len(program.tools)} tool declarations, {len(program.tasks)} tasks",
           "level 1: tool name, by exact dictionary lookup over "
           f"{len(index.leaves)} names; other names are matched against tool globs at run time"]

    def describe(r: IRRule, dyn: frozenset[str] | None) -> str:
        words = [r.effect, r.name]
        if r.agents is not None:
            words.append("by " + ", ".join(r.agent_names or r.agents))
        if dyn:
            words.append("if the request names intent " + " or ".join(sorted(dyn)))
        if r.when is None and r.unless is None and r.form is None:
            words.append("(unconditional)")
        return " ".join(words)

    def leaf_lines(leaf: Leaf, indent: str) -> None:
        if leaf.kinds:
            out.append(f"{indent}level 2: task kind")
        for label, kind in leaf.task_groups():
            ordered = sorted(leaf.rules_for(kind), key=lambda c: EFFECTS.index(c[0].effect))
            body = "; ".join(describe(*r) for r in ordered) or "no rule: default deny"
            out.append(f"{indent}  {label}: {body}")

    for name, leaf in index.leaves.items():
        decls = [program.tools[i].pattern for i in leaf.tools]
        extra = f"  (declared by {', '.join(decls)})" if decls else "  (no tool declaration)"
        out.append(f"  tool {name}{extra}")
        leaf_lines(leaf, "    ")
    globs = [g.pattern for _, g in index.glob_tools.items]
    rule_globs = sorted({g.pattern for _, g in index.rule_globs.items})
    out.append("  any other tool name" + (f"  (run-time globs: {', '.join(globs + rule_globs)})"
                                          if globs or rule_globs else ""))
    leaf_lines(index.build("*", (), frozenset()), "    ")
    return "\n".join(out) + "\n"


def emit_python(index: Index) -> str:
    """The generated Python of every leaf (`agp compile --emit python`), each function once,
    headed by the leaves and task kinds that run it and by the values of its constants. Its
    comments give the policy position of each rule and condition; it is the text that
    tracebacks and profiles of generated code show."""
    functions: dict[str, LeafFunction] = {}  # pseudo-filename -> function (alive while we read)
    users: dict[str, list[str]] = {}
    other = index.build("*", (), frozenset())
    for name, leaf in [*index.leaves.items(), ("*", other)]:
        tool = "any other tool name" if leaf is other else f"tool {name!r}"
        for label, kind in leaf.task_groups():
            fn = leaf.fn_for(kind)
            functions[fn.__code__.co_filename] = fn
            users.setdefault(fn.__code__.co_filename, []).append(f"# {tool}, {label}")
    out = [f"# The Python that agp runs for policy {index.ctx.hash}:",
           "# one function per leaf of the decision tree (agp compile --explain). Names matched",
           "# by run-time globs get their leaf on first use, with functions like these."]
    for filename, fn in functions.items():
        out += ["", "", *users[filename], *_constants(fn),
                "".join(linecache.getlines(filename)).rstrip("\n")]
    return "\n".join(out) + "\n"


def _constants(fn: LeafFunction) -> list[str]:
    """The constants a generated function reads, as comments (long values cut short)."""
    out = []
    for name, value in fn.__globals__.items():
        if name.startswith("_c") and name[2:3].isdigit() or name == "_DURATIONS":
            text = _describe(value)
            out.append(f"# {name} = {text if len(text) <= 80 else text[:77] + '...'}")
    return out


def _describe(value: object) -> str:
    if callable(value) and hasattr(value, "__qualname__"):  # a standard function
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, frozenset):  # in a stable order, unlike its repr
        return "frozenset({" + ", ".join(sorted(map(repr, value))) + "})"
    pattern = getattr(value, "pattern", None)
    return f"glob {pattern!r}" if isinstance(pattern, str) else repr(value)
