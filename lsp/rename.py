"""Rename a data class, intent, agent, task, tool or rule in every file of the policy set.

A tool is renamed where it is named exactly; globs that cover it (`crm.*`) stay as they are.
A rename that would not check is refused with an error the editor shows, and nothing changes:
a name from the standard library, a new name that is not a name (a reserved word, `2x`, `a b`),
one the checker keeps for itself (`args`, `lower`), and one already declared in the set, which
would leave "declared twice". Data classes, intents, agents and tasks share one namespace (as in
the checker); tools and rules each have their own.
"""

from __future__ import annotations

import re

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from agp.check.exprs import ROOTS
from agp.lsp.context import AgpServer
from agp.lsp.index import Index
from agp.source import Source
from agp.stdlib.builtins import BUILTINS
from agp.syntax.parser import RESERVED, tokenize

DOTTED = re.compile(r"[A-Za-z_*][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\*))*")
KIND_WORDS = {"class": "a data class", "intent": "an intent", "agent": "an agent",
              "task": "a task", "tool": "a tool", "rule": "a rule"}


def refuse(message: str) -> JsonRpcException:
    """The LSP answer to a rename that is understood but cannot be done."""
    return JsonRpcException(message, code=lsp.LSPErrorCodes.RequestFailed)


def _target(ls: AgpServer, uri: str, position: lsp.Position):
    at = ls.at(uri, position, wait=True)  # every file parsed: a collision may hide in any
    occ = at and at.analysis.index.at(at.file.source, at.offset)
    if not occ:
        return None, None
    decls = at.analysis.index.targets(occ)
    if occ.kind == "tool" and not occ.declaration and not any(d.name == occ.name for d in decls):
        return at, None  # a glob that only covers tools
    if not decls or any(at.analysis.uri_of(d.span.source) not in at.analysis.files for d in decls):
        raise refuse(f"`{occ.name}` is declared in the standard library and cannot be renamed")
    return at, occ


def prepare_rename(ls: AgpServer, params: lsp.PrepareRenameParams):
    at, occ = _target(ls, params.text_document.uri, params.position)
    if occ is None:
        return None
    return lsp.PrepareRenamePlaceholder(range=ls.range(occ.span), placeholder=occ.name)


def _is_name(text: str) -> bool:
    """Whether the parser reads `text` as one plain name (not a keyword, not two tokens)."""
    problems: list = []
    tokens, comments = tokenize(Source("", text), problems)
    return (not problems and not comments and len(tokens) == 1 and tokens[0].type == "NAME"
            and tokens[0].value == text)


def _spelling(kind: str, new: str, index: Index) -> str:
    """How the new name is written in the policy, or an error saying why it cannot be."""
    if kind == "tool":
        if not new or any(ord(ch) < 0x20 for ch in new):
            raise refuse(f"{new!r} is not a tool name")
        if index.declarations.get(("tool", new)):
            raise refuse(f"a tool `{new}` is already declared")
        if DOTTED.fullmatch(new) and not any(s in RESERVED for s in new.split(".")):
            return new
        return '"' + new.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not _is_name(new):
        raise refuse(f"`{new}` is not a valid name (a reserved word or not an identifier)")
    if kind == "rule":
        if index.declarations.get(("rule", new)):
            raise refuse(f"a rule `{new}` is already declared")
        return new
    if new in ROOTS or new in BUILTINS:
        what = "a condition name" if new in ROOTS else "a standard function"
        raise refuse(f"`{new}` is {what} and cannot be declared")
    if new in index.labels:
        raise refuse(f"`{new}` is already declared as {KIND_WORDS[index.labels[new]]}")
    return new


def rename(ls: AgpServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
    at, occ = _target(ls, params.text_document.uri, params.position)
    if occ is None:
        return None
    if params.new_name == occ.name:
        return lsp.WorkspaceEdit(changes={})
    text = _spelling(occ.kind, params.new_name, at.analysis.index)
    changes: dict[str, list[lsp.TextEdit]] = {}
    for o in at.analysis.index.references(occ.kind, occ.name):
        if o.name != occ.name:
            continue  # a glob covering the renamed tool
        loc = ls.location(at.analysis, o.span)
        changes.setdefault(loc.uri, []).append(lsp.TextEdit(range=loc.range, new_text=text))
    return lsp.WorkspaceEdit(changes=changes)
