"""Completion and hover read the current text against the last finished check (agp.lsp.current),
in process: the edit found between the two texts, the cursor lexed from a nearby item start, the
names declared since the check, and names whose place the edit moved."""

import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import EXAMPLES

from agp.lsp import cursor
from agp.lsp.completion import complete_at
from agp.lsp.current import current, diff, inside_a_comment
from agp.lsp.hover import hover_at
from agp.lsp.positions import line_index
from agp.lsp.project import Project, path_to_uri

SUPPORT = (EXAMPLES / "customer-support" / "support.agp").read_text(encoding="utf-8")


def _checked(workspace, text):
    """The analysis of support.agp with `text`, as the diagnostics leave it."""
    uri = path_to_uri(workspace / "support.agp")
    analysis = Project([workspace]).analyze(uri, {uri: text})
    return analysis, analysis.file(uri)


def _now(workspace, checked_text, text):
    """The document with `text`, read against the check of `checked_text` (not of `text`)."""
    analysis, file = _checked(workspace, checked_text)
    return current(analysis, file, text, line_index(text))


@pytest.fixture(scope="module")
def checked_support(tmp_path_factory):
    """The check of the customer-support set, once for the module (hypothesis reuses it)."""
    root = tmp_path_factory.mktemp("current") / "policies"
    shutil.copytree(EXAMPLES / "customer-support", root)
    return _checked(root, SUPPORT)


@given(st.text("ab\n", max_size=30), st.text("ab\n", max_size=30))
def test_the_edit_is_the_one_stretch_that_differs(old, new):
    edit = diff(old, new)
    assert new == old[: edit.start] + new[edit.start : edit.new_end] + old[edit.old_end :]
    # The common prefix and suffix are as long as they can be.
    assert edit.start == edit.old_end or edit.start == edit.new_end or \
        old[edit.start] != new[edit.start]
    assert edit.old_end == edit.start or edit.new_end == edit.start or \
        old[edit.old_end - 1] != new[edit.new_end - 1]
    assert edit.none == (old == new)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(SUPPORT)), st.integers(0, len(SUPPORT)))
def test_a_cursor_lexed_from_a_nearby_item_reads_as_from_the_whole_file(checked_support,
                                                                        edit_at, offset):
    # An edit anywhere (one word typed), then a cursor anywhere: lexing from `item_start` gives
    # the same item, word and dotted name as lexing the whole current text.
    text = SUPPORT[:edit_at] + " zz" + SUPPORT[edit_at:]
    analysis, file = checked_support
    cur = current(analysis, file, text, line_index(text))
    offset = min(offset, len(text))
    start = cur.item_start(offset)
    assert start <= offset
    near, whole = cursor.at(text, offset, start), cursor.at(text, offset)
    assert [t.value for t in near.item] == [t.value for t in whole.item]
    assert [t.type for t in near.item] == [t.type for t in whole.item]
    assert (near.prefix, near.prefix_start, near.name_start) == (
        whole.prefix, whole.prefix_start, whole.name_start)


def _labels(answer):
    return {item.label for item in answer.items}


def test_completion_offers_what_the_same_edit_declared(workspace):
    # The task, agent and tool are typed in the edit, and the check of that text has not
    # finished: they are offered all the same, from the changed items parsed alone.
    typed = ('task refunds {\n  params { order: string }\n  tools crm.*\n}\n'
             'agent helper "spiffe://acme.com/agents/helper"\n'
             'tool shop.order { args { order: string, total: number } }\n')
    text = SUPPORT + typed + "permit r on crm.lookup in "
    cur = _now(workspace, SUPPORT, text)
    assert {"support_ticket", "refunds"} <= _labels(complete_at(cur, len(text)))
    text = SUPPORT + typed + "permit r on crm.lookup by "
    cur = _now(workspace, SUPPORT, text)
    assert {"support_bot", "billing", "helper"} <= _labels(complete_at(cur, len(text)))
    text = SUPPORT + typed + "permit r on shop."
    assert _labels(complete_at(_now(workspace, SUPPORT, text), len(text))) == {"shop.order"}
    text = SUPPORT + typed + "permit r on shop.order when args."
    assert {"order", "total"} == _labels(complete_at(_now(workspace, SUPPORT, text), len(text)))
    text = SUPPORT + typed + "forbid r in refunds when task.params."
    assert {"order"} == _labels(complete_at(_now(workspace, SUPPORT, text), len(text)))


def test_completion_inside_an_edit_in_the_middle_of_the_file(workspace):
    at = SUPPORT.index("defaults {")
    text = SUPPORT[:at] + "agent extra \"spiffe://x/extra\"\npermit r on crm.lookup by " + \
        "\n\n" + SUPPORT[at:]
    offset = text.index("by \n") + 3
    cur = _now(workspace, SUPPORT, text)
    assert {"support_bot", "billing", "extra"} <= _labels(complete_at(cur, offset))
    assert "crm.lookup" not in _labels(complete_at(cur, offset))


