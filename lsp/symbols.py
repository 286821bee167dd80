"""Document symbols (an outline of declarations and rules) and workspace symbols."""

from __future__ import annotations

from lsprotocol import types as lsp

from agp.lsp.context import AgpServer
from agp.syntax import ast

S = lsp.SymbolKind
KINDS = {"class": S.Class, "intent": S.EnumMember, "agent": S.Interface, "task": S.Module,
         "tool": S.Function, "rule": S.Event}
ITEM_KINDS = {ast.DataclassDecl: "class", ast.AgentDecl: "agent", ast.TaskDecl: "task",
              ast.ToolDecl: "tool", ast.Rule: "rule"}


def _detail(item: ast.Item) -> str:
    if isinstance(item, ast.Rule):
        return item.effect
    if isinstance(item, ast.DataclassDecl):
        return "dataclass" + (" > " + ", ".join(p.text for p in item.parents) if item.parents else "")
    if isinstance(item, ast.AgentDecl):
        return f'agent "{item.pattern.value}"'
    return type(item).__name__.removesuffix("Decl").lower()


def _fields(ls: AgpServer, schema: ast.Schema | None) -> list[lsp.DocumentSymbol]:
    return [lsp.DocumentSymbol(name=f.name.text, kind=S.Field, detail=f.type.text,
                               range=ls.range(f.span), selection_range=ls.range(f.name.span))
            for f in (schema.fields if schema is not None else ())]


def document_symbol(ls: AgpServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
    at = ls.at(params.text_document.uri)
    if at is None:
        return []
    return [symbol for item in at.file.items for symbol in _symbols(ls, item)]


def _symbols(ls: AgpServer, item: ast.Item) -> list[lsp.DocumentSymbol]:
    whole = ls.range(item.span)
    if isinstance(item, ast.IntentDecl):
        return [lsp.DocumentSymbol(name=n.text, kind=S.EnumMember, detail="intent", range=whole,
                                   selection_range=ls.range(n.span)) for n in item.names]
    if isinstance(item, ast.Defaults):
        return [lsp.DocumentSymbol(name="defaults", kind=S.Constant, range=whole,
                                   selection_range=whole)]
    if isinstance(item, ast.ModuleDecl):
        return [lsp.DocumentSymbol(name=item.name.text, kind=S.Module, range=whole,
                                   selection_range=whole)]
    if isinstance(item, ast.Import):
        return [lsp.DocumentSymbol(name=item.module.text, kind=S.Package, range=whole,
                                   selection_range=whole)]
    name: ast.Name | ast.Pattern = item.pattern if isinstance(item, ast.ToolDecl) else item.name
    schema = item.args if isinstance(item, ast.ToolDecl) else (
        item.params if isinstance(item, ast.TaskDecl) else None)
    return [lsp.DocumentSymbol(name=name.text, kind=KINDS[ITEM_KINDS[type(item)]],
                               detail=_detail(item), range=whole,
                               selection_range=ls.range(name.span),
                               children=_fields(ls, schema) or None)]


def workspace_symbol(ls: AgpServer, params: lsp.WorkspaceSymbolParams) -> list[lsp.WorkspaceSymbol]:
    query = params.query.lower()
    seen: set[tuple[str, int]] = set()
    out: list[lsp.WorkspaceSymbol] = []
    uris = list(ls.open_docs()) + ls.project.sets()  # one file stands for its whole set
    for uri in uris:
        analysis = ls.analysis(uri)
        for kind in KINDS:
            for d in analysis.occurrences.declared(kind):
                uri_d = analysis.uri_of(d.span.source)
                key = (uri_d, d.span.start)
                if uri_d not in analysis.files or key in seen or query not in d.name.lower():
                    continue
                seen.add(key)
                out.append(lsp.WorkspaceSymbol(name=d.name, kind=KINDS[kind],
                                               location=ls.location(analysis, d.span),
                                               container_name=kind))
    return out
