"""The parser's fast path for lists of literals, its recovery from bad characters, and literals
at the edges of what it reads.

A list of literals only is lexed as one token and split by the parser (grammar/agp.lark,
LITERAL_LIST); any other list is lexed token by token. Both must read a list the same way.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedToken

import agp
from agp.frozen import maker
from agp.source import Source, Span
from agp.syntax import parse, parser
from agp.syntax.format import shape
from agp.syntax.parser import MAX_LEX_ERRORS, lark_parser, tokenize

space = st.sampled_from(["", " ", "  ", "\n", "\t", " \n  ", "\r\n"])
literal = st.one_of(
    st.integers(0, 10**30).map(str),
    st.tuples(st.integers(0, 999), st.integers(0, 999)).map(lambda t: f"{t[0]}.{t[1]}"),
    st.sampled_from(["5m", "1h30m", "2d", "1d2h3m4s", "0s", "true", "false", "007", "0.50"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\\n'),
            max_size=8).map(lambda s: f'"{s}"'),
    st.sampled_from([r'"a\"b"', r'"\\"', r'"\u00e9\n"', '"# not a comment"', '"[1, 2]"']),
)


@st.composite
def literal_lists(draw) -> str:
    items = draw(st.lists(literal, min_size=1, max_size=8))
    text = "[" + draw(space)
    for i, item in enumerate(items):
        if i:
            text += draw(space) + "," + draw(space)
        text += item
    return text + draw(space) + "]"


def as_read_token_by_token(listing: str) -> str:
    # A comment in a list keeps it from being one token; it shifts the offsets by two.
    return "[#\n" + listing[1:]


@settings(max_examples=300, deadline=None)
@given(literal_lists())
def test_a_list_of_literals_reads_as_the_same_list_token_by_token(listing):
    head = "forbid f when args.x in "
    fast = parse(Source("a", head + listing + "\n"))
    slow = parse(Source("b", head + as_read_token_by_token(listing) + "\n"))
    assert not fast.diagnostics and not slow.diagnostics
    assert shape(fast.items) == shape(slow.items)
    fast_items = fast.items[0].when.right.items
    slow_items = slow.items[0].when.right.items
    assert [(i.span.start + 2, i.span.end + 2) for i in fast_items] == \
        [(i.span.start, i.span.end) for i in slow_items]
    assert fast.items[0].when.right.span.text == listing


@settings(max_examples=200, deadline=None)
@given(literal_lists())
def test_tokenize_gives_the_tokens_of_a_list_of_literals(listing):
    fast, _ = tokenize(Source("a", listing), [])
    slow, _ = tokenize(Source("b", as_read_token_by_token(listing)), [])
    shift = [0] + [2] * (len(fast) - 1)  # all but the `[`
    assert [(t.type, str(t), t.start_pos + d, t.end_pos + d) for t, d in zip(fast, shift, strict=True)] == \
        [(t.type, str(t), t.start_pos, t.end_pos) for t in slow]


def test_a_list_with_names_or_expressions_is_parsed_as_before():
    (rule,) = parse(Source("a", 'forbid f when args.x in [pii, "a", -1, 2 + 3, lower("B")]\n')).items
    kinds = [type(i).__name__ for i in rule.when.right.items]
    assert kinds == ["NameRef", "Literal", "Unary", "Binary", "Call"]


def test_a_mistake_in_a_list_is_reported_where_it_is():
    diagnostics = parse(Source("a", "forbid f when args.x in [1, 10min, 'a', \"\\q\"]\n")).diagnostics
    assert [d.span.text for d in diagnostics] == ["10min", "'a'", '"\\q"']


# ---- bad characters: lexing resumes near each one, with the result of lexing again from the start


def relex_from_the_start(source: Source, diagnostics: list) -> list[Token] | None:
    """`parser._recovering_lex` as it was before issue 17, the slow reference: after each bad
    character, the whole changed text is lexed again, by lark's own lexer."""
    text = source.text
    for _ in range(MAX_LEX_ERRORS):
        try:
            return [t for t in lark_parser().lex(text, dont_ignore=True) if t.type != "WS"]
        except UnexpectedCharacters as exc:
            text = parser._blank_out(source, text, exc.pos_in_stream, diagnostics)
    return None


