"""Name resolution and checking of a whole policy set; builds the Policy IR.

Every problem is collected as a Diagnostic; a Policy is built only when there is no error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TypeAlias

from agp.check import types as T
from agp.check.exprs import ConditionScope, check_condition, check_literal, typed_sums
from agp.diagnostics import Diagnostic, Related, did_you_mean, error, warning
from agp.gcpause import no_cyclic_collection
from agp.glob import Glob, PatternSet, compile_glob
from agp.limits import MAX_TOOL_HINTS
from agp.policy import DEFAULT_TTL, Policy, RuleInfo, TaskInfo, ToolInfo
from agp.stdlib.builtins import BUILTINS
from agp.syntax import ast
from agp.syntax.names import KIND_WORDS, ROOTS, with_article
from agp.syntax.parser import ParsedFile
from agp.values import Label, Lattice

# The items that declare a symbol (`Symbol.kind` "class", "intent", "agent", "task" in order).
SymbolDecl: TypeAlias = ast.DataclassDecl | ast.IntentDecl | ast.AgentDecl | ast.TaskDecl


@dataclass
class Symbol:
    kind: str
    name: ast.Name
    decl: SymbolDecl


@dataclass
class _Checker:
    files: list[ParsedFile]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    symbols: dict[str, Symbol] = field(default_factory=dict)
    tools: dict[str, ast.ToolDecl] = field(default_factory=dict)
    rules: dict[str, ast.Rule] = field(default_factory=dict)
    tasks: dict[str, ast.TaskDecl] = field(default_factory=dict)
    defaults: ast.Defaults | None = None
    _related: dict[str, list[ast.ToolDecl]] = field(default_factory=dict)
    _declared: PatternSet | None = None  # the tool declarations, indexed (built on first use)
    _declared_order: list[ast.ToolDecl] = field(default_factory=list)
    _kinds: dict[str, str] | None = None
    _tool_hints: int = 0  # "did you mean" hints given so far on unmatched tool patterns
    # What the items that did not parse declare (ParsedFile.unparsed): names whose use is no
    # further error, since the syntax error that hid their declaration is reported.
    unparsed: frozenset[str] = frozenset()
    unparsed_tools: tuple[Glob, ...] = ()

    # ---- declarations -----------------------------------------------------------------------

    def declare(self, kind: str, name: ast.Name, decl: SymbolDecl) -> None:
        if name.text in ROOTS or name.text in BUILTINS:
            what = "a condition name" if name.text in ROOTS else "a standard function"
            self.diagnostics.append(error("reserved-name", name.span,
                                          f"`{name.text}` is {what} and cannot be declared"))
            return
        prior = self.symbols.get(name.text)
        if prior is not None:
            self._duplicate(name, prior.name, KIND_WORDS[prior.kind], KIND_WORDS[kind])
            return
        self.symbols[name.text] = Symbol(kind, name, decl)

    def _duplicate(self, name: ast.Name, prior: ast.Name, prior_kind: str, kind: str) -> None:
        text = name.text
        self.diagnostics.append(error(
            "duplicate", name.span,
            f"`{text}` is declared twice (first as {with_article(prior_kind)})",
            related=(Related(prior.span, "first declared here"),)))
        self.diagnostics.append(error(
            "duplicate", prior.span, f"`{text}` is declared twice (again as {with_article(kind)})",
            related=(Related(name.span, "declared again here"),)))

    def collect(self) -> None:
        for f in self.files:
            for item in f.items:
                if isinstance(item, ast.DataclassDecl):
                    self.declare("class", item.name, item)
                elif isinstance(item, ast.IntentDecl):
                    for n in item.names:
                        self.declare("intent", n, item)
                elif isinstance(item, ast.AgentDecl):
                    self.declare("agent", item.name, item)
                elif isinstance(item, ast.TaskDecl):
                    self.declare("task", item.name, item)
                    self.tasks.setdefault(item.name.text, item)
                elif isinstance(item, ast.ToolDecl):
                    prior = self.tools.get(item.pattern.text)
                    if prior is not None:
                        p = ast.Name(item.pattern.text, prior.pattern.span)
                        n = ast.Name(item.pattern.text, item.pattern.span)
                        self._duplicate(n, p, "tool", "tool")
                    else:
                        self.tools[item.pattern.text] = item
                elif isinstance(item, ast.Rule):
                    prior_rule = self.rules.get(item.name.text)
                    if prior_rule is not None:
                        self._duplicate(item.name, prior_rule.name, "rule", "rule")
                    else:
                        self.rules[item.name.text] = item
                elif isinstance(item, ast.Defaults):
                    if self.defaults is not None:
                        self.diagnostics.append(error(
                            "duplicate", item.span, "a policy set has at most one `defaults` block",
                            related=(Related(self.defaults.span, "first defaults block"),)))
                    else:
                        self.defaults = item

    # ---- references ---------------------------------------------------------------------------

    def ref(self, name: ast.Name, kind: str) -> bool:
        sym = self.symbols.get(name.text)
        if sym is not None and sym.kind == kind:
            return True
        word = KIND_WORDS[kind]
        if sym is not None:
            msg = (f"`{name.text}` is {with_article(KIND_WORDS[sym.kind])}, "
                   f"not {with_article(word)}")
        else:
            msg = f"unknown {word} `{name.text}`"
        if sym is None and name.text in self.unparsed:
            return False
        same_kind = [n for n, s in self.symbols.items() if s.kind == kind]
        code = "unknown-" + ("class" if kind == "class" else kind)
        self.diagnostics.append(error(code, name.span, msg, did_you_mean(name.text, same_kind)))
        return False

    def related_tools(self, text: str) -> list[ast.ToolDecl]:
        """The tool declarations a pattern matches or is matched by (LANGUAGE.md §4): the exact
        ones first, then those with a wildcard, each in policy order (the order in which
        `args_type` unites their schemas).

        Through an index of the declarations (`PatternSet`), so that a set with many tools and
        many rules checks in time near-linear in its size, not in their product.
        """
        found = self._related.get(text)
        if found is None:
            if self._declared is None:
                decls = sorted(self.tools.values(),
                               key=lambda d: not compile_glob(d.pattern.text).is_exact)
                self._declared_order = decls
                self._declared = PatternSet(
                    (i, compile_glob(d.pattern.text)) for i, d in enumerate(decls))
            found = [self._declared_order[i] for i in self._declared.related(text)]
            self._related[text] = found
        return found

    def tool_pattern(self, pattern: ast.Pattern) -> None:
        if not self.related_tools(pattern.text) and \
                not any(Glob(pattern.text).relates(g) for g in self.unparsed_tools):
            # A hint compares the pattern with every declaration: past a few, a set with thousands
            # of unmatched patterns would spend minutes on hints nobody reads.
            self._tool_hints += 1
            hint = did_you_mean(pattern.text, self.tools) \
                if self._tool_hints <= MAX_TOOL_HINTS else None
            self.diagnostics.append(warning(
                "unknown-tool", pattern.span,
                f"tool pattern `{pattern.text}` matches no declared tool", hint))

    def schema(self, schema: ast.Schema | None) -> T.Type:
        if schema is None:
            return T.OBJECT
        fields: dict[str, T.Type] = {}
        for f in schema.fields:
            if f.name.text in fields:
                self.diagnostics.append(error("duplicate", f.name.span,
                                              f"field `{f.name.text}` is listed twice"))
            t = T.SCHEMA_TYPES.get(f.type.text)
            if t is None:
                self.diagnostics.append(error(
                    "unknown-type", f.type.span, f"unknown type `{f.type.text}`",
                    did_you_mean(f.type.text, T.SCHEMA_TYPES) or
                    "types: " + ", ".join(T.SCHEMA_TYPES)))
                t = T.ANY
            fields[f.name.text] = t
        return T.Type("object", fields=tuple(fields.items()))

    # ---- the lattice --------------------------------------------------------------------------

    def lattice(self) -> Lattice:
        parents: dict[str, list[str]] = {}
        for name, sym in self.symbols.items():
            if isinstance(sym.decl, ast.DataclassDecl):  # kind "class"
                parents[name] = [p.text for p in sym.decl.parents if self.ref(p, "class")]
        below: dict[str, set[str]] = {n: {n} for n in parents}
        # A class is above its parents (`x > a`: a <= x); close transitively, reporting cycles.
        state: dict[str, int] = {}

        def visit(n: str, path: list[str]) -> set[str]:
            if state.get(n) == 2:
                return below[n]
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                self.diagnostics.append(error(
                    "cycle", self.symbols[n].name.span,
                    "data classes form a cycle: " + " > ".join(cycle)))
                return set()
            state[n] = 1
            for p in parents[n]:
                below[n] |= visit(p, path + [n])
            state[n] = 2
            return below[n]

        for n in parents:
            visit(n, [])
        return Lattice({n: frozenset(b) for n, b in below.items()})

    # ---- items --------------------------------------------------------------------------------

    def check_tool(self, tool: ast.ToolDecl) -> ToolInfo:
        for n in tool.intents:
            self.ref(n, "intent")
        for n in tool.data:
            self.ref(n, "class")
        self.schema(tool.args)
        durations = frozenset(f.name.text for f in (tool.args.fields if tool.args else ())
                              if f.type.text == "duration")
        return ToolInfo(compile_glob(tool.pattern.text), frozenset(n.text for n in tool.intents),
                        frozenset(n.text for n in tool.data), durations, tool)

    def check_task(self, task: ast.TaskDecl) -> TaskInfo:
        self.schema(task.params)
        for p in task.tools or ():
            self.tool_pattern(p)
        for n in task.intents or ():
            self.ref(n, "intent")
        if task.ceiling is not None:
            self.ref(task.ceiling, "class")
        if task.ttl is not None:
            check_literal(task.ttl, self.diagnostics)
        to, depth = None, None
        if task.delegate is not None:
            if task.delegate.to is not None:
                to = tuple(self.agent_glob(n) for n in task.delegate.to)
            if task.delegate.depth is not None and check_literal(task.delegate.depth,
                                                                 self.diagnostics):
                value = task.delegate.depth.value
                if isinstance(value, int):
                    depth = value
                else:
                    self.diagnostics.append(error("invalid-value", task.delegate.depth.span,
                                                  "a delegation depth is a whole number"))
        else:
            depth = 1
        return TaskInfo(
            task.name.text,
            tuple(compile_glob(p.text) for p in task.tools) if task.tools is not None else None,
            frozenset(n.text for n in task.intents) if task.intents is not None else None,
            task.ceiling.text if task.ceiling else None,
            task.ttl.value if task.ttl else None,
            task.delegate is not None, to, depth, task)

    def agent_glob(self, name: ast.Name) -> Glob:
        if self.ref(name, "agent"):
            decl = self.symbols[name.text].decl
            assert isinstance(decl, ast.AgentDecl)  # what `ref` just checked
            return compile_glob(decl.pattern.value)
        return compile_glob("")

    def check_rule(self, rule: ast.Rule) -> RuleInfo:
        on_tools, on_intents = [], set()
        for item in rule.on or ():
            if isinstance(item, ast.OnIntent):
                if self.ref(item.name, "intent"):
                    on_intents.add(item.name.text)
            else:
                self.tool_pattern(item)
                on_tools.append(compile_glob(item.text))
        tasks = None
        if rule.tasks is not None:
            tasks = frozenset(n.text for n in rule.tasks if self.ref(n, "task"))
        agents = tuple(self.agent_glob(n) for n in rule.agents) if rule.agents is not None else None
        if self._kinds is None:
            self._kinds = {n: s.kind for n, s in self.symbols.items()}
        scope = ConditionScope(self._kinds, self.roots(rule), self.diagnostics,
                               unparsed=self.unparsed)
        if rule.when is not None:
            check_condition(rule.when, scope, "when")
        if rule.unless is not None:
            check_condition(rule.unless, scope, "unless")
        if rule.ttl is not None:
            check_literal(rule.ttl, self.diagnostics)
        when, unless = (c and typed_sums(c, scope) for c in (rule.when, rule.unless))
        return RuleInfo(rule.name.text, rule.effect, tuple(on_tools), frozenset(on_intents),
                        rule.on is not None, tasks, agents, when, unless,
                        rule.ttl.value if rule.ttl else None,
                        rule.because.value if rule.because else None, rule)

    def check_defaults(self) -> None:
        d = self.defaults
        if d is None:
            return
        for lit in (d.ttl, d.max_ttl):
            if lit is not None:
                check_literal(lit, self.diagnostics)
        if d.ttl and d.max_ttl and d.ttl.value > d.max_ttl.value:
            self.diagnostics.append(warning(
                "ttl", d.ttl.span, "the default ttl is longer than max_ttl, which caps it"))

    def roots(self, rule: ast.Rule) -> dict[str, T.Type]:
        return T.root_types(self.args_type(rule), self.params_type(rule))

    def args_type(self, rule: ast.Rule) -> T.Type:
        """The union of the args schemas of the tools the rule is scoped to, when all have one."""
        if not rule.on or any(isinstance(i, ast.OnIntent) for i in rule.on):
            return T.OBJECT
        decls = list({id(d): d for p in rule.on if isinstance(p, ast.Pattern)  # all are, here
                      for d in self.related_tools(p.text)}.values())
        schemas = [t.args for t in decls if t.args is not None]
        if not decls or len(schemas) != len(decls):
            return T.OBJECT
        return _union([self.schema_quiet(s) for s in schemas])

    def params_type(self, rule: ast.Rule) -> T.Type:
        if not rule.tasks:
            return T.OBJECT
        decls = [self.tasks[n.text] for n in rule.tasks if n.text in self.tasks]
        schemas = [t.params for t in decls if t.params is not None]
        if not decls or len(decls) != len(rule.tasks) or len(schemas) != len(decls):
            return T.OBJECT
        return _union([self.schema_quiet(s) for s in schemas])

    def schema_quiet(self, schema: ast.Schema) -> T.Type:
        return T.Type("object", fields=tuple(
            (f.name.text, T.SCHEMA_TYPES.get(f.type.text, T.ANY)) for f in schema.fields))


def _union(types: list[T.Type]) -> T.Type:
    fields: dict[str, set[T.Type]] = {}
    for t in types:
        for name, ft in t.fields or ():  # object types: their fields are set
            fields.setdefault(name, set()).add(ft)
    return T.Type("object", fields=tuple(
        (n, ts.pop() if len(ts) == 1 else T.ANY) for n, ts in fields.items()))




def policy_hash(files: list[ParsedFile]) -> str:
    h = hashlib.sha256()
    for f in files:
        data = f.source.text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True)
class Checked:
    """What the checker found in a policy set, with errors or without: the names it resolved
    (which the language server answers from) and, only when there is no error, the Policy."""

    policy: Policy | None
    diagnostics: list[Diagnostic]
    symbols: dict[str, Symbol]  # data classes, intents, agents, tasks: one namespace
    tools: dict[str, ast.ToolDecl]  # pattern -> its first declaration
    rules: dict[str, ast.Rule]  # name -> its first declaration
    lattice: Lattice


def check(files: list[ParsedFile]) -> tuple[Policy | None, list[Diagnostic]]:
    """Check parsed files (user files and the standard-library modules they import)."""
    checked = check_set(files)
    return checked.policy, checked.diagnostics


def check_set(files: list[ParsedFile]) -> Checked:
    """`check`, with the names the checker resolved, also when the set has errors."""
    with no_cyclic_collection():
        return _check_set(files)


def _check_set(files: list[ParsedFile]) -> Checked:
    c = _Checker(list(files))
    for f in files:
        c.diagnostics.extend(f.diagnostics)
    unparsed = [u for f in files for u in f.unparsed]
    c.unparsed = frozenset(name for kind, name in unparsed if kind != "tool")
    c.unparsed_tools = tuple(Glob(name) for kind, name in unparsed if kind == "tool")
    c.collect()
    lattice = c.lattice()
    tools = tuple(c.check_tool(t) for t in c.tools.values())
    tasks = {name: c.check_task(t) for name, t in c.tasks.items()}
    rules = tuple(c.check_rule(r) for r in c.rules.values())
    c.check_defaults()
    d = c.defaults
    diagnostics = sorted(set(c.diagnostics), key=Diagnostic.sort_key)
    if any(x.is_error for x in diagnostics):
        return Checked(None, diagnostics, c.symbols, c.tools, c.rules, lattice)
    labels = {}
    agents: dict[str, Glob] = {}
    for name, sym in c.symbols.items():
        glob = None
        if isinstance(sym.decl, ast.AgentDecl):  # kind "agent"
            glob = agents[name] = compile_glob(sym.decl.pattern.value)
        labels[name] = Label(sym.kind, name, glob)
    policy = Policy(
        lattice=lattice,
        intents=frozenset(n for n, s in c.symbols.items() if s.kind == "intent"),
        agents=agents,
        tools=tools,
        tasks=tasks,
        rules=rules,
        labels=labels,
        default_ttl=d.ttl.value if d and d.ttl else DEFAULT_TTL,
        max_ttl=d.max_ttl.value if d and d.max_ttl else None,
        hash=policy_hash(files),
        sources=tuple(files),
    )
    return Checked(policy, diagnostics, c.symbols, c.tools, c.rules, lattice)
