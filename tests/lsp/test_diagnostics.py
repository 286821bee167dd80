"""Diagnostics as you type: the same codes, messages and ranges as `agp check`, set-wide."""

import asyncio

import pytest
from lsprotocol import types as lsp
from support import change_doc, open_doc, opened, until

from agp.limits import MAX_POLICY_FILE_BYTES
from agp.loader import check_paths

pytestmark = pytest.mark.asyncio

BROKEN = """\
agent ops "spiffe://acme.com/agents/ops"
permit ops_lookup on crm.lookup by opz
  when args.customr == "c-1"
forbid half_written on
permit after_the_error on crm.lookup when chain.depth > "deep"
"""


def _lsp_view(client, uri):
    return sorted((d.code, d.message, d.range.start.line, d.range.start.character,
                   d.range.end.line, d.range.end.character) for d in client.diagnostics[uri])


def _check_view(diagnostics, path):
    out = []
    for d in diagnostics:
        if d.span.source.name != str(path):
            continue
        (l1, c1), (l2, c2) = d.span.source.position(d.span.start), d.span.end_position
        out.append((d.code, d.message, l1 - 1, c1 - 1, l2 - 1, c2 - 1))
    return sorted(out)


async def test_same_diagnostics_as_agp_check(client, workspace):
    path = workspace / "extra.agp"
    path.write_text(BROKEN, encoding="utf-8")
    clean = (workspace / "support.agp").as_uri()
    uri = open_doc(client, path)
    # One check publishes every file of the set, one notification each: wait for both files
    # read below (waiting for one and reading the other failed about one run in five).
    await until(client, lambda: uri in client.diagnostics and clean in client.diagnostics)
    _, expected = check_paths([workspace])
    want = _check_view(expected, path)
    assert {c for c, *_ in want} >= {"unknown-agent", "unknown-field", "syntax", "type-mismatch"}
    assert _lsp_view(client, uri) == want
    # The clean file of the set is published too, with nothing in it.
    assert len(client.diagnostics[clean]) == 0


async def test_diagnostics_appear_and_clear_as_you_type(client, workspace):
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8")
    uri = await opened(client, path)
    assert len(client.diagnostics[uri]) == 0

    typo = text.replace("by support_bot, billing", "by support_bot, biling")
    change_doc(client, uri, typo, 2)
    diags = await until(client, lambda: client.diagnostics[uri])
    assert [(d.code, d.message) for d in diags] == [("unknown-agent", "unknown agent `biling`")]
    line = typo.splitlines()[diags[0].range.start.line]
    r = diags[0].range
    assert line[r.start.character : r.end.character] == "biling"
    assert diags[0].severity == lsp.DiagnosticSeverity.Error
    assert "did you mean `billing`?" in diags[0].data["hint"]

    change_doc(client, uri, text, 3)
    assert await until(client, lambda: len(client.diagnostics[uri]) == 0)


async def test_a_name_resolves_across_files_and_a_duplicate_is_reported_in_both(client, workspace):
    support = workspace / "support.agp"
    uri = await opened(client, support)
    other = workspace / "more.agp"
    other_uri = open_doc(client, other, 'permit more_lookups on crm.lookup by billing\n'
                                        'agent support_bot "spiffe://x/y"\n')
    await until(client, lambda: other_uri in client.diagnostics and client.diagnostics[uri])
    for u in (uri, other_uri):
        assert [d.code for d in client.diagnostics[u]] == ["duplicate"], u
        assert "support_bot" in client.diagnostics[u][0].message
    related = client.diagnostics[other_uri][0].related_information
    assert any(r.location.uri == uri for r in related)


async def test_ranges_count_utf16_units(client, workspace):
    path = workspace / "emoji.agp"
    text = 'forbid smiley when tool == "😋😋" and nope\n'
    uri = await opened(client, path, text)
    [d] = client.diagnostics[uri]
    assert d.code == "unknown-name"
    # Each emoji is one Python character but two UTF-16 code units.
    col = text.index("nope")
    assert d.range.start.character == col + 2
    assert d.range.end.character == col + 2 + len("nope")


async def test_closing_a_loose_file_clears_its_diagnostics(client, tmp_path):
    loose = tmp_path / "elsewhere" / "loose.agp"
    loose.parent.mkdir()
    uri = await opened(client, loose, "forbid f when nope\n")
    assert [d.code for d in client.diagnostics[uri]] == ["unknown-name"]
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri)))
    assert await until(client, lambda: len(client.diagnostics[uri]) == 0)


async def test_unreadable_files_get_the_diagnostics_of_agp_check(client, workspace):
    # Two files of the set that `agp check` cannot read: not UTF-8, and over the size limit.
    # The server reads them through the same loader, so it reports them as `agp check` does.
    latin1 = workspace / "latin1.agp"
    latin1.write_bytes("dataclass caf\u00e9\n".encode("latin-1"))
    huge = workspace / "huge.agp"
    huge.write_bytes(b"#" * (MAX_POLICY_FILE_BYTES + 1))
    await opened(client, workspace / "support.agp")
    bad = [latin1.as_uri(), huge.as_uri()]
    await until(client, lambda: all(uri in client.diagnostics for uri in bad))
    _, expected = check_paths([workspace])
    for path, code in ((latin1, "encoding"), (huge, "limit")):
        want = _check_view(expected, path)
        assert [c for c, *_ in want] == [code]
        assert _lsp_view(client, path.as_uri()) == want


async def test_an_edit_inside_a_comment_publishes_the_same_diagnostics_for_its_version(
        client, workspace):
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8").replace("by support_bot, billing",
                                                    "by support_bot, biling")
    uri = open_doc(client, path, text)
    before = _lsp_view_of(await until(client, lambda: client.diagnostics.get(uri)))
    at = text.index("# glob: a family") + 3
    commented = text[:at] + "many more words in this comment, " + text[at:]
    for version, new in ((2, commented), (3, commented.replace("biling", "billing"))):
        change_doc(client, uri, new, version)
        while True:
            params = await asyncio.wait_for(client.wait_for_notification(
                lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 30)
            if params.uri == uri and params.version == version:
                break
        if version == 2:  # the same problems, at the same lines and columns
            assert _lsp_view_of(params.diagnostics) == before
        else:  # an edit outside the comment is checked again
            assert not params.diagnostics


def _lsp_view_of(diagnostics):
    return sorted((d.code, d.message, d.range.start.line, d.range.start.character,
                   d.range.end.line, d.range.end.character) for d in diagnostics)
