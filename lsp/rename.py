"""Rename a data class, intent, agent, task, tool or rule in every file of the policy set.

A tool is renamed where it is named exactly; globs that cover it (`crm.*`) stay as they are.
A rename that would not check is refused with an error the editor shows, and nothing changes:
a name from the standard library, a new name that is not a name (a reserved word, `2x`, `a b`),
one the checker keeps for itself (`args`, `lower`), and one already declared in the set, which
would leave "declared twice". Data classes, intents, agents and tasks share one namespace (as in
the checker, whose names the collisions are looked up in); tools and rules each have their own.
"""

from __future__ import annotations

import re

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from agp.check.resolve import Checked
from agp.diagnostics import Diagnostic
from agp.lsp.context import AgpServer, At
from agp.lsp.occurrences import Occurrence
from agp.source import Source
from agp.stdlib.builtins import BUILTINS
from agp.syntax.names import KIND_WORDS, ROOTS, with_article
from agp.syntax.parser import RESERVED, tokenize

DOTTED = re.compile(r"[A-Za-z_*][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\*))*")


def refuse(message: str) -> JsonRpcException:
    """The LSP answer to a rename that is understood but cannot be done."""
    return JsonRpcException(message, code=lsp.LSPErrorCodes.RequestFailed)


def _target(ls: AgpServer, uri: str, position: lsp.Position) -> tuple[At | None,
                                                                      Occurrence | None]:
    at = ls.at(uri, position, wait=True)  # every file parsed: a collision may hide in any
    occ = at and at.analysis.occurrences.at(at.file.source, at.offset)
    if not at or not occ:
        return None, None
    decls = at.analysis.occurrences.targets(occ)
    if occ.kind == "tool" and not occ.declaration and not any(d.name == occ.name for d in decls):
        return at, None  # a glob that only covers tools
    if not decls or any(at.analysis.uri_of(d.span.source) not in at.analysis.files for d in decls):
        raise refuse(f"`{occ.name}` is declared in the standard library and cannot be renamed")
    return at, occ


def prepare_rename(ls: AgpServer,
                   params: lsp.PrepareRenameParams) -> lsp.PrepareRenamePlaceholder | None:
    _, occ = _target(ls, params.text_document.uri, params.position)
    if occ is None:
        return None
    return lsp.PrepareRenamePlaceholder(range=ls.range(occ.span), placeholder=occ.name)


def _is_name(text: str) -> bool:
    """Whether the parser reads `text` as one plain name (not a keyword, not two tokens)."""
    problems: list[Diagnostic] = []
    tokens, comments = tokenize(Source("", text), problems)
    return (not problems and not comments and len(tokens) == 1 and tokens[0].type == "NAME"
            and tokens[0].value == text)


def _spelling(kind: str, new: str, checked: Checked) -> str:
    """How the new name is written in the policy, or an error saying why it cannot be."""
    if kind == "tool":
        if not new or any(ord(ch) < 0x20 for ch in new):
            raise refuse(f"{new!r} is not a tool name")
        if new in checked.tools:
            raise refuse(f"a tool `{new}` is already declared")
        if DOTTED.fullmatch(new) and not any(s in RESERVED for s in new.split(".")):
            return new
        return '"' + new.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not _is_name(new):
        raise refuse(f"`{new}` is not a valid name (a reserved word or not an identifier)")
    if kind == "rule":
        if new in checked.rules:
            raise refuse(f"a rule `{new}` is already declared")
        return new
    if new in ROOTS or new in BUILTINS:
        what = "a condition name" if new in ROOTS else "a standard function"
        raise refuse(f"`{new}` is {what} and cannot be declared")
    if new in checked.symbols:
        kind_word = KIND_WORDS[checked.symbols[new].kind]
        raise refuse(f"`{new}` is already declared as {with_article(kind_word)}")
    return new


def rename(ls: AgpServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
    at, occ = _target(ls, params.text_document.uri, params.position)
    if at is None or occ is None:
        return None
    if params.new_name == occ.name:
        return lsp.WorkspaceEdit(changes={})
    text = _spelling(occ.kind, params.new_name, at.analysis.checked)
    changes: dict[str, list[lsp.TextEdit]] = {}
    for o in at.analysis.occurrences.references(occ.kind, occ.name):
        if o.name != occ.name:
            continue  # a glob covering the renamed tool
        loc = ls.location(at.analysis, o.span)
        changes.setdefault(loc.uri, []).append(lsp.TextEdit(range=loc.range, new_text=text))
    return lsp.WorkspaceEdit(changes=changes)
