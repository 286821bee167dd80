"""Hover, completion, navigation, rename, symbols, folding, semantic tokens, code actions and
code lenses, each over stdio against the customer-support policy set."""

import re

import pytest
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from support import change_doc, open_doc, opened, position_of, until

from agp.loader import check_sources
from agp.lsp.semantic_tokens import TYPES
from agp.source import Source

pytestmark = pytest.mark.asyncio


def _doc(uri):
    return lsp.TextDocumentIdentifier(uri=uri)


async def _hover(client, uri, text, needle, delta=0):
    return await client.text_document_hover_async(lsp.HoverParams(
        text_document=_doc(uri), position=position_of(text, needle, delta)))


async def test_hover(client, workspace):
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8")
    uri = await opened(client, path)
    h = await _hover(client, uri, text, "support_bot, billing")  # a use, not the declaration
    assert "The customer-support bot, identified by its SPIFFE ID." in h.contents.value
    assert 'agent support_bot "spiffe://acme.com/agents/support-bot"' in h.contents.value
    h = await _hover(client, uri, text, "amount <= 100")
    assert "args.amount: number" in h.contents.value
    h = await _hover(client, uri, text, "depth > 3")
    assert "chain.depth: number" in h.contents.value
    h = await _hover(client, uri, text, "pii > internal")
    assert "dataclass pii > internal" in h.contents.value and "below: `restricted`" in h.contents.value
    h = await _hover(client, uri, text, "unless target")
    assert "`unless EXPR`" in h.contents.value
    h = await _hover(client, uri, text, "egress\n", 0)  # declared in std.intents, with its doc
    assert "Sends data outside the agent's trust boundary" in h.contents.value


async def test_hover_on_session_fields(client, workspace):
    text = ("forbid r on crm.lookup when count(h in task.history if h.tool == \"x\": "
            "h.age < 1h) > task.seen.x and agent.verified\n")
    uri = await opened(client, workspace / "session.agp", text)
    h = await _hover(client, uri, text, "age < 1h")
    assert "h.age: duration" in h.contents.value and "how long ago" in h.contents.value
    h = await _hover(client, uri, text, "tool ==")
    assert "h.tool: string" in h.contents.value
    h = await _hover(client, uri, text, "history if")
    assert "task.history: list of object" in h.contents.value
    h = await _hover(client, uri, text, "seen.x")
    assert "task.seen: data" in h.contents.value
    h = await _hover(client, uri, text, "verified\n")
    assert "agent.verified: bool" in h.contents.value and "JWT-SVID" in h.contents.value


async def test_hover_on_a_standard_function(client, workspace):
    text = 'forbid shouting on crm.lookup when upper(args.customer) == "X"\n'
    uri = await opened(client, workspace / "fn.agp", text)
    h = await _hover(client, uri, text, "upper")
    assert "upper(string) -> string" in h.contents.value
    assert "The string in upper case." in h.contents.value


async def _complete(client, uri, text):
    lines = text.split("\n")
    result = await client.text_document_completion_async(lsp.CompletionParams(
        text_document=_doc(uri), position=lsp.Position(line=len(lines) - 1,
                                                        character=len(lines[-1]))))
    return {i.label: i for i in result.items}


@pytest.mark.parametrize("tail, present, absent", [
    ("permit r on payments.refund when args.", {"amount", "customer", "note"}, {"depth"}),
    ("permit r on payments.refund\n  when args.amount > 1 and args.cu", {"customer"}, {"when"}),
    ("permit r on ", {"crm.lookup", "payments.refund", "http.*", "intent"}, {"support_ticket"}),
    ("permit r on intent ", {"read", "egress", "payment"}, {"pii", "crm.lookup"}),
    ("permit r on crm.lookup in ", {"support_ticket"}, {"billing"}),
    ("permit r on crm.lookup by ", {"support_bot", "billing"}, {"support_ticket"}),
    ("forbid r when data <= ", {"pii", "restricted", "public"}, {"read", "when"}),
    ("forbid r in support_ticket when task.params.", {"customer"}, {"amount"}),
    ("forbid r when task.", {"kind", "params", "age", "seen", "history"}, set()),
    ("forbid r when chain.", {"depth", "hops", "origin"}, set()),
    ("forbid r when agent.", {"id", "attrs", "verified"}, set()),
    # issue 12: an item of `task.history`, through the quantifier's variable
    ("forbid r when count(h in task.history if h.",
     {"tool", "intent", "data", "args", "decision", "at", "age"}, {"kind", "depth"}),
    ("forbid r when any(h in task.history: h.data >= pii) and all(x in args.l: x.", set(),
     {"tool", "age"}),
    ("forbid r when sum(h in task.history: h.args.", set(), {"tool", "age", "amount"}),
    ("forbid r when ", {"args", "chain", "not", "any", "lower", "host_within", "pii"}, {"permit"}),
    ("permit r on crm.lookup ", {"in", "by", "when", "unless", "ttl", "because", "permit", "tool"},
     {"and"}),
    ("task t {\n  tools ", {"crm.lookup", "http.*"}, set()),
])
async def test_completion_in_an_unfinished_document(client, workspace, tail, present, absent):
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8") + "\n" + tail
    uri = await opened(client, path, text)
    items = await _complete(client, uri, text)
    assert present <= items.keys(), sorted(items)
    assert not (absent & items.keys())


