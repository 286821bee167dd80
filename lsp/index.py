"""Where every declared name is declared and used, computed from the AST and its Spans.

Kinds: `class`, `intent`, `agent`, `task` (one namespace, as in the checker), `tool` (tool
patterns, by text) and `rule`. A use of a tool pattern (`on crm.*`, `tools crm.*`) refers to every
tool declaration it matches or is matched by (as the checker relates them); every other use names exactly one declaration.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from agp.check.exprs import ROOTS
from agp.glob import compile_glob
from agp.source import Source, Span
from agp.syntax import ParsedFile, ast

LABEL_KINDS = ("class", "intent", "agent", "task")


@dataclass(frozen=True, slots=True)
class Occurrence:
    kind: str
    name: str
    span: Span
    declaration: bool
    item: object  # the top-level item it sits in


@dataclass(frozen=True, slots=True)
class Declaration:
    kind: str
    name: str
    span: Span  # of the name
    item: object  # the declaring item (its `doc` and whole span)


class Index:
    def __init__(self, files: list[ParsedFile]):
        self.files = files
        self.declarations: dict[tuple[str, str], list[Declaration]] = {}
        self.labels: dict[str, str] = {}  # declared label name -> kind
        self._by_source: dict[int, list[Occurrence]] = {}
        for f in files:
            for item in f.items:
                for occ in _declared(item):
                    decl = Declaration(occ.kind, occ.name, occ.span, item)
                    self.declarations.setdefault((occ.kind, occ.name), []).append(decl)
                    if occ.kind in LABEL_KINDS:
                        self.labels.setdefault(occ.name, occ.kind)
        for f in files:
            occs: list[Occurrence] = []
            for item in f.items:
                occs.extend(_declared(item))
                occs.extend(_used(item, self.labels))
            occs.sort(key=lambda o: o.span.start)
            self._by_source[id(f.source)] = occs

    def occurrences(self, source: Source) -> list[Occurrence]:
        return self._by_source.get(id(source), [])

    def at(self, source: Source, offset: int) -> Occurrence | None:
        """The occurrence under the cursor (a cursor just after a name still touches it)."""
        occs = self.occurrences(source)
        i = bisect.bisect_right([o.span.start for o in occs], offset) - 1
        for o in occs[max(0, i - 1) : i + 1][::-1]:
            if o.span.start <= offset <= o.span.end:
                return o
        return None

    def kinds(self, kind: str) -> list[Declaration]:
        return [d[0] for (k, _), d in self.declarations.items() if k == kind]

    def targets(self, occ: Occurrence) -> list[Declaration]:
        """The declarations an occurrence refers to."""
        if occ.kind == "tool":
            glob = compile_glob(occ.name)
            return [d for (k, n), ds in self.declarations.items() if k == "tool"
                    and glob.relates(compile_glob(n)) for d in ds]
        return list(self.declarations.get((occ.kind, occ.name), []))

    def references(self, kind: str, name: str) -> list[Occurrence]:
        """Every occurrence, declarations included, of the declared `kind` `name`."""
        out = []
        glob = compile_glob(name) if kind == "tool" else None
        for occs in self._by_source.values():
            for o in occs:
                if o.kind != kind:
                    continue
                if o.name == name or (glob is not None and not o.declaration
                                      and compile_glob(o.name).relates(glob)):
                    out.append(o)
        return out

    def item_at(self, source: Source, offset: int):
        for f in self.files:
            if f.source is source:
                for item in f.items:
                    if item.span.start <= offset <= item.span.end:
                        return item
        return None


def _occ(kind: str, name: ast.Name, item, declaration: bool = False) -> Occurrence:
    return Occurrence(kind, name.text, name.span, declaration, item)


def _declared(item) -> list[Occurrence]:
    if isinstance(item, ast.DataclassDecl):
        return [_occ("class", item.name, item, True)]
    if isinstance(item, ast.IntentDecl):
        return [_occ("intent", n, item, True) for n in item.names]
    if isinstance(item, (ast.AgentDecl, ast.TaskDecl)):
        kind = "agent" if isinstance(item, ast.AgentDecl) else "task"
        return [_occ(kind, item.name, item, True)]
    if isinstance(item, ast.ToolDecl):
        return [Occurrence("tool", item.pattern.text, item.pattern.span, True, item)]
    if isinstance(item, ast.Rule):
        return [_occ("rule", item.name, item, True)]
    return []


def _used(item, labels: dict[str, str]) -> list[Occurrence]:
    out: list[Occurrence] = []
    if isinstance(item, ast.DataclassDecl):
        out += [_occ("class", n, item) for n in item.parents]
    elif isinstance(item, ast.ToolDecl):
        out += [_occ("intent", n, item) for n in item.intents]
        out += [_occ("class", n, item) for n in item.data]
    elif isinstance(item, ast.TaskDecl):
        out += [Occurrence("tool", p.text, p.span, False, item) for p in item.tools or ()]
        out += [_occ("intent", n, item) for n in item.intents or ()]
        if item.ceiling is not None:
            out.append(_occ("class", item.ceiling, item))
        if item.delegate is not None:
            out += [_occ("agent", n, item) for n in item.delegate.to or ()]
    elif isinstance(item, ast.Rule):
        for on in item.on or ():
            if isinstance(on, ast.OnIntent):
                out.append(_occ("intent", on.name, item))
            else:
                out.append(Occurrence("tool", on.text, on.span, False, item))
        out += [_occ("task", n, item) for n in item.tasks or ()]
        out += [_occ("agent", n, item) for n in item.agents or ()]
        for cond in (item.when, item.unless):
            if cond is not None:
                _expr(cond, labels, item, frozenset(), out)
    return out


def _expr(e, labels: dict[str, str], item, bound: frozenset[str], out: list[Occurrence]) -> None:
    """Names of declarations used in a condition, minus quantifier variables and roots."""
    if isinstance(e, ast.NameRef):
        if e.name not in bound and e.name not in ROOTS and e.name in labels:
            out.append(Occurrence(labels[e.name], e.name, e.span, False, item))
    elif isinstance(e, ast.Is):
        _expr(e.obj, labels, item, bound, out)
        if e.name.text in labels:
            out.append(_occ(labels[e.name.text], e.name, item))
    elif isinstance(e, ast.Quant):
        _expr(e.seq, labels, item, bound, out)
        _expr(e.body, labels, item, bound | {e.var.text}, out)
    elif isinstance(e, ast.ListExpr):
        for x in e.items:
            _expr(x, labels, item, bound, out)
    elif isinstance(e, ast.Call):
        for x in e.args:
            _expr(x, labels, item, bound, out)
    elif isinstance(e, ast.Binary):
        _expr(e.left, labels, item, bound, out)
        _expr(e.right, labels, item, bound, out)
    elif isinstance(e, (ast.Unary,)):
        _expr(e.operand, labels, item, bound, out)
    elif isinstance(e, (ast.Attr, ast.Has)):
        _expr(e.obj, labels, item, bound, out)
