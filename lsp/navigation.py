"""Go to definition and find references, over every file of the policy set."""

from __future__ import annotations

from lsprotocol import types as lsp

from agp.lsp.context import AgpServer
from agp.lsp.occurrences import Occurrence


def definition(ls: AgpServer, params: lsp.DefinitionParams) -> list[lsp.Location] | None:
    at = ls.at(params.text_document.uri, params.position)
    occ = at and at.analysis.occurrences.at(at.file.source, at.offset)
    if not at or not occ:
        return None
    targets = at.analysis.occurrences.targets(occ)
    return [ls.location(at.analysis, d.span) for d in targets] or None


def references(ls: AgpServer, params: lsp.ReferenceParams) -> list[lsp.Location] | None:
    at = ls.at(params.text_document.uri, params.position)
    occ = at and at.analysis.occurrences.at(at.file.source, at.offset)
    if not at or not occ:
        return None
    names = at.analysis.occurrences
    # From a use of a tool glob, the references are those of the tools it stands for.
    wanted = {d.name for d in names.targets(occ)} if occ.kind == "tool" else {occ.name}
    found: dict[tuple[str, int], Occurrence] = {}
    for name in wanted:
        for o in names.references(occ.kind, name):
            if o.declaration and not params.context.include_declaration:
                continue
            found[(o.span.source.name, o.span.start)] = o
    return [ls.location(at.analysis, o.span)
            for o in sorted(found.values(), key=lambda o: (o.span.source.name, o.span.start))]
