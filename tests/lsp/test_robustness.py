"""What a real editor throws at the server: a huge garbage file, a malformed request, a refused
rename. The server keeps answering about the other files, answers every request, and writes no
traceback."""

import asyncio

import pytest
from lsprotocol import types as lsp
from support import RawServer, open_doc, opened, position_of, until

from agp.lsp.diagnostics import MAX_PER_FILE

pytestmark = pytest.mark.asyncio

# Thousands of broken rules: every line is a syntax error. Parsing it takes seconds (about 8 s
# for 1 MB), far longer than answering anything about another file.
GARBAGE = "permit p on a.b when\n" * 15_000


async def test_a_huge_garbage_file_does_not_hold_up_the_other_files(client, workspace, tmp_path):
    support = workspace / "support.agp"
    text = support.read_text(encoding="utf-8")
    await opened(client, support)
    garbage = open_doc(client, workspace / "garbage.agp", GARBAGE)  # in the same set
    # An editor asks a burst of questions about a file it has just opened; they wait for its
    # parse, without taking the place of the questions about other files.
    doc = lsp.TextDocumentIdentifier(uri=garbage)
    burst = [asyncio.ensure_future(ask) for ask in (
        client.text_document_code_lens_async(lsp.CodeLensParams(doc)),
        client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc)),
        *(client.text_document_definition_async(lsp.DefinitionParams(
            doc, lsp.Position(line=n, character=12))) for n in range(4)))]

    # A request about another file of the same set is answered while the garbage is parsed,
    # from what is already known: before the garbage file's diagnostics exist.
    h = await client.text_document_hover_async(lsp.HoverParams(
        text_document=lsp.TextDocumentIdentifier(uri=support.as_uri()),
        position=position_of(text, "support_bot, billing")))
    assert "The customer-support bot" in h.contents.value
    assert garbage not in client.diagnostics
    assert not any(ask.done() for ask in burst)  # it did not wait behind them
    # Another set is checked and published meanwhile.
    loose = tmp_path / "elsewhere.agp"
    loose_uri = open_doc(client, loose, "forbid f when nope\n")
    await until(client, lambda: loose_uri in client.diagnostics)
    assert [d.code for d in client.diagnostics[loose_uri]] == ["unknown-name"]
    assert garbage not in client.diagnostics

    # The garbage file's own diagnostics come in the end, bounded: the first MAX_PER_FILE
    # problems and a note that says how many more `agp check` would list.
    diags = await until(client, lambda: client.diagnostics.get(garbage), timeout=120)
    assert len(diags) == MAX_PER_FILE + 1
    assert diags[0].code == "syntax" and diags[0].range.start.line == 0
    note = diags[-1]
    assert note.severity == lsp.DiagnosticSeverity.Information
    assert note.message == (f"{15_000 - MAX_PER_FILE} more problems in this file are not shown; "
                            "`agp check` lists them all")
    assert note.range.start.line == MAX_PER_FILE
    assert not client.diagnostics[support.as_uri()]
    lenses, *_ = await asyncio.wait_for(asyncio.gather(*burst), 120)
    assert lenses[0].command.title == "▶ run agp test"  # the burst is answered too, in the end


async def test_a_malformed_request_is_answered_with_an_error(workspace):
    server = await RawServer.start(workspace)
    uri = server.open(workspace / "support.agp",
                      (workspace / "support.agp").read_text(encoding="utf-8"))
    # A completion context without `triggerKind` (it is required): InvalidParams, naming it.
    answer = await server.request("textDocument/completion", {
        "textDocument": {"uri": uri}, "position": {"line": 0, "character": 0}, "context": {}})
    assert answer["error"]["code"] == -32602  # InvalidParams
    assert "triggerKind" in answer["error"]["message"]
    # A position that is not a position.
    answer = await server.request("textDocument/hover", {
        "textDocument": {"uri": uri}, "position": {"line": "one"}})
    assert answer["error"]["code"] == -32602
    # The server is still there and well.
    answer = await server.request("textDocument/hover", {
        "textDocument": {"uri": uri}, "position": {"line": 9, "character": 8}})
    assert "support-bot" in answer["result"]["contents"]["value"]
    stderr = await server.close()
    assert "Traceback" not in stderr, stderr
    assert all(line.startswith("agp lsp: ") for line in stderr.splitlines()), stderr


async def test_a_refused_rename_writes_no_traceback(workspace):
    server = await RawServer.start(workspace)
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8")
    uri = server.open(path, text)
    at = position_of(text, "pii > internal")
    for new_name in ("public", "when"):
        answer = await server.request("textDocument/rename", {
            "textDocument": {"uri": uri}, "newName": new_name,
            "position": {"line": at.line, "character": at.character}})
        assert answer["error"]["code"] == lsp.LSPErrorCodes.RequestFailed
    assert "already declared as a data class" in (await server.request("textDocument/rename", {
        "textDocument": {"uri": uri}, "newName": "public",
        "position": {"line": at.line, "character": at.character}}))["error"]["message"]
    stderr = await server.close()
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) <= 3 and all(line.startswith("agp lsp: ") for line in lines), stderr