def relex_as_our_tokens(source: Source, diagnostics: list) -> list[parser.Tok] | None:
    tokens = relex_from_the_start(source, diagnostics)
    return None if tokens is None else [parser.Tok(t.type, str(t), t.start_pos, t.end_pos)
                                        for t in tokens]


def token_facts(tokens: list[Token] | None) -> list[tuple] | None:
    return None if tokens is None else [
        (t.type, str(t), t.start_pos, t.end_pos, t.line, t.column, t.end_line, t.end_column)
        for t in tokens]


def lexed_facts(source: Source, diagnostics: list) -> list[tuple] | None:
    """The facts of `parser._recovering_lex`'s tokens, as lark's tokens (lines and columns)."""
    tokens = parser._recovering_lex(source, diagnostics)
    return None if tokens is None else token_facts(parser.lark_tokens(source, tokens))


# Pieces that make bad characters (`@`, unterminated strings, ...) near what lexing reads past
# the end of a token: lists of literals, numbers and durations, strings, comments, whitespace.
piece = st.sampled_from([
    "[", "]", ",", " ", "\n", "\t", '"', "'", "1", "12", "1.5", "3.", "1h", "1d2h3", "30 minutes",
    "true", "false", "truex", "x", "args", ".", "# c", "@", "\u00a7", "$", "~", "`", "&", "|",
    "!", "=", "==", "<=", '"ab"', "'ab'", '"a', "[1, 2", '["a", ', "permit p when ",
    "forbid f on t when args.x in ", "{", "}", "(", ")", ":", "?",
    # names next to digits (the lexer tries names first: no other terminal starts like them)
    "_", "a1", "1a", "9_", "x_1", "1d_",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(piece, max_size=60).map("".join))
@example("@ " * 60)
@example('x\n  [1,\n 2, "a"]\n  @ y')  # lines and columns after a list over several lines  # more bad characters than MAX_LEX_ERRORS: no tokens at all
@example("[1, 2, @ 3]")  # once `@` is blanked, the list is one LITERAL_LIST token
@example("[1, 2, 'a]\n")
def test_lexing_resumes_with_the_tokens_and_errors_of_lexing_again(text):
    source = Source("a.agp", text)
    expected: list = []
    reference = relex_from_the_start(source, expected)
    diagnostics: list = []
    assert lexed_facts(source, diagnostics) == token_facts(reference)
    assert diagnostics == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(piece, max_size=60).map("".join))
def test_a_file_with_bad_characters_parses_with_the_diagnostics_of_lexing_again(text):
    source = Source("a.agp", text)
    fast = parse(source)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parser, "_recovering_lex", relex_as_our_tokens)
        slow = parse(source)
    assert fast.diagnostics == slow.diagnostics
    assert shape(fast.items) == shape(slow.items) and fast.comments == slow.comments


def test_each_bad_character_costs_a_few_tokens_not_a_new_lexing_of_the_file(monkeypatch):
    # Issue 16: every bad character made the whole file be lexed again (a 1 MB file with 50
    # of them took a minute). Now the tokens lexed in all are those of the file, plus a few
    # again for each bad character.
    lines = [f"permit p{i} on t.x when args.n > {i} and args.s in [\"a\", \"b\"]  # {i}"
             for i in range(400)]
    for i in range(0, 400, 20):
        lines[i] = lines[i].replace(" and ", " @ and ")
    lexed = []
    real = parser._scan

    def counting(text, start):
        tokens, bad = real(text, start)
        lexed.extend(tokens)
        return tokens, bad

    monkeypatch.setattr(parser, "_scan", counting)
    diagnostics: list = []
    tokens = parser._recovering_lex(Source("a.agp", "\n".join(lines)), diagnostics)
    assert len(diagnostics) == 20
    assert len(lexed) <= len(tokens) + 2 * len(diagnostics)


# ---- extreme literals: only PolicyError escapes, in every position ------------------------------


