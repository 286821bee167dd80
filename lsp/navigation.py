"""Go to definition and find references, over every file of the policy set."""

from __future__ import annotations

from lsprotocol import types as lsp

from agp.lsp.context import AgpServer


def definition(ls: AgpServer, params: lsp.DefinitionParams) -> list[lsp.Location] | None:
    at = ls.at(params.text_document.uri, params.position)
    occ = at and at.analysis.index.at(at.file.source, at.offset)
    if not occ:
        return None
    return [ls.location(at.analysis, d.span) for d in at.analysis.index.targets(occ)] or None


def references(ls: AgpServer, params: lsp.ReferenceParams) -> list[lsp.Location] | None:
    at = ls.at(params.text_document.uri, params.position)
    occ = at and at.analysis.index.at(at.file.source, at.offset)
    if not occ:
        return None
    index = at.analysis.index
    # From a use of a tool glob, the references are those of the tools it stands for.
    names = {d.name for d in index.targets(occ)} if occ.kind == "tool" else {occ.name}
    found = {}
    for name in names:
        for o in index.references(occ.kind, name):
            if o.declaration and not params.context.include_declaration:
                continue
            found[(id(o.span.source), o.span.start)] = o
    return [ls.location(at.analysis, o.span)
            for o in sorted(found.values(), key=lambda o: (o.span.source.name, o.span.start))]
