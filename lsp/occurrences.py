"""Where the names of a checked policy set occur: the positions the checker does not record.

What a name is comes from the checker (`agp.check.resolve.Checked`): its symbols (data classes,
intents, agents and tasks, one namespace), its tools and its rules. This module only finds where
each name is written, declarations and uses, in the items of every file of the set and, with the
expression visitor every consumer of conditions uses, in their `when` and `unless` conditions.

Kinds: `class`, `intent`, `agent`, `task`, `tool` (tool patterns, by text) and `rule`. A use of a
tool pattern (`on crm.*`, `tools crm.*`) refers to every tool declaration it matches or is matched
by, as the checker relates them; every other use names exactly one declaration.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from agp.check.resolve import Checked, Symbol, SymbolDecl
from agp.glob import compile_glob
from agp.source import Source, Span
from agp.syntax import ParsedFile, ast
from agp.syntax.names import ROOTS
from agp.syntax.visit import ExprVisitor, children


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A name written in a file: a declaration of it or a use."""

    kind: str
    name: str
    span: Span
    declaration: bool
    item: ast.Item  # the top-level item it sits in


@dataclass(frozen=True, slots=True)
class Declaration:
    """What a name refers to, as the checker resolved it."""

    kind: str
    name: str
    span: Span  # of the name
    item: ast.Item  # the declaring item (its `doc` and whole span)


class Occurrences:
    """The occurrences of a checked set's names, file by file, and what each one refers to."""

    def __init__(self, files: Iterable[ParsedFile], checked: Checked) -> None:
        self.checked = checked
        kinds = {name: symbol.kind for name, symbol in checked.symbols.items()}
        self._by_source: dict[Source, list[Occurrence]] = {}
        for f in files:
            found = [o for item in f.items for o in _SITES[type(item)](item, kinds)]
            found.sort(key=lambda o: o.span.start)
            self._by_source[f.source] = found

    def plus(self, items: Iterable[ast.Item]) -> Occurrences:
        """These occurrences, also declaring what `items` declare that the checked set does not:
        the names typed since the check (see `current.py`). Where they are used is not added."""
        symbols, tools, rules = dict(self.checked.symbols), dict(self.checked.tools), dict(
            self.checked.rules)
        for item in items:
            for o in _SITES[type(item)](item, {}):
                if not o.declaration:
                    continue
                if isinstance(item, ast.ToolDecl):
                    tools.setdefault(o.name, item)
                elif isinstance(item, ast.Rule):
                    rules.setdefault(o.name, item)
                elif isinstance(item, SymbolDecl):
                    symbols.setdefault(o.name, Symbol(o.kind, ast.Name(o.name, o.span), item))
        out = copy.copy(self)
        out.checked = replace(self.checked, symbols=symbols, tools=tools, rules=rules)
        return out

    def in_file(self, source: Source) -> list[Occurrence]:
        return self._by_source.get(source, [])

    def at(self, source: Source, offset: int) -> Occurrence | None:
        """The occurrence under the cursor (a cursor just after a name still touches it)."""
        found = self.in_file(source)
        i = bisect.bisect_right([o.span.start for o in found], offset) - 1
        for o in found[max(0, i - 1) : i + 1][::-1]:
            if o.span.start <= offset <= o.span.end:
                return o
        return None

    def declared(self, kind: str) -> list[Declaration]:
        """Every name of a kind the checker knows, with its (first) declaration."""
        if kind == "tool":
            return [_tool(d) for d in self.checked.tools.values()]
        if kind == "rule":
            return [Declaration("rule", n, r.name.span, r) for n, r in self.checked.rules.items()]
        return [d for name in self.checked.symbols if (d := self.label(name)) and d.kind == kind]

    def label(self, name: str) -> Declaration | None:
        """The data class, intent, agent or task `name`, if the set declares one."""
        symbol = self.checked.symbols.get(name)
        if symbol is None:
            return None
        decl: Any = symbol.decl
        return Declaration(symbol.kind, name, symbol.name.span, decl)

    def targets(self, occ: Occurrence) -> list[Declaration]:
        """The declarations an occurrence refers to."""
        if occ.kind == "tool":
            glob = compile_glob(occ.name)
            return [_tool(d) for text, d in self.checked.tools.items()
                    if glob.relates(compile_glob(text))]
        if occ.kind == "rule":
            rule = self.checked.rules.get(occ.name)
            return [Declaration("rule", occ.name, rule.name.span, rule)] if rule else []
        decl = self.label(occ.name)
        return [decl] if decl is not None and decl.kind == occ.kind else []

    def references(self, kind: str, name: str) -> list[Occurrence]:
        """Every occurrence, declarations included, of the declared `kind` `name`."""
        glob = compile_glob(name) if kind == "tool" else None
        return [o for found in self._by_source.values() for o in found if o.kind == kind and (
            o.name == name or glob is not None and not o.declaration
            and compile_glob(o.name).relates(glob))]