digits = st.one_of(st.integers(0, 10**20).map(str), st.integers(300, 5000).map(lambda n: "9" * n),
                   st.sampled_from(["0" * 5000 + "1", "1" + "0" * 308, "17976931348623157" + "0" * 292]))
numbers = st.one_of(digits, st.tuples(digits, digits).map(lambda t: f"{t[0]}.{t[1]}"))
durations = st.one_of(
    st.tuples(digits, st.sampled_from("dhms")).map("".join),
    st.sampled_from(["36500d", "36501d", "999999999d", "1000000000d", "36499d23h59m60s"]))
scalars = st.one_of(numbers, durations)
sums = st.one_of(scalars, st.tuples(scalars, st.sampled_from(["+", "-"]), scalars).map(" ".join),
                 scalars.map(lambda s: "-" + s))


@st.composite
def extreme_policies(draw) -> str:
    d = draw(durations)
    return (f"tool t.x {{ args {{ n: number, d: duration }} }}\n"
            f"task job {{ tools t.*  ttl {draw(durations)}  delegate {{ depth <= {draw(digits)} }} }}\n"
            f"defaults {{ ttl {draw(durations)}  max_ttl {draw(durations)} }}\n"
            f"permit p on t.x when args.n < {draw(sums)} or args.n in [1, {draw(numbers)}]\n"
            f"  unless task.age > {d} ttl {draw(durations)}\n"
            f"forbid f when {draw(sums)} == {draw(sums)}\n")


@settings(max_examples=150, deadline=None)
@given(extreme_policies())
def test_extreme_literals_load_or_raise_policy_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("p") / "p.agp"
    path.write_text(text)
    for compiled in (True, False):
        try:
            engine = agp.load(path, compiled=compiled)
        except agp.PolicyError as exc:
            assert {d.code for d in exc.diagnostics if d.is_error} <= {"out-of-range",
                                                                       "type-mismatch"}
            continue
        decision = engine.decide({
            "agent": {"id": "a"}, "tool": "t.x", "args": {"n": 1}, "now": "2026-01-01T00:00:00Z",
            "task": {"kind": "job", "id": "j", "started_at": "2026-01-01T00:00:00Z"}})
        assert decision.decision in ("allow", "deny", "ask")


# ---- the LALR driver: lark's own parser, with our AST built as it reduces ----------------------

REPO = Path(__file__).resolve().parent.parent
CORPUS = sorted([*REPO.glob("examples/**/*.agp"), *REPO.glob("stdlib/*.agp"),
                 *REPO.glob("tests/**/*.agp")])


def lark_reference(source: Source, chunk: list[parser.Tok]) -> tuple[Tree | None, int]:
    """lark's tree of an item and the index of the token it fails at (len for the end)."""
    interactive = lark_parser().parse_interactive()
    chunk = parser.lark_tokens(source, chunk)
    for i, tok in enumerate(chunk):
        try:
            interactive.feed_token(tok)
        except UnexpectedToken:
            return None, i
    try:
        return interactive.feed_eof(chunk[-1]), len(chunk)
    except UnexpectedToken:
        return None, len(chunk)


def tree_height(tree: Tree) -> int:
    return 1 + max((tree_height(c) for c in tree.children if isinstance(c, Tree)), default=0)


def lark_spans(tree: Tree) -> set[tuple[int, int]]:
    """Every (start, end) a node or token of lark's tree covers, and the parts of its lists of
    literals."""
    spans = {(tree.meta.start_pos, tree.meta.end_pos)}
    for c in tree.children:
        if isinstance(c, Tree):
            spans |= lark_spans(c)
        elif c.type == "LITERAL_LIST":
            spans |= {(start, end) for _, _, start, end in parser._list_parts(c, c.start_pos)}
        else:
            spans.add((c.start_pos, c.end_pos))
    return spans


def ast_spans(node: object) -> set[tuple[int, int]]:
    found: set[tuple[int, int]] = set()
    if isinstance(node, tuple):
        for x in node:
            found |= ast_spans(x)
    elif dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if isinstance(value, Span):
                found.add((value.start, value.end))
            else:
                found |= ast_spans(value)
    return found


