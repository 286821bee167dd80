"""Rename a data class, intent, agent, task, tool or rule in every file of the policy set.

A tool is renamed where it is named exactly; globs that cover it (`crm.*`) stay as they are.
Names declared by the standard library cannot be renamed from a policy set.
"""

from __future__ import annotations

import re

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams

from agp.lsp.context import AgpServer
from agp.syntax.parser import RESERVED

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DOTTED = re.compile(r"[A-Za-z_*][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\*))*")


def _target(ls: AgpServer, uri: str, position: lsp.Position):
    at = ls.at(uri, position)
    occ = at and at.analysis.index.at(at.file.source, at.offset)
    if not occ:
        return None, None
    decls = at.analysis.index.targets(occ)
    if occ.kind == "tool" and not occ.declaration and not any(d.name == occ.name for d in decls):
        return at, None  # a glob that only covers tools
    if not decls or any(at.analysis.uri_of(d.span.source) not in at.analysis.files for d in decls):
        raise JsonRpcInvalidParams(f"`{occ.name}` is declared in the standard library")
    return at, occ


def prepare_rename(ls: AgpServer, params: lsp.PrepareRenameParams):
    at, occ = _target(ls, params.text_document.uri, params.position)
    if occ is None:
        return None
    return lsp.PrepareRenamePlaceholder(range=ls.range(occ.span), placeholder=occ.name)


def _spelling(kind: str, new: str) -> str:
    if kind != "tool":
        if not NAME.fullmatch(new) or new in RESERVED:
            raise JsonRpcInvalidParams(f"`{new}` is not a valid name (a reserved word or not an "
                                       "identifier)")
        return new
    segments = new.split(".")
    if DOTTED.fullmatch(new) and not any(s in RESERVED for s in segments):
        return new
    return '"' + new.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rename(ls: AgpServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
    at, occ = _target(ls, params.text_document.uri, params.position)
    if occ is None:
        return None
    text = _spelling(occ.kind, params.new_name)
    changes: dict[str, list[lsp.TextEdit]] = {}
    for o in at.analysis.index.references(occ.kind, occ.name):
        if o.name != occ.name:
            continue  # a glob covering the renamed tool
        loc = ls.location(at.analysis, o.span)
        changes.setdefault(loc.uri, []).append(lsp.TextEdit(range=loc.range, new_text=text))
    return lsp.WorkspaceEdit(changes=changes)
