"""Hover: the doc comment and signature of a declared name (a data class with its place in the
checker's lattice), the doc of keywords, of request fields (`args.amount`, `chain.depth`) and of
the standard functions. Read from the current text against the last finished check, never
waiting for the next one (`current.py`)."""

from __future__ import annotations

from pathlib import Path

from lark import Token
from lsprotocol import types as lsp

from agp.lsp import cursor
from agp.lsp.context import AgpServer
from agp.lsp.current import Current, shifted
from agp.lsp.fields import fields_of, history_variables
from agp.lsp.occurrences import Declaration, Occurrences
from agp.lsp.vocabulary import KEYWORDS, root_doc
from agp.stdlib.builtins import BUILTINS
from agp.syntax import ast
from agp.syntax.names import ROOTS
from agp.values import Lattice


def hover(ls: AgpServer, params: lsp.HoverParams) -> lsp.Hover | None:
    found = ls.current(params.text_document.uri, params.position)
    if found is None:
        return None
    return hover_at(*found)


def hover_at(cur: Current, offset: int) -> lsp.Hover | None:
    text, names = cur.text, cur.names
    at_token = cursor.token_at(text, offset)
    if at_token is None:
        return None
    i, tok = at_token
    # A name the edit since the last check did not touch is where that check saw it.
    old = cur.edit.to_old(offset)
    occ = names.at(cur.source, old) if old is not None else None
    where = shifted(cur, occ.span) if occ is not None else None
    if occ is not None and where is not None:
        decls = names.targets(occ)
        if decls:
            body = "\n\n---\n\n".join(describe(d, names.checked.lattice) for d in decls)
            return _hover(body, cur.lines.range(*where))
    value = _explain(text, i, tok, names)
    if value is None:
        return None
    return _hover(value, cur.lines.range(cursor.start_of(tok), cursor.end_of(tok)))


def _explain(text: str, i: int, tok: Token, names: Occurrences) -> str | None:
    toks = cursor.tokens(text)
    item = cursor.item_tokens(text, cursor.start_of(tok))
    if i >= 1 and toks[i - 1].value == "." and toks[i - 1].type != "STRING":
        path = cursor.dotted_before(toks, i - 1)
        patterns, tasks = cursor.rule_scope(item)
        for f in fields_of(path, names, patterns, tasks, history=history_variables(item)):
            if f.name == tok.value:
                opt = " (optional)" if f.optional else ""
                return _code(f"{'.'.join(path)}.{f.name}: {f.type}{opt}") + (f.doc and f"\n\n{f.doc}")
        return None
    before = [t for t in item if cursor.start_of(t) < cursor.start_of(tok)]
    in_condition = cursor.Cursor(before, "", 0).clause() in ("when", "unless")
    if tok.type == "NAME":
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if tok.value in BUILTINS and nxt is not None and nxt.value == "(":
            fn = BUILTINS[tok.value]
            return _code(fn.signature) + "\n\n" + fn.doc
    if in_condition and tok.value in ROOTS:
        kind, doc = root_doc(tok.value)
        return _code(f"{tok.value}: {kind}") + "\n\n" + doc
    if tok.type != "NAME" and tok.value in KEYWORDS:
        return KEYWORDS[tok.value]
    return None


def describe(decl: Declaration, lattice: Lattice) -> str:
    item = decl.item
    signature = f"intent {decl.name}" if isinstance(item, ast.IntentDecl) else item.span.text
    parts = [_code(signature)]
    if isinstance(item, ast.DataclassDecl):
        parts.append(_place(decl.name, lattice))
    if item.doc:
        parts.append(item.doc)
    source = decl.span.source.name
    if "stdlib" in Path(source).parts or Path(source).parent.name == "stdlib":
        parts.append(f"*from the standard library (`std.{Path(source).stem}`)*")
    return "\n\n".join(parts)


def _place(name: str, lattice: Lattice) -> str:
    """Where a data class sits in the lattice: the classes it is above, and those above it."""
    lower = sorted(lattice.below.get(name, frozenset()) - {name})
    upper = sorted(n for n, below in lattice.below.items() if n != name and name in below)
    return (f"above: {', '.join(f'`{n}`' for n in lower) or 'nothing'}; "
            f"below: {', '.join(f'`{n}`' for n in upper) or 'nothing'}")


def _code(text: str) -> str:
    return f"```agp\n{text}\n```"


def _hover(value: str, rng: lsp.Range) -> lsp.Hover:
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=value),
                     range=rng)