def _tool(decl: ast.ToolDecl) -> Declaration:
    return Declaration("tool", decl.pattern.text, decl.pattern.span, decl)


# ---- where names are written, item by item -----------------------------------------------------


def _name(kind: str, name: ast.Name, item: ast.Item, declaration: bool = False) -> Occurrence:
    return Occurrence(kind, name.text, name.span, declaration, item)


def _pattern(pattern: ast.Pattern, item: ast.Item, declaration: bool = False) -> Occurrence:
    return Occurrence("tool", pattern.text, pattern.span, declaration, item)


def _names(kind: str, names: Iterable[ast.Name] | None, item: ast.Item) -> list[Occurrence]:
    return [_name(kind, n, item) for n in names or ()]


Kinds = Mapping[str, str]  # declared name -> its kind, from the checker's symbols


def _dataclass(item: ast.DataclassDecl, kinds: Kinds) -> list[Occurrence]:
    return [_name("class", item.name, item, True), *_names("class", item.parents, item)]


def _intent(item: ast.IntentDecl, kinds: Kinds) -> list[Occurrence]:
    return [_name("intent", n, item, True) for n in item.names]


def _agent(item: ast.AgentDecl, kinds: Kinds) -> list[Occurrence]:
    return [_name("agent", item.name, item, True)]


def _tool_decl(item: ast.ToolDecl, kinds: Kinds) -> list[Occurrence]:
    return [_pattern(item.pattern, item, True), *_names("intent", item.intents, item),
            *_names("class", item.data, item)]


def _task(item: ast.TaskDecl, kinds: Kinds) -> list[Occurrence]:
    return [_name("task", item.name, item, True),
            *(_pattern(p, item) for p in item.tools or ()),
            *_names("intent", item.intents, item),
            *_names("class", [item.ceiling] if item.ceiling else (), item),
            *_names("agent", item.delegate.to if item.delegate else (), item)]


def _rule(item: ast.Rule, kinds: Kinds) -> list[Occurrence]:
    found = [_name("rule", item.name, item, True)]
    for on in item.on or ():
        found.append(_name("intent", on.name, item) if isinstance(on, ast.OnIntent)
                     else _pattern(on, item))
    found += _names("task", item.tasks, item) + _names("agent", item.agents, item)
    uses = _Uses(kinds, item)
    for condition in (item.when, item.unless):
        if condition is not None:
            found += uses.visit(condition, frozenset())
    return found


def _nothing(item: ast.Item, kinds: Kinds) -> list[Occurrence]:
    return []  # `module`, `import`, `defaults` name nothing the set declares


_SITES: dict[type, Callable[[Any, Kinds], list[Occurrence]]] = {
    ast.DataclassDecl: _dataclass, ast.IntentDecl: _intent, ast.AgentDecl: _agent,
    ast.ToolDecl: _tool_decl, ast.TaskDecl: _task, ast.Rule: _rule,
    ast.ModuleDecl: _nothing, ast.Import: _nothing, ast.Defaults: _nothing,
}


class _Uses(ExprVisitor):
    """The declared names a condition uses. A name in a condition is a quantifier's variable
    first, then a root (`args`, `task`, ...), then a declaration (as `agp.check` reads it)."""

    def __init__(self, kinds: Kinds, item: ast.Item) -> None:
        self.kinds = kinds
        self.item = item

    def visit_NameRef(self, e: ast.NameRef, bound: frozenset[str]) -> list[Occurrence]:
        kind = self.kinds.get(e.name)
        if kind is None or e.name in bound or e.name in ROOTS:
            return []
        return [Occurrence(kind, e.name, e.span, False, self.item)]

    def visit_Is(self, e: ast.Is, bound: frozenset[str]) -> list[Occurrence]:
        kind = self.kinds.get(e.name.text)
        found: list[Occurrence] = self.visit(e.obj, bound)
        return found + [_name(kind, e.name, self.item)] if kind is not None else found

    def visit_Quant(self, e: ast.Quant, bound: frozenset[str]) -> list[Occurrence]:
        seq: list[Occurrence] = self.visit(e.seq, bound)
        inner = bound | {e.var.text}
        body = [o for c in (e.filter, e.body) if c is not None for o in self.visit(c, inner)]
        return seq + body

    def _inside(self, e: ast.Expr, bound: frozenset[str]) -> list[Occurrence]:
        return [o for child in children(e) for o in self.visit(child, bound)]

    # These forms name nothing themselves (an attribute, a field after `has` and a function are
    # not declarations): only what is inside them.
    visit_Literal = visit_ListExpr = visit_Attr = visit_Unary = visit_Binary = _inside
    visit_Has = visit_Call = _inside

