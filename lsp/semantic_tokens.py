"""Semantic tokens: keywords and literals from the lexer, names coloured by what they name."""

from __future__ import annotations

from lark import Token
from lsprotocol import types as lsp

from agp.lsp import cursor
from agp.lsp.context import AgpServer
from agp.lsp.positions import LineIndex
from agp.stdlib.builtins import BUILTINS
from agp.syntax.names import ROOTS

TYPES = ["keyword", "comment", "string", "number", "operator", "type", "enumMember", "interface",
         "namespace", "function", "event", "property", "variable", "parameter"]
MODIFIERS = ["declaration", "documentation", "defaultLibrary"]
DECLARATION, DOCUMENTATION, DEFAULT_LIBRARY = 1, 2, 4  # the bits of MODIFIERS
LEGEND = lsp.SemanticTokensLegend(token_types=TYPES, token_modifiers=MODIFIERS)
BY_KIND = {"class": "type", "intent": "enumMember", "agent": "interface", "task": "namespace",
           "tool": "function", "rule": "event"}

Piece = tuple[int, int, str, int]  # start, end, token type, modifiers


def semantic_tokens(ls: AgpServer, params: lsp.SemanticTokensParams) -> lsp.SemanticTokens:
    at = ls.at(params.text_document.uri)
    if at is None:
        return lsp.SemanticTokens(data=[])
    text = at.file.source.text
    occs = {o.span.start: o for o in at.analysis.occurrences.in_file(at.file.source)}
    toks = cursor.tokens(text)
    spans: list[Piece] = []
    covered = -1
    for i, tok in enumerate(toks):
        start = cursor.start_of(tok)
        if start < covered:
            continue  # inside a dotted tool name already coloured
        occ = occs.get(start)
        if occ is not None:
            spans.append((occ.span.start, occ.span.end, BY_KIND[occ.kind],
                          DECLARATION if occ.declaration else 0))
            covered = occ.span.end
            continue
        prev = toks[i - 1].value if i else ""
        nxt = toks[i + 1].value if i + 1 < len(toks) else ""
        kind = _lexical(tok, prev, nxt)
        if kind is not None:
            spans.append((start, cursor.end_of(tok), *kind))
    for c in cursor.comments(text):
        spans.append((c.span.start, c.span.end, "comment", DOCUMENTATION if c.is_doc else 0))
    spans.sort()
    return lsp.SemanticTokens(data=_encode(spans, ls.lines(text)))


def _lexical(tok: Token, prev: str, nxt: str) -> tuple[str, int] | None:
    """A token that names nothing declared, by what the lexer and its neighbours say."""
    if tok.type == "STRING":
        return "string", 0
    if tok.type in ("NUMBER", "DURATION"):
        return "number", 0
    if tok.type in cursor.keyword_terminals() and prev != ".":
        return "keyword", 0
    if tok.type != "NAME":
        return None
    if prev == ".":
        return "property", 0
    if nxt == "(" and tok.value in BUILTINS:
        return "function", DEFAULT_LIBRARY
    if tok.value in ROOTS:
        return "variable", DEFAULT_LIBRARY
    if nxt in (":", "?"):
        return "property", DECLARATION
    if prev == ":":
        return "type", DEFAULT_LIBRARY
    return "variable", 0


def _encode(spans: list[Piece], lines: LineIndex) -> list[int]:
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
