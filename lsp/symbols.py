"""Document symbols (an outline of declarations and rules) and workspace symbols."""

from __future__ import annotations

from lsprotocol import types as lsp

from agp.lsp.context import AgpServer
from agp.syntax import ast

S = lsp.SymbolKind
KINDS = {"class": S.Class, "intent": S.EnumMember, "agent": S.Interface, "task": S.Module,
         "tool": S.Function, "rule": S.Event}


def _detail(item) -> str:
    if isinstance(item, ast.Rule):
        return item.effect
    if isinstance(item, ast.DataclassDecl):
        return "dataclass" + (" > " + ", ".join(p.text for p in item.parents) if item.parents else "")
    if isinstance(item, ast.AgentDecl):
        return f'agent "{item.pattern.value}"'
    return type(item).__name__.removesuffix("Decl").lower()


def _fields(ls: AgpServer, schema) -> list[lsp.DocumentSymbol]:
    return [lsp.DocumentSymbol(name=f.name.text, kind=S.Field, detail=f.type.text,
                               range=ls.range(f.span), selection_range=ls.range(f.name.span))
            for f in (schema.fields if schema is not None else ())]


def document_symbol(ls: AgpServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
    at = ls.at(params.text_document.uri)
    if at is None:
        return []
    out = []
    for item in at.file.items:
        if isinstance(item, ast.IntentDecl):
            out += [lsp.DocumentSymbol(name=n.text, kind=S.EnumMember, detail="intent",
                                       range=ls.range(item.span), selection_range=ls.range(n.span))
                    for n in item.names]
            continue
        if isinstance(item, (ast.ModuleDecl, ast.Import, ast.Defaults)):
            name = "defaults" if isinstance(item, ast.Defaults) else (
                item.name.text if isinstance(item, ast.ModuleDecl) else item.module.text)
            kind = S.Package if isinstance(item, ast.Import) else (
                S.Module if isinstance(item, ast.ModuleDecl) else S.Constant)
            out.append(lsp.DocumentSymbol(name=name, kind=kind, range=ls.range(item.span),
                                          selection_range=ls.range(item.span)))
            continue
        name = item.pattern if isinstance(item, ast.ToolDecl) else item.name
        kind = {ast.DataclassDecl: "class", ast.AgentDecl: "agent", ast.TaskDecl: "task",
                ast.ToolDecl: "tool", ast.Rule: "rule"}[type(item)]
        children = _fields(ls, getattr(item, "args", None) or getattr(item, "params", None))
        out.append(lsp.DocumentSymbol(name=name.text, kind=KINDS[kind], detail=_detail(item),
                                      range=ls.range(item.span), selection_range=ls.range(name.span),
                                      children=children or None))
    return out


def workspace_symbol(ls: AgpServer, params: lsp.WorkspaceSymbolParams) -> list[lsp.WorkspaceSymbol]:
    query = params.query.lower()
    seen, out = set(), []
    uris = list(ls.open_docs()) + ls.project.sets()  # one file stands for its whole set
    for uri in uris:
        analysis = ls.analysis(uri)
        for (kind, name), decls in analysis.index.declarations.items():
            for d in decls:
                uri_d = analysis.uri_of(d.span.source)
                key = (uri_d, d.span.start)
                if uri_d not in analysis.files or key in seen or query not in name.lower():
                    continue
                seen.add(key)
                out.append(lsp.WorkspaceSymbol(name=name, kind=KINDS[kind],
                                               location=ls.location(analysis, d.span),
                                               container_name=kind))
    return out