def test_hover_finds_a_name_the_edit_moved(workspace):
    # Lines inserted above: a use of `support_bot` below them is where the check saw it, moved;
    # the hover's range is in the current text.
    text = "# a new comment\n# and another\n" + SUPPORT
    cur = _now(workspace, SUPPORT, text)
    offset = text.index("support_bot, billing")
    h = hover_at(cur, offset)
    assert "The customer-support bot" in h.contents.value
    line = text.count("\n", 0, offset)
    assert (h.range.start.line, h.range.end.line) == (line, line)
    assert h.range.end.character - h.range.start.character == len("support_bot")


def test_hover_on_a_name_the_edit_changed_is_not_the_old_name(workspace):
    # `support_bot` typed on into `support_botx`: no longer the agent the check saw.
    at = SUPPORT.index("support_bot, billing") + len("support_bot")
    text = SUPPORT[:at] + "x" + SUPPORT[at:]
    cur = _now(workspace, SUPPORT, text)
    assert hover_at(cur, at) is None
    # A field and a keyword in the changed item are still explained from the current text.
    assert "args.amount: number" in hover_at(cur, text.index("amount <= 100") + 2).contents.value


def test_without_an_edit_the_check_is_read_as_it_is(workspace):
    cur = _now(workspace, SUPPORT, SUPPORT)
    assert cur.edit.none and cur.names is cur.analysis.occurrences
    h = hover_at(cur, SUPPORT.index("pii > internal"))
    assert "below: `restricted`" in h.contents.value


# ---- an edit inside a comment is not checked again (diagnostics.unchanged) -------------------

# The example with two errors, so that there are diagnostics to keep.
BROKEN = SUPPORT.replace("by support_bot, billing", "by support_bot, biling").replace(
    "data    <= pii", "data    <= pi")


def _seen(text):
    """The diagnostics of a text as the editor sees them: code, message, lines and columns."""
    from agp.loader import check_sources
    from agp.source import Source

    lines = line_index(text)
    _, found = check_sources([Source("support.agp", text)])
    return sorted((d.code, d.message, str(lines.range(d.span.start, d.span.end)),
                   [r.message for r in d.related]) for d in found)


@pytest.fixture(scope="module")
def checked_broken(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken") / "policies"
    shutil.copytree(EXAMPLES / "customer-support", root)
    return _checked(root, BROKEN)[1]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_an_edit_found_inside_a_comment_changes_no_diagnostic(checked_broken, data):
    comment = data.draw(st.sampled_from(checked_broken.comments))
    start = data.draw(st.integers(comment.span.start, comment.span.end))
    end = data.draw(st.integers(start, min(comment.span.end + 3, len(BROKEN))))
    typed = data.draw(st.text('#"ab \n\r{', max_size=4))
    text = BROKEN[:start] + typed + BROKEN[end:]
    if inside_a_comment(checked_broken, text):
        assert _seen(text) == _seen(BROKEN)


def test_what_is_not_inside_a_comment(checked_broken):
    text = BROKEN
    plain = text.index("# glob: a family")
    assert inside_a_comment(checked_broken, text)
    assert inside_a_comment(checked_broken, text[: plain + 3] + "XYZ" + text[plain + 3 :])
    assert inside_a_comment(checked_broken, text[: plain + 2] + text[plain + 7 :])
    assert not inside_a_comment(checked_broken, text[: plain + 1] + "#" + text[plain + 1 :])  # `##`
    assert not inside_a_comment(checked_broken, text[: plain + 3] + "\n" + text[plain + 3 :])
    doc = text.index("## The customer-support bot") + 5
    assert not inside_a_comment(checked_broken, text[:doc] + "x" + text[doc:])  # a doc comment
    code = text.index("agent billing") + 2
    assert not inside_a_comment(checked_broken, text[:code] + "x" + text[code:])
    # Two comments edited at once: the stretch between them (code) changed as far as diff knows.
    other = text.index("# hard cap")
    assert not inside_a_comment(checked_broken, text[: plain + 3] + "x" + text[plain + 3 : other + 3]
                                + "y" + text[other + 3 :])


def test_a_check_is_skipped_only_for_edits_inside_comments_of_open_files(workspace):
    from types import SimpleNamespace

    from agp.lsp.diagnostics import unchanged

    uri = path_to_uri(workspace / "support.agp")
    analysis = Project([workspace]).analyze(uri, {uri: BROKEN})
    published = {uri: ["the diagnostics published"]}
    ls = SimpleNamespace(last_check={"set": (analysis, published)}, must_check=set())
    at = BROKEN.index("# glob: a family") + 3
    commented = BROKEN[:at] + "more words " + BROKEN[at:]
    assert unchanged(ls, "set", {uri: commented}) == published
    assert unchanged(ls, "set", {uri: BROKEN}) == published
    assert unchanged(ls, "set", {uri: BROKEN.replace("biling", "billing")}) is None
    assert unchanged(ls, "set", {}) is None  # the file is not open: the disk may have changed
    assert unchanged(ls, "other set", {uri: commented}) is None  # never checked
    ls.must_check.add("set")  # a file opened, closed, saved or changed on disk since
    assert unchanged(ls, "set", {uri: commented}) is None