@pytest.mark.parametrize("tail, typed, present", [
    ("permit u on crm.", "crm.", {"crm.lookup"}),
    ("permit u on payments.re", "payments.re", {"payments.refund"}),
    ("permit u on PAYMENTS.", "PAYMENTS.", {"payments.refund"}),
    ("permit u on http.", "http.", {"http.*"}),
    ("permit u on crm.lookup, payments.", "payments.", {"payments.refund"}),
    ("permit u on intent read, crm.", "crm.", {"crm.lookup"}),
    ("task t {\n  tools payments.r", "payments.r", {"payments.refund"}),
    ("permit u on ", "", {"crm.lookup", "payments.refund", "http.*"}),
])
async def test_completion_of_a_dotted_tool_name(client, workspace, tail, typed, present):
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8") + "\n" + tail
    uri = await opened(client, path, text)
    lines = text.split("\n")
    cursor = lsp.Position(line=len(lines) - 1, character=len(lines[-1]))
    result = await client.text_document_completion_async(lsp.CompletionParams(
        text_document=_doc(uri), position=cursor,
        context=lsp.CompletionContext(trigger_kind=lsp.CompletionTriggerKind.TriggerCharacter,
                                      trigger_character=".") if tail.endswith(".") else None))
    tools = {i.label: i for i in result.items if i.kind == lsp.CompletionItemKind.Function}
    assert set(tools) == present  # only the declared tools that start with what is typed
    assert result.is_incomplete == bool(typed)
    for item in tools.values():
        # The edit replaces the whole dotted name typed so far, not just its last segment.
        edit = item.text_edit
        assert edit.range.end == cursor
        assert edit.range.start == lsp.Position(line=cursor.line,
                                                character=len(lines[-1]) - len(typed))
        done = lines[-1][: edit.range.start.character] + edit.new_text
        assert done == lines[-1][: len(lines[-1]) - len(typed)] + item.label


async def test_completion_items_carry_docs(client, workspace):
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8") + "\nforbid r when "
    uri = await opened(client, path, text)
    items = await _complete(client, uri, text)
    assert items["ip_in_cidr"].detail == "ip_in_cidr(string, string) -> bool"
    assert "CIDR" in items["ip_in_cidr"].documentation.value
    assert items["pii"].kind == lsp.CompletionItemKind.Class


async def test_definition_and_references_across_files(client, workspace):
    support = workspace / "support.agp"
    text = support.read_text(encoding="utf-8")
    uri = await opened(client, support)
    extra_text = "forbid no_billing_refunds on payments.refund by billing\n"
    extra = workspace / "extra.agp"
    extra.write_text(extra_text, encoding="utf-8")
    extra_uri = await opened(client, extra)
    [loc] = await client.text_document_definition_async(lsp.DefinitionParams(
        text_document=_doc(extra_uri), position=position_of(extra_text, "by billing", 3)))
    assert loc.uri == uri
    assert loc.range.start == position_of(text, 'billing "spiffe')
    refs = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=_doc(uri), position=position_of(text, 'billing "spiffe'),
        context=lsp.ReferenceContext(include_declaration=True)))
    lines = text.splitlines()
    where = sorted((r.uri == uri, r.range.start.line) for r in refs)
    assert (False, 0) in where  # the use in extra.agp
    in_support = [line for own, line in where if own]
    assert [lines[i].split()[0] for i in in_support] == ["agent", "delegate", "permit"]
    # A tool glob leads to every tool it covers.
    defs = await client.text_document_definition_async(lsp.DefinitionParams(
        text_document=_doc(uri), position=position_of(text, "crm.*")))
    assert [d.range.start.line for d in defs] == [text[: text.index("tool crm.lookup")].count("\n")]