def assert_drives_as_lark(text: str) -> int:
    """Each item of `text` fails where lark fails or is built with the height and the spans of
    lark's tree; returns how many items were built."""
    source = Source("a.agp", text)
    tokens, _ = parser._lex(source, [])
    built_items = 0
    for chunk in parser.split_items(tokens):
        if any(t.type.startswith("BAD_") for t in chunk):
            continue  # repaired before parsing, as the examples above test
        built, at = parser._drive(source, chunk)
        tree, lark_at = lark_reference(source, chunk)
        assert at == lark_at, str(chunk)
        assert (built is None) == (tree is None)
        if built is not None and tree is not None:
            built_items += 1
            assert built.height == tree_height(tree)
            assert (built.item.span.start, built.item.span.end) == (tree.meta.start_pos,
                                                                    tree.meta.end_pos)
            assert ast_spans(built.item) <= lark_spans(tree)
    return built_items


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_item_of_the_examples_is_built_as_lark_parses_it(path):
    text = path.read_text(encoding="utf-8")
    assert assert_drives_as_lark(text) or not text.strip()


expression = st.deferred(lambda: st.one_of(
    st.sampled_from(["args.x", "1", "2.5", '"s"', "30m", "true", "[1, 2]", "[args.x, 1]", "[]",
                     "task.params.customer", "lower(args.note)", "f()", "data", "tool"]),
    st.tuples(expression, st.sampled_from([" and ", " or ", " == ", " < ", " in ", " + ",
                                           " - ", " matches "]), expression).map("".join),
    expression.map(lambda e: f"not {e}"), expression.map(lambda e: f"({e})"),
    expression.map(lambda e: f"-{e}"), expression.map(lambda e: f"{e}.y"),
    expression.map(lambda e: f"{e} has z"), expression.map(lambda e: f"{e} is pii"),
    st.tuples(st.sampled_from(["any", "all", "count", "sum"]), expression, expression).map(
        lambda t: f"{t[0]}(h in {t[1]}: {t[2]})"),
    st.tuples(expression, expression).map(lambda t: f"count(h in {t[0]} if {t[1]}: h)"),
))
items = st.one_of(
    expression.map(lambda e: f"permit p on t.x, intent read when {e} unless {e} ttl 5m"),
    st.tuples(expression, st.lists(piece, max_size=4).map("".join)).map(
        lambda t: f"forbid f when {t[0]} {t[1]}"),
    st.sampled_from(["tool a.* { intent read data pii args { a: string, b?: any } }",
                     'tool "x y" { }', "task j { params { c: string } tools a.*, b.c intents r "
                     "data <= pii ttl 1h delegate { to a, b depth <= 2 } }",
                     "defaults { ttl 1m max_ttl 1h }", "dataclass a > b, c", "intent a, b",
                     'agent x "spiffe://a/b"', "module a.b", "import std.intents",
                     "task j { tools a.* ", "tool t { args { a: }"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(items, min_size=1, max_size=4).map("\n".join))
def test_generated_items_are_built_as_lark_parses_them(text):
    assert_drives_as_lark(text)


def test_an_expression_too_deep_is_reported_at_the_node_lark_finds():
    deep = "permit p when " + "not " * 120 + "true"
    diagnostics = parse(Source("a.agp", deep)).diagnostics
    assert [(d.code, d.span.start) for d in diagnostics] == [("limit", len("permit p when ") +
                                                              4 * 99)]


def test_an_invalid_escape_inside_a_deep_item_reports_the_depth_only():
    deep = 'permit p when "\\q" == "x" and ' + "not " * 120 + "true"
    assert [d.code for d in parse(Source("a.agp", deep)).diagnostics] == ["limit"]


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_example_is_lexed_as_lark_lexes_it(path):
    source = Source(str(path), path.read_text(encoding="utf-8"))
    assert lexed_facts(source, []) == token_facts(relex_from_the_start(source, []))


# ---- the steps of each shape of item, kept: replayed as the table would walk them again ---------


def _parsed_afresh(text: str) -> tuple[object, list[tuple[str, int, int]]]:
    """What `parse` makes of `text` with no shape of item known beforehand: its items' shape and
    spans, and its diagnostics."""
    saved = dict(parser._SHAPES)
    parser._SHAPES.clear()
    try:
        parsed = parse(Source("a.agp", text))
    finally:
        parser._SHAPES.clear()
        parser._SHAPES.update(saved)
    return _facts(parsed)


def _facts(parsed) -> tuple[object, list[tuple[str, int, int]]]:
    spans = sorted(ast_spans(parsed.items))
    return (shape(parsed.items), spans), [(d.message, d.span.start, d.span.end)
                                          for d in parsed.diagnostics]


@settings(max_examples=200, deadline=None)
@given(st.lists(items, min_size=1, max_size=4).map("\n".join), st.lists(items, max_size=3))
def test_an_item_of_a_known_shape_is_built_as_the_table_builds_it(text, before):
    # The shapes of `before` (and of `text` itself, parsed once) are known when `text` is parsed:
    # the steps replayed for them must build what walking the table afresh builds.
    for other in [*before, text]:
        parse(Source("b.agp", other))
    assert _facts(parse(Source("a.agp", text))) == _parsed_afresh(text)


def test_the_kept_shapes_are_bounded(monkeypatch):
    monkeypatch.setattr(parser, "MAX_SHAPES", 10)
    monkeypatch.setattr(parser, "_SHAPES", {})
    # Each rule has one more `and` than the one before: a shape of its own.
    text = "\n".join("permit p when " + " and ".join(["true"] * (i + 1)) for i in range(25))
    parsed = parse(Source("a.agp", text))
    assert len(parsed.items) == 25 and not parsed.diagnostics
    assert 0 < len(parser._SHAPES) <= 10
    assert _facts(parsed) == _parsed_afresh(text)


# ---- the lexer's and the builder's own shortcuts, held equal to the plain code they replace -----


def reference_split_items(tokens: list) -> list[list]:
    """`split_items` as it was written before it looked only at reserved words: every token."""
    chunks: list[list] = []
    braces = 0
    for i, tok in enumerate(tokens):
        if reference_starts_item(tokens, i, braces) or not chunks:
            chunks.append([])
            braces = 0
        chunks[-1].append(tok)
        if tok.type != "STRING":
            if tok.value == "{":
                braces += 1
            elif tok.value == "}" and braces > 0:
                braces -= 1
    return chunks


def reference_starts_item(tokens: list, i: int, braces: int) -> bool:
    tok = tokens[i]
    if tok.type in ("NAME", "STRING"):
        return False
    if tok.value in parser.ITEM_WORDS:
        return True
    if tok.value in parser.DECL_WORDS:
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if nxt is None or nxt.type not in ("NAME", "STRING", "STAR"):
            return False
        if tok.value != "intent":
            return True
        return braces == 0 and not (i > 0 and tokens[i - 1].value in ("on", ","))
    return False


def reference_names(tokens: list) -> list:
    """The reserved words `_lex` makes names, as it did before it looked only next to `.`,
    `has`, `:` and `?`: every token."""
    out: list = []
    for tok in tokens:
        if out and (out[-1].value == "." or (out[-1].value == "has" and parser._is_keyword(
                out[-1]))) and parser._is_keyword(tok):
            tok = tok._replace(type="NAME")
        elif out and tok.value in (":", "?") and parser._is_keyword(out[-1]) \
                and out[-1].value not in ("true", "false"):
            out[-1] = out[-1]._replace(type="NAME")
        out.append(tok)
    return out


# Items and their pieces, in any order: declarations inside rules, `intent` after `on` and `,`,
# reserved words after `.` and `has`, before `:` and `?`, unclosed and stray braces.
split_piece = st.sampled_from([
    "permit p ", "forbid f ", "ask a ", "module m ", "import std.intents ", "dataclass d ",
    "defaults ", "intent ", "intent x ", "intent x, intent y ", "agent ", "agent b ", "tool ",
    "tool t.* ", 'tool "a b" ', "task ", "task j ", "on ", "on t, ", ", ", "{ ", "} ", "x ",
    '"intent" ', "*", ".", ". data ", "has ", "has has ", "x.has ", "data: ", "true: ", "to ?: ",
    "args ", "when ", "in ", "# intent x\n", "\n",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(split_piece, max_size=30).map("".join))
def test_items_are_split_and_names_made_as_by_looking_at_every_token(text):
    source = Source("a.agp", text)
    raw = parser._recovering_lex(source, [])
    assert raw is not None
    tokens, _ = parser._lex(source, [])
    assert tokens == reference_names([t for t in raw if t.type != "COMMENT"])
    assert parser.split_items(tokens) == reference_split_items(tokens)
    # The editor splits lark's tokens, as `tokenize` gives them.
    lark_tokens, _ = tokenize(source, [])
    assert [[(t.type, t.start_pos) for t in chunk] for chunk in parser.split_items(lark_tokens)] \
        == [[(t.type, t.start_pos) for t in chunk] for chunk in reference_split_items(lark_tokens)]


def _every_node_class() -> list[type]:
    return [Span, *(c for c in vars(agp.syntax.ast).values()
                    if isinstance(c, type) and dataclasses.is_dataclass(c))]


@pytest.mark.parametrize("cls", _every_node_class(), ids=lambda c: c.__name__)
def test_the_parser_makes_nodes_as_their_class_makes_them(cls):
    # Each field a value of its own, every field given and then the defaults left out.
    fields = dataclasses.fields(cls)
    values = [object() for _ in fields]
    made, plain = maker(cls)(*values), cls(*values)
    assert type(made) is cls and made == plain and hash(made) == hash(plain)
    assert [getattr(made, f.name) for f in fields] == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, fields[0].name, None)
    required = [v for f, v in zip(fields, values, strict=True)
                if f.default is dataclasses.MISSING]
    assert maker(cls)(*required) == cls(*required)
    # The builder makes every class through its maker.
    assert cls.__name__ in vars(parser._New)


def test_a_class_whose_init_does_more_than_set_its_slots_gets_no_maker():
    # (One with a __post_init__: tests/test_compile.py, through the bundle's decoder.)
    @dataclasses.dataclass(frozen=True)
    class Unslotted:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        x: list[int] = dataclasses.field(default_factory=list)

    for cls in (Unslotted, Factory):
        with pytest.raises(TypeError):
            maker(cls)


def test_every_span_of_the_examples_is_a_span_of_the_text():
    # No node is given the placeholder of the builders that do not read their span.
    for path in CORPUS:
        parsed = parse(Source(str(path), path.read_text(encoding="utf-8")))
        assert all(0 <= start <= end for start, end in ast_spans(parsed.items))


def test_a_builder_is_given_no_span_only_when_it_reads_none():
    builders = [getattr(parser._Builder, name) for name in dir(parser._Builder)
                if not name.startswith("_")]
    for build in builders:
        body = inspect.getsource(build).split(":\n", 1)[1]  # after the signature
        assert parser._reads_span(build) == bool(re.search(r"\bspan\b", body)), build.__name__
    assert any(not parser._reads_span(b) for b in builders)


def test_a_long_item_is_parsed_but_its_shape_not_kept(monkeypatch):
    monkeypatch.setattr(parser, "_SHAPES", {})
    long_rule = "permit p when args.x in [" + ", ".join(["args.y"] * 100) + "]"  # 400 tokens
    text = long_rule + "\npermit q when true\n"
    parsed = parse(Source("a.agp", text))
    assert len(parsed.items) == 2 and not parsed.diagnostics
    assert [len(shape) for shape in parser._SHAPES] == [4]
    assert _facts(parse(Source("a.agp", text))) == _parsed_afresh(text)


@pytest.mark.parametrize("path", CORPUS[::4], ids=lambda p: p.name)
def test_an_item_alone_gets_the_lines_and_columns_of_the_whole_file(path):
    # The error path converts one item's tokens at a time, counting lines from the item's own.
    source = Source(str(path), path.read_text())
    tokens, _ = parser._lex(source, [])
    whole = {t[2]: t for t in token_facts(parser.lark_tokens(source, tokens))}
    for chunk in parser.split_items(tokens):
        assert token_facts(parser.lark_tokens(source, chunk)) == [whole[t.start_pos] for t in chunk]
