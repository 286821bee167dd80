"""Quick fixes: the "did you mean `X`?" hints of the checker's diagnostics, as edits."""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from agp.lsp.context import AgpServer

DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`\?")


def code_action(ls: AgpServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    out = []
    for diag in params.context.diagnostics:
        hint = (diag.data or {}).get("hint") if isinstance(diag.data, dict) else None
        m = DID_YOU_MEAN.search(hint or "")
        if m is None or diag.source != "agp":
            continue
        fix = m.group(1)
        edit = lsp.TextEdit(range=diag.range, new_text=fix)
        out.append(lsp.CodeAction(
            title=f"Change to `{fix}`", kind=lsp.CodeActionKind.QuickFix, diagnostics=[diag],
            is_preferred=True,
            edit=lsp.WorkspaceEdit(changes={params.text_document.uri: [edit]})))
    return out