async def test_rename_across_files(client, workspace):
    support = workspace / "support.agp"
    text = support.read_text(encoding="utf-8")
    uri = await opened(client, support)
    extra_text = "forbid night on payments.refund in support_ticket when task is support_ticket\n"
    extra_uri = await opened(client, workspace / "extra.agp", extra_text)
    edit = await client.text_document_rename_async(lsp.RenameParams(
        text_document=_doc(extra_uri), position=position_of(extra_text, "support_ticket"),
        new_name="ticket"))
    assert len(edit.changes[extra_uri]) == 2
    assert len(edit.changes[uri]) == 3  # the declaration, `in` of two rules
    for e in edit.changes[uri]:
        line = text.splitlines()[e.range.start.line]
        assert line[e.range.start.character : e.range.end.character] == "support_ticket"
        assert e.new_text == "ticket"
    tool = await client.text_document_rename_async(lsp.RenameParams(
        text_document=_doc(uri), position=position_of(text, "payments.refund {"),
        new_name="payments.give_back"))
    assert len(tool.changes[uri]) == 4  # declaration, task tools, two rules; `crm.*` untouched
    assert len(tool.changes[extra_uri]) == 1
    with pytest.raises(Exception, match="standard library"):
        await client.text_document_rename_async(lsp.RenameParams(
            text_document=_doc(uri), position=position_of(text, "egress\n"), new_name="leak"))
    with pytest.raises(Exception, match="not a valid name"):
        await client.text_document_rename_async(lsp.RenameParams(
            text_document=_doc(uri), position=position_of(text, "pii\n"), new_name="when"))


@pytest.mark.parametrize("needle, new_name, message", [
    # The case: a data class renamed to another one's name.
    ("pii > internal", "public", "`public` is already declared as a data class"),
    # Data classes, intents, agents and tasks share one namespace.
    ("billing \"spiffe", "support_bot", "`support_bot` is already declared as an agent"),
    ("billing \"spiffe", "pii", "`pii` is already declared as a data class"),
    ("support_ticket {", "egress", "`egress` is already declared as an intent"),  # std.intents
    ("crm.lookup {", "payments.refund", "a tool `payments.refund` is already declared"),
    ("refund_small on", "refund_large", "a rule `refund_large` is already declared"),
    ("billing \"spiffe", "chain", "`chain` is a condition name and cannot be declared"),
    ("billing \"spiffe", "lower", "`lower` is a standard function and cannot be declared"),
    ("billing \"spiffe", "permit", "not a valid name"),
    ("billing \"spiffe", "2fa", "not a valid name"),
    ("billing \"spiffe", "two words", "not a valid name"),
    ("billing \"spiffe", "", "not a valid name"),
])
async def test_rename_refuses_what_would_not_check(client, workspace, needle, new_name, message):
    support = workspace / "support.agp"
    text = support.read_text(encoding="utf-8")
    uri = await opened(client, support)
    with pytest.raises(JsonRpcException, match=re.escape(message)) as refused:
        await client.text_document_rename_async(lsp.RenameParams(
            text_document=_doc(uri), position=position_of(text, needle), new_name=new_name))
    assert refused.value.code == lsp.LSPErrorCodes.RequestFailed


async def test_rename_to_a_free_name_checks_clean(client, workspace):
    support = workspace / "support.agp"
    text = support.read_text(encoding="utf-8")
    uri = await opened(client, support)
    edit = await client.text_document_rename_async(lsp.RenameParams(
        text_document=_doc(uri), position=position_of(text, "pii > internal"),
        new_name="personal_data"))
    renamed = _apply(text, edit.changes[uri])
    assert "personal_data > internal" in renamed and " pii" not in renamed
    assert check_sources([Source(str(support), renamed)])[1] == []


def _apply(text: str, edits: list[lsp.TextEdit]) -> str:
    lines = text.split("\n")
    starts = [sum(len(x) + 1 for x in lines[:i]) for i in range(len(lines))]
    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character),
                    reverse=True):
        a = starts[e.range.start.line] + e.range.start.character
        b = starts[e.range.end.line] + e.range.end.character
        text = text[:a] + e.new_text + text[b:]
    return text


