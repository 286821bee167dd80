"""Semantic tokens: keywords and literals from the lexer, names coloured by what they name."""

from __future__ import annotations

from lsprotocol import types as lsp

from agp.check.exprs import ROOTS
from agp.lsp import cursor
from agp.lsp.context import AgpServer
from agp.stdlib.builtins import BUILTINS

TYPES = ["keyword", "comment", "string", "number", "operator", "type", "enumMember", "interface",
         "namespace", "function", "event", "property", "variable", "parameter"]
MODIFIERS = ["declaration", "documentation", "defaultLibrary"]
LEGEND = lsp.SemanticTokensLegend(token_types=TYPES, token_modifiers=MODIFIERS)
BY_KIND = {"class": "type", "intent": "enumMember", "agent": "interface", "task": "namespace",
           "tool": "function", "rule": "event"}


def semantic_tokens(ls: AgpServer, params: lsp.SemanticTokensParams) -> lsp.SemanticTokens:
    at = ls.at(params.text_document.uri)
    if at is None:
        return lsp.SemanticTokens(data=[])
    text = at.file.source.text
    occs = {o.span.start: o for o in at.analysis.index.occurrences(at.file.source)}
    keywords = cursor.keyword_terminals()
    toks = cursor.tokens(text)
    spans: list[tuple[int, int, str, int]] = []
    covered = -1
    for i, tok in enumerate(toks):
        if tok.start_pos < covered:
            continue
        occ = occs.get(tok.start_pos)
        prev = toks[i - 1].value if i else ""
        nxt = toks[i + 1].value if i + 1 < len(toks) else ""
        if occ is not None:
            spans.append((occ.span.start, occ.span.end, BY_KIND[occ.kind], 1 if occ.declaration else 0))
            covered = occ.span.end
        elif tok.type == "STRING":
            spans.append((tok.start_pos, tok.end_pos, "string", 0))
        elif tok.type in ("NUMBER", "DURATION"):
            spans.append((tok.start_pos, tok.end_pos, "number", 0))
        elif tok.type in keywords and prev != ".":
            spans.append((tok.start_pos, tok.end_pos, "keyword", 0))
        elif tok.type == "NAME":
            if prev == ".":
                kind, mods = "property", 0
            elif nxt == "(" and tok.value in BUILTINS:
                kind, mods = "function", 4
            elif tok.value in ROOTS:
                kind, mods = "variable", 4
            elif nxt in (":", "?"):
                kind, mods = "property", 1
            elif prev == ":":
                kind, mods = "type", 4
            else:
                kind, mods = "variable", 0
            spans.append((tok.start_pos, tok.end_pos, kind, mods))
    for c in cursor.comments(text):
        spans.append((c.span.start, c.span.end, "comment", 2 if c.is_doc else 0))
    spans.sort()
    return lsp.SemanticTokens(data=_encode(spans, ls.lines(text)))


def _encode(spans, lines) -> list[int]:
    data: list[int] = []
    last_line = last_col = 0
    for start, end, kind, mods in spans:
        a, b = lines.position(start), lines.position(end)
        if a.line != b.line:
            continue  # LSP tokens may not span lines
        delta_line = a.line - last_line
        delta_col = a.character - last_col if delta_line == 0 else a.character
        data += [delta_line, delta_col, b.character - a.character, TYPES.index(kind), mods]
        last_line, last_col = a.line, a.character
    return data