async def test_document_and_workspace_symbols(client, workspace):
    uri = await opened(client, workspace / "support.agp")
    symbols = await client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(text_document=_doc(uri)))
    by_name = {s.name: s for s in symbols}
    assert {"pii", "support_bot", "crm.lookup", "support_ticket", "refund_small", "lookups",
            "defaults", "std.intents"} <= by_name.keys()
    assert by_name["refund_small"].kind == lsp.SymbolKind.Event
    assert [c.name for c in by_name["payments.refund"].children] == ["amount", "customer", "note"]
    found = await client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query="refund"))
    assert {s.name for s in found} == {"payments.refund", "refund_small", "refund_large"}


async def test_symbols_follow_an_edit_before_and_after_its_check(client, workspace):
    # A request answers from the set's last check only while nothing changed since: asked right
    # after an edit (its check pending or under way), and after a second edit that brings the
    # first text back (the last check read another), it reads the current text.
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8")
    uri = await opened(client, path)

    async def names() -> set[str]:
        found = await client.text_document_document_symbol_async(
            lsp.DocumentSymbolParams(text_document=_doc(uri)))
        return {s.name for s in found}

    assert "added.tool" not in await names()
    # The added rule names an unknown agent: the diagnostics tell when each text is checked.
    added = text + "\ntool added.tool { }\npermit added_rule on added.tool by nobody\n"
    change_doc(client, uri, added, 2)
    assert "added.tool" in await names()
    await until(client, lambda: client.diagnostics[uri])
    assert "added.tool" in await names()  # from the check of version 2
    change_doc(client, uri, text, 3)
    assert "added.tool" not in await names()
    await until(client, lambda: not client.diagnostics[uri])
    assert "added.tool" not in await names()


async def test_folding_ranges(client, workspace):
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8")
    uri = await opened(client, path)
    ranges = await client.text_document_folding_range_async(
        lsp.FoldingRangeParams(text_document=_doc(uri)))
    task_line = text[: text.index("task support_ticket")].count("\n")
    assert any(r.start_line == task_line and r.end_line == task_line + 7 for r in ranges)
    assert all(r.end_line > r.start_line for r in ranges)


async def test_semantic_tokens(client, workspace):
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8")
    uri = await opened(client, path)
    tokens = await client.text_document_semantic_tokens_full_async(
        lsp.SemanticTokensParams(text_document=_doc(uri)))
    decoded, line, col = {}, 0, 0
    data = tokens.data
    for i in range(0, len(data), 5):
        line = line + data[i]
        col = data[i + 1] if data[i] else col + data[i + 1]
        word = text.splitlines()[line][col : col + data[i + 2]]
        decoded.setdefault(word, TYPES[data[i + 3]])
    assert decoded["permit"] == "keyword"
    assert decoded["pii"] == "type"
    assert decoded["support_bot"] == "interface"
    assert decoded["payments.refund"] == "function"
    assert decoded["refund_small"] == "event"
    assert decoded['"refunds above 100 need a human"'] == "string"
    assert decoded["5m"] == "number"


async def test_quick_fix_for_did_you_mean(client, workspace):
    path = workspace / "support.agp"
    text = path.read_text(encoding="utf-8").replace("data    <= pii", "data    <= pi")
    uri = open_doc(client, path, text)
    [diag] = await until(client, lambda: client.diagnostics.get(uri))
    actions = await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=_doc(uri), range=diag.range,
        context=lsp.CodeActionContext(diagnostics=[diag])))
    [action] = actions
    assert action.kind == lsp.CodeActionKind.QuickFix
    [edit] = action.edit.changes[uri]
    assert edit.new_text == "pii" and edit.range == diag.range


async def test_formatting_uses_agp_fmt(client, workspace):
    from agp.syntax.format import format_text

    messy = "permit   lookups_again on crm.lookup   in support_ticket\n      unless target.external\n"
    uri = await opened(client, workspace / "messy.agp", messy)
    options = lsp.FormattingOptions(tab_size=2, insert_spaces=True)
    [edit] = await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        text_document=_doc(uri), options=options))
    assert edit.new_text == format_text(messy) != messy
    assert edit.range.start == lsp.Position(line=0, character=0)
    broken = "permit half on\n"
    uri2 = await opened(client, workspace / "broken.agp", broken)
    assert not await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        text_document=_doc(uri2), options=options))
