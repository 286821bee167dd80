"""Text to AST, one top-level item at a time.

The file is lexed whole (recovering from bad characters), cut into items at the reserved words
that start them, and each item is fed to the LALR parser on its own: a syntax error invalidates
only the item it is in (LANGUAGE.md §1). The parser builds our AST as it reduces (`_drive`).
"""

from __future__ import annotations

import bisect
import dis
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cache
from importlib import resources
from operator import itemgetter
from typing import Any, NamedTuple, cast

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedToken
from lark.lexer import UnlessCallback
from lark.parsers.lalr_analysis import Shift

from agp.diagnostics import Diagnostic, did_you_mean, error
from agp.frozen import maker
from agp.gcpause import no_cyclic_collection
from agp.limits import MAX_EXPR_DEPTH
from agp.source import Source, Span
from agp.syntax import ast

RESERVED = frozenset(
    "module import dataclass intent intents agent tool task defaults permit forbid ask on in by "
    "when unless ttl because and or not is has matches any all count sum if true false "
    "params tools data delegate to depth args max_ttl".split()
)
# Words that always start a top-level item, and those that do only when a name follows them.
ITEM_WORDS = frozenset("module import dataclass defaults permit forbid ask".split())
DECL_WORDS = frozenset("intent agent tool task".split())
MAX_LEX_ERRORS = 50


@dataclass(frozen=True, slots=True)
class Comment:
    text: str  # including the leading `#`
    span: Span

    @property
    def is_doc(self) -> bool:
        return self.text.startswith("##")


@dataclass(frozen=True, slots=True)
class ParsedFile:
    source: Source
    items: tuple[ast.Item, ...]
    comments: tuple[Comment, ...]
    diagnostics: tuple[Diagnostic, ...]
    # What the items that did not parse declare, as (kind, name): "class", "intent", "agent",
    # "task" or "tool" (a pattern). Their syntax error is reported; the checker reports no
    # follow-on error about these names.
    unparsed: tuple[tuple[str, str], ...] = ()


@cache
def lark_parser() -> Lark:
    grammar = resources.files("agp.grammar").joinpath("agp.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="basic", start="item", strict=True,
                propagate_positions=True, maybe_placeholders=False, cache=True)


def parse(source: Source) -> ParsedFile:
    """Parse one file. Never raises on bad input: problems come back as diagnostics."""
    diagnostics: list[Diagnostic] = []
    items: list[ast.Item] = []
    unparsed: list[tuple[str, str]] = []
    # A parse makes a million objects and frees few: cyclic collections meanwhile would only
    # scan them again and again (half the time of a megabyte's parse).
    with no_cyclic_collection():
        tokens, comments = _lex(source, diagnostics)
        doc_lines = _doc_lines(comments)
        for chunk in split_items(tokens):
            item = _parse_item(source, chunk, diagnostics)
            if item is not None:
                items.append(_with_doc(item, doc_lines) if doc_lines else item)
            else:
                unparsed.extend(_declared(chunk))
    return ParsedFile(source, tuple(items), tuple(comments), tuple(diagnostics), tuple(unparsed))


# ---- lexing ---------------------------------------------------------------------------------


class Tok(NamedTuple):
    """A token of the lexer: lark's `Token` without its lines and columns, which only lark's own
    parser (on the rare path of an error) and the editor need (`lark_tokens` adds them). A tuple
    is made in a fraction of the time of lark's `Token`, a `str` with eight attributes: at 300,000
    tokens a file, that was a third of a parse. The fields are named as lark's, so that what reads
    tokens (`split_items`) reads either."""

    type: str
    value: str
    start_pos: int
    end_pos: int

    def __str__(self) -> str:
        return self.value


def tokenize(source: Source, diagnostics: list[Diagnostic]) -> tuple[list[Token], list[Comment]]:
    """The tokens of a file (reserved words after `.`/`has` made names) and its comments.

    Bad characters are reported into `diagnostics` and skipped; offsets are kept. A list of
    literals comes as its tokens (`[`, items, `,`, `]`), as any other list.
    """
    tokens, comments = _lex(source, diagnostics)
    if any(t.type == "LITERAL_LIST" for t in tokens):
        tokens = [part for t in tokens
                  for part in (_split_list(t) if t.type == "LITERAL_LIST" else (t,))]
    return lark_tokens(source, tokens), comments


def lark_tokens(source: Source, tokens: Sequence[Tok]) -> list[Token]:
    """lark's `Token`s of these tokens of `source` (in order), with the lines and columns its
    lexer gives them. tests/test_parser.py holds them equal to lark's lexer.

    Lines are counted from the line of the first token (found in the source's table of line
    starts), not from the top of the file: the error path converts one item's tokens at a time,
    and a file of a thousand broken items must not count its lines a thousand times."""
    out: list[Token] = []
    if not tokens:
        return out
    text = source.text
    line = bisect.bisect_right(source.line_starts, tokens[0].start_pos)  # 1-based
    line_start = pos = source.line_starts[line - 1]
    for tok in tokens:
        start, end = tok.start_pos, tok.end_pos
        if start > pos and (newlines := text.count("\n", pos, start)):
            line += newlines
            line_start = text.rfind("\n", pos, start) + 1
        column = start - line_start + 1
        if "\n" in tok.value:  # a list of literals over several lines
            newlines = text.count("\n", start, end)
            end_line, end_start = line + newlines, text.rfind("\n", start, end) + 1
        else:
            end_line, end_start = line, line_start
        # lark's Token, made as its lexer makes it, without the layers of its constructor.
        made = str.__new__(Token, tok.value)
        made.type, made.value, made.start_pos, made.end_pos = tok.type, tok.value, start, end
        made.line, made.column, made.end_line = line, column, end_line
        made.end_column = end - end_start + 1
        out.append(made)
        if end > pos:
            line, line_start, pos = end_line, end_start, end
    return out


def _split_list(tok: Tok) -> list[Tok]:
    """The tokens of a LITERAL_LIST token: `[`, the items, the commas and `]`."""
    return [Tok(*part) for part in _list_parts(tok.value, tok.start_pos)]


def _list_parts(text: str, base: int) -> Iterator[tuple[str, str, int, int]]:
    """(terminal, text, start, end) of each part of a LITERAL_LIST token of this text, that
    starts at offset `base`, in order."""
    for m in _list_pattern().finditer(text):
        yield cast(str, m.lastgroup), m.group(), base + m.start(), base + m.end()


_PUNCTUATION = frozenset(("COMMA", "LSQB", "RSQB"))


@cache
def _list_pattern(punctuation: bool = True) -> re.Pattern[str]:
    """The parts of a LITERAL_LIST token; without punctuation, its items alone, which `finditer`
    finds as they are (no item starts with whitespace or punctuation)."""
    terminals = {t.name: t.pattern.to_regexp() for t in lark_parser().terminals}
    parts = ("STRING", "DURATION", "NUMBER", "TRUE", "FALSE",
             *(_PUNCTUATION if punctuation else ()))
    return re.compile("|".join(f"(?P<{name}>{terminals[name]})" for name in parts))


# The tokens a list of literals is made of (whitespace aside). Lexing `[` first tries to read a
# whole list of literals as one LITERAL_LIST token; that attempt reads on through such tokens only.
_LIST_PARTS = frozenset(("COMMA", "STRING", "NUMBER", "DURATION", "TRUE", "FALSE"))


@dataclass(frozen=True, slots=True)
class _Scanner:
    """lark's lexer for the grammar, as one regular expression: `_scan` runs it on its own,
    without lark's per-token machinery (a third of a parse)."""

    # Whitespace, then every terminal as a group, in lark's order of preference but for NAME
    # (see `_scanner`); or whitespace alone, before a character no terminal matches or at the
    # end. No terminal but WS starts with whitespace, so skipping it first matches what lark's
    # lexer matches, in half the matches (one a token, not one for it and one for the space).
    pattern: re.Pattern[str]
    terminals: tuple[str, ...]  # the terminal of each group, by its number
    ws: int  # the group of whitespace alone
    keywords: dict[str, str]  # a NAME's text that is a keyword -> the keyword's terminal
    keyword_types: frozenset[str]  # the terminals of the reserved words


_WS = re.compile(r"[ \t\r\n\f]*")


@cache
def _scanner() -> _Scanner:
    lexer = lark_parser()._build_lexer(dont_ignore=True)
    scanner = lexer.scanner
    assert len(scanner._mres) == 1  # the grammar has few terminals: one pattern holds them all
    # lark's UnlessCallback: a NAME whose whole text is a keyword is that keyword.
    assert set(lexer.callback) == {"NAME"}
    callback = lexer.callback["NAME"]
    assert isinstance(callback, UnlessCallback), callback
    words = callback.scanner.terminals
    assert all(t.pattern.type == "str" and not t.pattern.flags for t in words)
    keywords = {t.pattern.value: t.name for t in words}
    assert set(keywords) == RESERVED
    assert {t.name for t in lark_parser().terminals if t.name.startswith("BAD_")} == _BAD_TYPES
    # lark's pattern: every terminal as a group, in lark's order of preference (the first group
    # that matches wins). NAME goes first: the terminals lark tries before it match only from a
    # digit or a `[`, never where a name starts, so no match changes, and names, most of the
    # tokens, are matched in two thirds of the time.
    terminals = list(scanner.terminals)
    assert scanner._mres[0].pattern == "|".join(_group(t) for t in terminals)
    name = next(i for i, t in enumerate(terminals) if t.name == "NAME")
    assert all(t.pattern.to_regexp().startswith(("\\[", "\\d", "(?:\\d"))
               for t in terminals[:name])
    terminals.insert(0, terminals.pop(name))
    pattern = re.compile(_WS.pattern + "(?:" + "|".join(_group(t) for t in terminals) + ")",
                         scanner._mres[0].flags)
    groups = ["", *sorted(pattern.groupindex, key=pattern.groupindex.__getitem__)]
    assert pattern.groups == len(groups) - 1  # no capturing group inside a terminal
    return _Scanner(pattern, tuple(groups), pattern.groupindex["WS"], keywords,
                    frozenset(keywords.values()))


def _group(terminal: Any) -> str:
    return f"(?P<{terminal.name}>{terminal.pattern.to_regexp()})"


def _scan(text: str, start: int) -> tuple[list[Tok], int | None]:
    """The tokens of `text` from `start`, comments included, whitespace left out, as lark's lexer
    makes them; and where a character no token matches stands, or None at the end of the text.
    tests/test_parser.py holds it equal to lark's lexer."""
    scanner = _scanner()
    terminals, ws, keyword = scanner.terminals, scanner.ws, scanner.keywords.get
    make = tuple.__new__
    # One comprehension over the matches, each one right after the one before (`scanner.match`
    # stops at the first place nothing matches): the loop of lark's lexer, without its layers.
    tokens: list[Tok] = [
        make(Tok, (keyword(value, terminals[group]), value, m.start(group), m.end()))
        for m in iter(scanner.pattern.scanner(text, start).match,  # type: ignore[attr-defined]
                      None)
        for group in (m.lastindex,) if group != ws
        for value in (m.group(group),)]
    after = _WS.match(text, tokens[-1].end_pos if tokens else start)
    stop = after.end()  # type: ignore[union-attr]  # it matches the empty string
    return tokens, stop if stop < len(text) else None


def _recovering_lex(source: Source, diagnostics: list[Diagnostic]) -> list[Tok] | None:
    """All the tokens of a file, comments included (not whitespace), each bad character reported
    and blanked out (keeping every offset); None after MAX_LEX_ERRORS of them.

    After a bad character, lexing resumes where the change can first make a difference, not
    at the start of the file, so that the time stays linear in the size of the file: at the
    token just before the character (it may now extend over it), or at the `[` of the list of
    literals that token ends (reading the list as one token may now succeed). Earlier tokens
    stay as they were: apart from a list of literals, the match of a token depends on at most
    the two characters after it (`1.` and a digit), and a blank (a space, or a quote that ends
    a string) changes none of those matches. tests/test_parser.py holds the result equal to
    lexing the whole changed text again.
    """
    text = source.text
    raw: list[Tok] = []
    start = 0
    for _ in range(MAX_LEX_ERRORS):
        lexed, bad = _scan(text, start)
        raw.extend(lexed)
        if bad is None:
            return raw
        text = _blank_out(source, text, bad, diagnostics)
        resume = max(len(raw) - 1, 0)
        # Back over the list-of-literals tokens the last token ends, to their `[`, if any.
        opening = resume
        while opening > 0 and raw[opening].type in _LIST_PARTS:
            opening -= 1
        if raw and raw[opening].type == "LSQB":
            resume = opening
        start = raw[resume].start_pos if raw else 0
        del raw[resume:]
    return None


def _blank_out(source: Source, text: str, pos: int, diagnostics: list[Diagnostic]) -> str:
    """Report the bad character at `pos`, and the text with it made harmless, every offset
    kept: an unterminated string is ended at the end of its line (so that one mistake makes
    one error), any other character becomes a space."""
    ch = text[pos]
    span = Span(source, pos, pos + 1)
    if ch in "\"'":
        diagnostics.append(error("syntax", span, "unterminated string",
                                 'close the string with `"` on the same line' if ch == '"'
                                 else 'strings are written in double quotes: `"..."`'))
        eol = text.find("\n", pos)
        eol = len(text) if eol < 0 else eol
        if eol - pos >= 2:
            return text[:pos] + '"' + text[pos + 1 : eol - 1] + '"' + text[eol:]
    else:
        diagnostics.append(error("syntax", span, f"unexpected character {ch!r}"))
    return text[:pos] + " " + text[pos + 1 :]


def _lex(source: Source, diagnostics: list[Diagnostic]) -> tuple[list[Tok], list[Comment]]:
    """`tokenize`, where a list of literals is one LITERAL_LIST token, and the tokens are ours."""
    raw = _recovering_lex(source, diagnostics)
    if raw is None:
        return [], []
    comments = [Comment(t.value, Span(source, t.start_pos, t.end_pos))
                for t in raw if t.type == "COMMENT"]
    tokens = [t for t in raw if t.type != "COMMENT"] if comments else raw
    keyword_types = _scanner().keyword_types
    # Reserved words that are names where they stand. Only the tokens next to these punctuations
    # can be, so only those are looked at, in order (a word made a name here is no longer a
    # keyword for the next one: `x.has.y`).
    for i in [i for i, tok in enumerate(tokens) if tok.type in _NAMING]:
        kind = tokens[i].type
        if kind in ("DOT", "HAS"):
            # A reserved word after `.` or `has` is a plain name: `args.data`, `std.intents`.
            # Only the keyword `has` counts: in `on t.has unless ...`, `has` is a name.
            if i + 1 < len(tokens) and tokens[i + 1].type in keyword_types:
                tokens[i + 1] = tokens[i + 1]._replace(type="NAME")
        # So is a field name before `:` or `?:`, where only a name can stand
        # (`args { to: string }`, `any(x in data: ...)` reads the same either way).
        elif kind in ("COLON", "OPTIONAL") and i > 0 and tokens[i - 1].type in keyword_types \
                and tokens[i - 1].type not in ("TRUE", "FALSE"):
            tokens[i - 1] = tokens[i - 1]._replace(type="NAME")
    return tokens, comments


# The terminals next to which a reserved word is a name (see `_lex`).
_NAMING = frozenset(("DOT", "HAS", "COLON", "OPTIONAL"))


def _is_keyword(tok: Tok) -> bool:
    return tok.type in _scanner().keyword_types


def split_items(tokens: Sequence[Tok | Token]) -> list[list[Any]]:
    """Cut a file's tokens (ours or lark's) into top-level items (LANGUAGE.md §1), even around
    broken ones."""
    item_types, decl_types = _item_types()
    kinds = [tok.type for tok in tokens]
    n = len(kinds)
    starts = [0]  # the first token starts an item, whatever it is
    # The `{` not closed between the start of the current item and the token `scanned`.
    braces = scanned = 0
    # Only a reserved word lexed as one can start an item (not one lexed as a name, or in a
    # string): those alone are looked at.
    for i in [i for i, kind in enumerate(kinds) if kind in item_types or kind in decl_types]:
        kind = kinds[i]
        if kind in decl_types:  # only when a name follows
            if i + 1 >= n or kinds[i + 1] not in ("NAME", "STRING", "STAR"):
                continue
            # `agent x`, `tool x`, `task x` never occur inside an item, but `intent x` is also
            # a clause of tool and task bodies and of a rule's `on` list: it starts an item
            # only outside every `{` (even after an unclosed bracket).
            if kind == "INTENT":
                if i > 0 and tokens[i - 1].value in ("on", ","):
                    continue
                for between in kinds[scanned:i]:
                    if between == "LBRACE":
                        braces += 1
                    elif between == "RBRACE" and braces > 0:
                        braces -= 1
                scanned = i
                if braces:
                    continue
        if i > 0:
            starts.append(i)
            braces, scanned = 0, i
    ends = [*starts[1:], n]
    return [list(tokens[start:end]) for start, end in zip(starts, ends, strict=True)] if n else []


@cache
def _item_types() -> tuple[frozenset[str], frozenset[str]]:
    """The terminals of the words that always start a top-level item, and of those that do only
    when a name follows them."""
    keywords = _scanner().keywords
    return frozenset(keywords[w] for w in ITEM_WORDS), frozenset(keywords[w] for w in DECL_WORDS)


# ---- parsing --------------------------------------------------------------------------------

_TOKEN_NAMES = {
    "NAME": "a name", "STRING": "a string", "NUMBER": "a number", "DURATION": "a duration",
    "STAR": "`*`", "$END": "the end of the item", "TRUE": "`true`", "FALSE": "`false`",
    "OPTIONAL": "`?`", "LITERAL_LIST": "`[`",
}
# What agp writes for the operators of other languages (the BAD_OPERATOR token).
_OPERATORS = {"&&": "and", "&": "and", "||": "or", "|": "or", "!": "not", "=": "=="}
# Words of other policy languages in place of a keyword, and agp's word for them.
_SYNONYMS = {"allow": "permit", "deny": "forbid", "if": "when"}
# Unit words a duration may be mistyped with, and agp's unit.
_UNITS = {word: unit for unit, words in (
    ("d", "d day days"), ("h", "h hr hrs hour hours"), ("m", "m min mins minute minutes"),
    ("s", "s sec secs second seconds")) for word in words.split()}
_DURATION_SYNTAX = "a duration is integer-and-unit pairs d, h, m, s in that order, without spaces"


@cache
def _terminal_names() -> dict[str, str]:
    """The grammar's terminal for each fixed text: `}` -> RBRACE, `and` -> AND."""
    return {t.pattern.value: t.name for t in lark_parser().terminals if t.pattern.type == "str"}


def _describe(terminal: str) -> str:
    if terminal in _TOKEN_NAMES:
        return _TOKEN_NAMES[terminal]
    for text, name in _terminal_names().items():
        if name == terminal:
            return f"`{text}`"
    return terminal


def _expected(names: Iterable[str]) -> str:
    described = sorted({_describe(n) for n in names if not n.startswith("BAD_")})
    if len(described) > 10:
        described = described[:10] + ["..."]
    return ", ".join(described)


def _parse_item(source: Source, chunk: list[Tok],
                diagnostics: list[Diagnostic]) -> ast.Item | None:
    """One top-level item's AST, or None when none can be built (its errors are reported)."""
    kinds = tuple([tok.type for tok in chunk])
    shape: tuple[str, ...] | None = kinds  # what `_drive` would compute again
    if not _BAD_TYPES.isdisjoint(kinds):
        repaired = _repair(source, chunk, diagnostics)
        if repaired is None:
            return None
        chunk, shape = repaired, None
    built, at = _drive(source, chunk, shape)
    if built is None:
        accepted = _accepted(source, chunk, at)
        last = chunk[-1]
        tok = chunk[at] if at < len(chunk) else Tok("$END", "", last.start_pos, last.end_pos)
        diagnostics.append(_syntax_error(source, chunk, at, tok, accepted))
        recovered = _recover(source, chunk, at, accepted)
        if recovered is None:
            return None
        built, chunk = recovered
    if built.height > MAX_EXPR_DEPTH + 1:  # a node deeper than MAX_EXPR_DEPTH below the item
        deepest = _deepest(_lark_tree(source, chunk))
        diagnostics.append(error(
            "limit", Span(source, deepest.meta.start_pos, deepest.meta.end_pos),
            f"expression nested more than {MAX_EXPR_DEPTH} levels deep",
            "split the condition into several rules, or use `in [...]` for long lists"))
        return None
    if built.problem is not None:
        diagnostics.append(built.problem)
        return None
    return built.item


@dataclass(frozen=True, slots=True)
class _Reduction:
    """One rule of the grammar, as `_drive` applies it: what lark's tree builder and our
    Transformer did in two passes (keep the children that are not punctuation, splice in the
    children of `_rule`s, inline the one child of a `?rule`, build the node), in one."""

    size: int  # the symbols it takes off the stack
    goto: str  # the nonterminal it makes
    keep: tuple[tuple[int, bool], ...]  # (index, splice) of the symbols kept as children
    # The _Builder method that makes the node; None for a `_rule` (its children, to splice into
    # its parent's) and for a `?rule` (its one child, as it is).
    build: Callable[[_Builder, Span, _Children], Any] | None
    splice: bool  # a `_rule`
    # A `?rule` of one symbol (`?sum: unary`): the value stays as it is, only the state changes.
    # Most reductions of an expression are these, one per level of precedence it passes.
    unit: bool


@dataclass(frozen=True, slots=True)
class _Table:
    # state -> terminal -> the state to shift to (an int) or the reduction to apply
    actions: dict[int, dict[str, int | _Reduction]]
    gotos: dict[int, dict[str, int]]  # state -> nonterminal -> the state after it
    start: int
    end: int


@cache
def _table() -> _Table:
    """lark's LALR table for the grammar, prepared for `_drive`."""
    table = lark_parser().parser.parser.parser.parse_table
    reductions: dict[Any, _Reduction] = {}

    def reduction(rule: Any) -> _Reduction:
        if rule not in reductions:
            expand1 = rule.options.expand1 and not rule.alias
            keep = tuple((i, not sym.is_term and sym.name.startswith("_"))
                         for i, sym in enumerate(rule.expansion)
                         if rule.options.keep_all_tokens or not (sym.is_term and sym.filter_out))
            splice = rule.origin.name.startswith("_")
            # Every `?rule` alternative without an alias keeps one child; no rule is empty.
            assert rule.expansion and (not expand1 or len(keep) == 1), rule
            build = None if expand1 or splice else getattr(_Builder, rule.alias or rule.origin.name)
            unit = expand1 and len(rule.expansion) == 1
            reductions[rule] = _Reduction(len(rule.expansion), rule.origin.name, keep, build, splice,
                                          unit)
        return reductions[rule]

    actions: dict[int, dict[str, int | _Reduction]] = {}
    gotos: dict[int, dict[str, int]] = {}
    for state, row in table.states.items():
        actions[state] = {sym: arg if action is Shift else reduction(arg)
                          for sym, (action, arg) in row.items() if sym.isupper()}
        gotos[state] = {sym: arg for sym, (action, arg) in row.items() if not sym.isupper()}
    return _Table(actions, gotos, table.start_states["item"], table.end_states["item"])


@dataclass(frozen=True, slots=True)
class _Built:
    item: ast.Item
    height: int  # of the tree lark would have built: nodes on the longest path down from the item
    problem: Diagnostic | None  # the first mistake found while building it (an invalid escape)


def _drive(source: Source, tokens: list[Tok],
           shape: tuple[str, ...] | None = None) -> tuple[_Built | None, int]:
    """The LALR parser on an item's tokens, building our AST as it reduces: (the item, len) or,
    on a syntax error, (None, the index of its token, len for the end).

    lark's parser builds its tree, then our Transformer walks it: more than half of the time of
    a parse. Here lark's own table says which rules reduce (`_actions`) and `_build` makes each
    node as its rule is reduced, with the same children and the same span (from the first
    symbol of the rule to the last, punctuation included, as lark's `propagate_positions`).
    tests/test_parser.py holds it equal to lark's tree and the Transformer on every example and
    on generated items.
    """
    n = len(tokens)
    if shape is None:
        shape = tuple([tok.type for tok in tokens])
    known = _SHAPES.get(shape)
    if known is None:
        steps, at = _actions(shape)
        known = (None if steps is None else _plan(steps, n), at)
        if n <= MAX_SHAPE_TOKENS:
            if len(_SHAPES) >= MAX_SHAPES:
                _SHAPES.clear()  # a file of ever new shapes: start again rather than grow
            _SHAPES[shape] = known
    plan, at = known
    if plan is None:
        return None, at
    return _build(source, tokens, plan), n


# The reductions an item's terminals go through depend on the terminals alone (LR parsing reads
# nothing else), and a policy's items come in few shapes: ten thousand rules of the benchmark,
# in two. So the table is walked once per shape, and what it did is kept as a plan (`_plan`)
# replayed for every item of that shape. Bounded: a plan takes about 220 bytes a token, so at
# most 1,024 shapes of at most 256 tokens are kept (56 MB at worst; a longer item, rare, has
# its plan made again, which costs about what parsing it costs).
MAX_SHAPES = 1024
MAX_SHAPE_TOKENS = 256
_SHAPES: dict[tuple[str, ...], tuple[_Plan | None, int]] = {}


def _actions(shape: tuple[str, ...]) -> tuple[tuple[_Reduction | None, ...] | None, int]:
    """What the LALR table does on these terminals: (the steps, len), each step a reduction to
    apply or None to shift the next token, or (None, the index of the token it fails on)."""
    table = _table()
    actions, gotos = table.actions, table.gotos
    states = [table.start]
    steps: list[_Reduction | None] = []
    n = len(shape)
    for i in range(n + 1):
        tok_type = shape[i] if i < n else "$END"
        while True:
            act = actions[states[-1]].get(tok_type)
            if act is None:
                return None, i
            if type(act) is int:
                states.append(act)
                steps.append(None)
                break
            r: _Reduction = act  # type: ignore[assignment]
            if r.unit:
                states[-1] = gotos[states[-2]][r.goto]
            else:
                del states[-r.size:]
                states.append(gotos[states[-1]][r.goto])
                steps.append(r)
            if i == n and states[-1] == table.end:
                return tuple(steps), n
    raise AssertionError("the parser ends at the end state")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class _Plan:
    """How every item of one shape is built: the nodes in the order the parser reduces them,
    each as (its _Builder method, what picks its children out of the values so far, the index of
    its first token or -1 when the method reads no span, of its last token). The values are the
    item's tokens, then each node built: all that the parser's stack did (which symbols a rule
    takes, which it keeps, splices or passes on, where a node's text starts and ends) depends on
    the shape alone, and is done here once."""

    nodes: tuple[tuple[Callable[[_Builder, Span, _Children], Any],
                       Callable[[list[Any]], Sequence[Any]], int, int], ...]
    item: int  # the value that is the item
    height: int  # of the tree lark would have built: nodes on the longest path down from the item


def _plan(steps: tuple[_Reduction | None, ...], n: int) -> _Plan:
    """The plan of the items of n tokens for which the LALR table takes these steps."""
    # Each symbol on the parser's stack: the values it stands for (one, or the children of a
    # `_rule`, to splice into its parent's), its first token, its last token and its height.
    stack: list[tuple[tuple[int, ...], int, int, int]] = []
    nodes: list[tuple[Any, Callable[[list[Any]], Sequence[Any]], int, int]] = []
    shifted = 0
    for r in steps:
        if r is None:
            stack.append(((shifted,), shifted, shifted, 0))
            shifted += 1
            continue
        popped = stack[-r.size:]
        del stack[-r.size:]
        refs: list[int] = []
        height = 0
        for index, _ in r.keep:
            values, _, _, h = popped[index]
            refs.extend(values)
            height = max(height, h)
        first, last = popped[0][1], popped[-1][2]
        if r.build is not None:
            # A method that makes no node of its own (a clause, a list) is given no span.
            nodes.append((r.build, _picker(refs), first if _reads_span(r.build) else -1, last))
            stack.append(((n + len(nodes) - 1,), first, last, height + 1))
        else:  # a `_rule`'s children, or a `?rule`'s one child, as they are
            stack.append((tuple(refs) if r.splice else (refs[0],), first, last, height))
    (values, _, _, height), = stack
    assert shifted == n and len(values) == 1
    return _Plan(tuple(nodes), values[0], height)


@cache
def _reads_span(build: Callable[..., Any]) -> bool:
    """Whether a _Builder method may read its `span` (a third of them do not: no Span is made for
    them). Any instruction that names `span` counts, whatever the version of Python calls it
    (3.13 loads two locals in one instruction): at worst a span is made for nothing."""
    return any(i.argval == "span" or (isinstance(i.argval, tuple) and "span" in i.argval)
               for i in dis.get_instructions(build))


def _picker(refs: list[int]) -> Callable[[list[Any]], Sequence[Any]]:
    """What picks these values out of a list, in one call: a slice where they follow each other
    (the commonest case), else a tuple."""
    if not refs or refs == list(range(refs[0], refs[0] + len(refs))):
        start = refs[0] if refs else 0
        return itemgetter(slice(start, start + len(refs)))
    return itemgetter(*refs)


# What a method that does not read its span is given.
_NO_SPAN = Span(Source("", ""), -1, -1)


def _build(source: Source, tokens: list[Tok], plan: _Plan) -> _Built:
    """The item the plan of its shape makes of these tokens."""
    builder = _Builder(source)
    values: list[Any] = tokens.copy()
    append, span = values.append, _New.Span
    for build, children, first, last in plan.nodes:
        append(build(builder, span(source, tokens[first].start_pos, tokens[last].end_pos)
                     if first >= 0 else _NO_SPAN, children(values)))
    return _Built(values[plan.item], plan.height, builder.problem)


def _lark_tree(source: Source, chunk: list[Tok]) -> Tree[Token] | None:
    """lark's own tree of an item that parses (for the rare error that needs its shape)."""
    parser = lark_parser().parse_interactive()
    tokens = lark_tokens(source, chunk)
    try:
        for tok in tokens:
            parser.feed_token(tok)
        tree: Tree[Token] = parser.feed_eof(tokens[-1])  # type: ignore[no-untyped-call]
        return tree
    except UnexpectedToken:
        return None


def _accepted(source: Source, chunk: list[Tok], at: int) -> frozenset[str]:
    """The terminals the parser accepts after chunk[:at]: exactly those, where the set of an
    LALR error is a superset (its states are shared by several contexts). Like the reductions,
    they depend on the terminals alone: kept per prefix of terminals, for a file of broken items
    of a few shapes (lark's interactive parser takes a quarter of a millisecond per item)."""
    prefix = tuple([tok.type for tok in chunk[:at]])
    accepted = _ACCEPTED.get(prefix)
    if accepted is None:
        parser = lark_parser().parse_interactive()
        for tok in lark_tokens(source, chunk[:at]):
            parser.feed_token(tok)
        accepted = frozenset(parser.accepts())  # type: ignore[no-untyped-call]
        if at <= MAX_SHAPE_TOKENS:
            if len(_ACCEPTED) >= MAX_SHAPES:
                _ACCEPTED.clear()
            _ACCEPTED[prefix] = accepted
    return accepted


_ACCEPTED: dict[tuple[str, ...], frozenset[str]] = {}


# The terminals of the mistakes the lexer recognises.
_BAD_TYPES = frozenset(("BAD_OPERATOR", "BAD_STRING", "BAD_NUMBER"))


def _repair(source: Source, chunk: list[Tok],
            diagnostics: list[Diagnostic]) -> list[Tok] | None:
    """Report the mistakes the lexer recognises (the BAD_ tokens) with their fix, and put the fix
    in their place so that the rest of the item is still parsed and checked. None when the fix
    is unclear: the item is dropped."""
    out: list[Tok] = []
    for tok in chunk:
        span = _tok_span(source, tok)
        if tok.type == "BAD_OPERATOR":
            fix = _OPERATORS[tok.value]
            diagnostics.append(error("syntax", span, f"`{tok.value}` is not an operator in agp",
                                     f"write `{fix}`"))
            tok = Tok(_terminal_names()[fix], fix, tok.start_pos, tok.end_pos)
        elif tok.type == "BAD_STRING":
            fix = _double_quoted(tok.value)
            diagnostics.append(error("syntax", span, "strings are written in double quotes",
                                     f"write `{fix}`"))
            tok = Tok("STRING", fix, tok.start_pos, tok.end_pos)
        elif tok.type == "BAD_NUMBER":
            duration = suggest_duration(tok.value)
            diagnostics.append(error("syntax", span, f"invalid number or duration `{tok.value}`",
                                     _duration_hint(duration)))
            if duration is None:
                return None
            tok = Tok("DURATION", duration, tok.start_pos, tok.end_pos)
        out.append(tok)
    return out


def _double_quoted(text: str) -> str:
    """`'it\\'s "x"'` -> `"it's \\"x\\""`: the same string in agp's quotes."""
    body = re.sub(r"\\(.)|(\")", lambda m: '\\"' if m.group(2) else
                  (m.group(1) if m.group(1) == "'" else m.group(0)), text[1:-1])
    return f'"{body}"'


def suggest_duration(text: str) -> str | None:
    """What a mistyped duration means, when that is clear, else None.

    >>> suggest_duration("30 minutes"), suggest_duration("1h 30m"), suggest_duration("30m1h")
    ('30m', '1h30m', '1h30m')
    """
    pairs = re.findall(r"(\d+)\s*([A-Za-z]+)\s*", text)
    if not pairs or "".join(n + u for n, u in pairs) != re.sub(r"\s+", "", text):
        return None
    units: dict[str, str] = {}
    for number, word in pairs:
        unit = _UNITS.get(word.lower())
        if unit is None or unit in units:
            return None
        units[unit] = number
    return "".join(units[u] + u for u in "dhms" if u in units)


def _duration_hint(fix: str | None) -> str:
    return f"write `{fix}`: {_DURATION_SYNTAX}" if fix else \
        f"{_DURATION_SYNTAX} (`30s`, `5m`, `1h30m`)"


def _syntax_error(source: Source, chunk: list[Tok], at: int, tok: Tok,
                  accepted: frozenset[str]) -> Diagnostic:
    expected = _expected(accepted)
    if accepted == {"$END"}:  # words after a complete item, which they do not start
        expected = "the start of an item (`permit`, `forbid`, `ask`, `tool`, `task`, ...)"
    if tok.type == "$END":
        last = chunk[-1]
        opened = _unclosed(chunk)
        return error("syntax", Span(source, last.end_pos, last.end_pos),
                     f"`{chunk[0].value}` item ends too early after `{last.value}`; "
                     f"expected {expected}",
                     f"close the `{{` of line {source.position(opened.start_pos)[0]} with `}}`"
                     if opened else None)
    if tok.type == "LITERAL_LIST":  # underline its `[`, as for any other token
        return error("syntax", Span(source, tok.start_pos, tok.start_pos + 1),
                     f"unexpected `[`; expected {expected}")
    duration = _duration_around(source, chunk, at)
    if duration is not None:
        span, fix = duration
        return error("syntax", span, f"`{span.text}` is not a duration", _duration_hint(fix))
    hint = None
    if tok.type == "NUMBER" and "DURATION" in accepted:  # `ttl 30`
        hint = _duration_hint(None)
    elif tok.type == "NAME":
        if tok.value in _SYNONYMS:
            hint = f"did you mean `{_SYNONYMS[tok.value]}`?"
        else:
            keywords = [t for t, n in _terminal_names().items()
                        if n in accepted and t.isidentifier()]
            hint = did_you_mean(tok.value, keywords)
    return error("syntax", _tok_span(source, tok), f"unexpected `{tok.value}`; expected {expected}",
                 hint)


def _duration_around(source: Source, chunk: list[Tok], at: int) -> tuple[Span, str] | None:
    """A duration written with spaces or unit words around token `at` (`30 minutes`, `1h 30m`):
    its span and what to write instead, or None."""
    first = at - 1 if at > 0 and chunk[at - 1].type in ("NUMBER", "DURATION") else at
    if chunk[first].type not in ("NUMBER", "DURATION"):
        return None
    last = first
    while last + 1 < len(chunk) and (chunk[last + 1].type in ("NUMBER", "DURATION") or (
            chunk[last + 1].type == "NAME" and chunk[last + 1].value.lower() in _UNITS)):
        last += 1
    if last == first:
        return None
    span = Span(source, chunk[first].start_pos, chunk[last].end_pos)
    fix = suggest_duration(span.text)
    return (span, fix) if fix else None


def _unclosed(chunk: list[Tok]) -> Tok | None:
    """The innermost `{` of an item that is not closed."""
    opened: list[Tok] = []
    for tok in chunk:
        if tok.type == "LBRACE":
            opened.append(tok)
        elif tok.type == "RBRACE" and opened:
            opened.pop()
    return opened[-1] if opened else None


def _recover(source: Source, chunk: list[Tok], at: int,
             accepted: frozenset[str]) -> tuple[_Built, list[Tok]] | None:
    """What can be kept of an item with a syntax error, so that one mistake does not also make
    errors about the names the item declares: the item without the words after its end (`allow
    p ...` after a complete task), or the item with its unclosed blocks closed, with the tokens
    it was built from. Else None.
    A rule is never cut short: it would be checked as another rule (`when task.age > 30` of
    `when task.age > 30 minutes`), and nothing refers to a rule by its name."""
    if at < len(chunk):
        if at > 0 and "$END" in accepted and chunk[0].type not in ("PERMIT", "FORBID", "ASK"):
            built = _drive(source, chunk[:at])[0]
            return None if built is None else (built, chunk[:at])
        return None
    last = chunk[-1]
    closers: list[Tok] = []
    while _unclosed(chunk + closers) is not None:
        closers.append(Tok("RBRACE", "}", last.end_pos, last.end_pos))
        built = _drive(source, chunk + closers)[0]
        if built is not None:
            return built, chunk + closers
    return None


# Top-level keywords that declare names, and the kind of what they declare.
_DECLARES = {"dataclass": "class", "intent": "intent", "agent": "agent", "task": "task",
             "tool": "tool"}


def _declared(chunk: list[Tok]) -> list[tuple[str, str]]:
    """What an item that does not parse declares, read from its tokens: [(kind, name)]."""
    kind = _DECLARES.get(chunk[0].value) if _is_keyword(chunk[0]) else None
    if kind is None:
        return []
    if kind == "tool":
        parts: list[str] = []
        for tok in chunk[1:]:
            if tok.type == "LBRACE":
                break
            parts.append((decode_string(tok.value) or "") if tok.type == "STRING" else tok.value)
        return [("tool", "".join(parts))] if parts else []
    found: list[tuple[str, str]] = []
    for i in range(1, len(chunk), 2):  # `intent a, b, c` declares several
        if chunk[i].type != "NAME":
            break
        found.append((kind, chunk[i].value))
        if kind != "intent" or i + 1 >= len(chunk) or chunk[i + 1].type != "COMMA":
            break
    return found


def _deepest(tree: Tree[Token] | None) -> Tree[Token]:
    """The first subtree deeper than MAX_EXPR_DEPTH (of a tree that has one), found without
    recursion."""
    stack = [(tree, 0)] if tree is not None else []
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPR_DEPTH:
            return node
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))
    raise AssertionError("a tree deeper than MAX_EXPR_DEPTH")  # pragma: no cover


def _tok_span(source: Source, tok: Tok) -> Span:
    return Span(source, tok.start_pos, tok.end_pos)


def _with_doc(item: ast.Item, doc_lines: dict[int, Comment]) -> ast.Item:
    """Attach the `##` lines directly above an item (no blank line between) as its doc."""
    line = item.span.line
    lines = []
    while (line - 1) in doc_lines:
        line -= 1
        lines.append(doc_lines[line].text[2:].removeprefix(" "))
    if not lines:
        return item
    return replace(item, doc="\n".join(reversed(lines)))


def _doc_lines(comments: list[Comment]) -> dict[int, Comment]:
    """The `##` comments alone on their line, by line."""
    return {c.span.line: c for c in comments if c.is_doc and c.span.column == _indent(c)}


def _indent(comment: Comment) -> int:
    text = comment.span.source.line_text(comment.span.line)
    return len(text) - len(text.lstrip()) + 1


# ---- tree to AST ----------------------------------------------------------------------------


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def parse_duration(text: str) -> timedelta | None:
    """A duration in the language's syntax, or None (also when it is too large to represent).

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    m = _DURATION.fullmatch(text)
    if not text or m is None:
        return None
    try:
        d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        return timedelta(days=d, hours=h, minutes=mi, seconds=s)
    except (OverflowError, ValueError):  # ValueError: int() refuses more than 4,300 digits
        return None


# A float64 is below 1.8e308: an integer of more digits can never be a valid number.
_MAX_NUMBER_DIGITS = 309


def parse_number(text: str) -> int | float:
    """The value of a number literal. One that no float64 can hold is infinite, for the checker
    to report with the other literals out of bounds (and int() is never handed the more than
    4,300 digits it refuses).

    >>> parse_number("0.5"), parse_number("007"), parse_number("9" * 400)
    (0.5, 7, inf)
    """
    if "." in text:
        return float(text)
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_NUMBER_DIGITS else math.inf


def decode_string(raw: str) -> str | None:
    """The value of a string literal (with its quotes), or None when an escape is invalid."""
    if "\\" not in raw:
        return raw[1:-1]
    out = []
    i, body = 0, raw[1:-1]
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            return None
    return "".join(out)


# What a _Builder method gets: the values of the kept children of a rule (a method named `list`
# is one of them, hence the alias).
_Children = Sequence[Any]


def _binary(op: str) -> Callable[[_Builder, Span, _Children], ast.Binary]:
    """The _Builder method of a rule of the grammar that is `left OP right`."""
    def build(self: _Builder, span: Span, ch: _Children) -> ast.Binary:
        return ast.Binary(op, ch[0], ch[-1], span)
    return build


class _New:
    """The makers of the nodes `_Builder` builds (agp.frozen.maker)."""

    Span = maker(Span)
    Name = maker(ast.Name)
    Str = maker(ast.Str)
    DurationLit = maker(ast.DurationLit)
    Pattern = maker(ast.Pattern)
    Literal = maker(ast.Literal)
    ListExpr = maker(ast.ListExpr)
    NameRef = maker(ast.NameRef)
    Attr = maker(ast.Attr)
    Unary = maker(ast.Unary)
    Binary = maker(ast.Binary)
    Has = maker(ast.Has)
    Is = maker(ast.Is)
    Quant = maker(ast.Quant)
    Call = maker(ast.Call)
    Field = maker(ast.Field)
    Schema = maker(ast.Schema)
    ModuleDecl = maker(ast.ModuleDecl)
    Import = maker(ast.Import)
    DataclassDecl = maker(ast.DataclassDecl)
    IntentDecl = maker(ast.IntentDecl)
    AgentDecl = maker(ast.AgentDecl)
    ToolDecl = maker(ast.ToolDecl)
    DelegateClause = maker(ast.DelegateClause)
    TaskDecl = maker(ast.TaskDecl)
    Defaults = maker(ast.Defaults)
    OnIntent = maker(ast.OnIntent)
    Rule = maker(ast.Rule)


class _Builder:
    """Our AST from the children of each rule of the grammar, as `_drive` reduces it: a method
    per rule (or alias), given the node's span and the kept children (tokens, or what the methods
    of the rules below returned)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        # The first mistake met (an invalid escape): the item is reported and dropped. Building
        # goes on, so that an item too deeply nested is reported as that first, as it always was.
        self.problem: Diagnostic | None = None

    def _tspan(self, tok: Tok) -> Span:
        return _New.Span(self.source, tok.start_pos, tok.end_pos)

    def _name(self, tok: Tok) -> ast.Name:
        return _New.Name(tok.value, _New.Span(self.source, tok.start_pos, tok.end_pos))

    def _str(self, tok: Tok) -> ast.Str:
        return self._string(tok.value, self._tspan(tok))

    def _string(self, text: str, span: Span) -> ast.Str:
        return _New.Str(self._decoded(text, span), span)

    def _decoded(self, text: str, span: Span) -> str:
        """The value of a string literal, or its text when an escape is invalid (the mistake is
        kept, for the item to be reported and dropped)."""
        value = decode_string(text)
        if value is None:
            if self.problem is None:
                self.problem = error("syntax", span, "invalid escape in string",
                                     r'valid escapes: \" \\ \/ \n \t \r \b \f \uXXXX')
            return text
        return value

    def _duration(self, tok: Tok) -> ast.DurationLit:
        return _New.DurationLit(self._duration_value(tok.value), self._tspan(tok))

    @staticmethod
    def _duration_value(text: str) -> timedelta:
        value = parse_duration(text)
        # Too large to represent: kept beyond every bound, like a number too large (see
        # parse_number), for the checker to report.
        return timedelta.max if value is None else value

    @staticmethod
    def _clauses(children: _Children) -> dict[str, Any]:
        return {c[0]: c[1] for c in children if isinstance(c, tuple) and len(c) == 2
                and isinstance(c[0], str)}

    # declarations
    def module_decl(self, span: Span, ch: _Children) -> ast.ModuleDecl:
        return _New.ModuleDecl(ch[0], span)

    def import_decl(self, span: Span, ch: _Children) -> ast.Import:
        return _New.Import(ch[0], span)

    def dotted(self, span: Span, ch: _Children) -> ast.Name:
        return _New.Name(".".join([t.value for t in ch]), span)

    def names(self, span: Span, ch: _Children) -> tuple[ast.Name, ...]:
        return tuple([self._name(t) for t in ch])

    def dataclass_decl(self, span: Span, ch: _Children) -> ast.DataclassDecl:
        return _New.DataclassDecl(self._name(ch[0]), ch[1] if len(ch) > 1 else (), span)

    def intent_decl(self, span: Span, ch: _Children) -> ast.IntentDecl:
        return _New.IntentDecl(ch[0], span)

    def agent_decl(self, span: Span, ch: _Children) -> ast.AgentDecl:
        return _New.AgentDecl(self._name(ch[0]), self._str(ch[1]), span)

    def pattern(self, span: Span, ch: _Children) -> ast.Pattern:
        return _New.Pattern(".".join(t.value for t in ch), span)

    def quoted_pattern(self, span: Span, ch: _Children) -> ast.Pattern:
        return _New.Pattern(self._str(ch[0]).value, span, quoted=True)

    def patterns(self, span: Span, ch: _Children) -> tuple[ast.Pattern, ...]:
        return tuple(ch)

    def field(self, span: Span, ch: _Children) -> ast.Field:
        optional = len(ch) == 3
        return _New.Field(self._name(ch[0]), self._name(ch[-1]), optional, span)

    def type_name(self, span: Span, ch: _Children) -> Any:
        return ch[0]

    def schema(self, span: Span, ch: _Children) -> ast.Schema:
        return _New.Schema(tuple(ch), span)

    def intents_clause(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("intents", ch[0])

    def tool_data(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("data", ch[0])

    def args_clause(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("args", ch[0])

    def tool_decl(self, span: Span, ch: _Children) -> ast.ToolDecl:
        c = self._clauses(ch[1:])
        return _New.ToolDecl(ch[0], c.get("intents", ()), c.get("data", ()), c.get("args"),
                            span)

    def params_clause(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("params", ch[0])

    def tools_clause(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("tools", ch[0])

    def ceiling_clause(self, span: Span, ch: _Children) -> tuple[str, ast.Name]:
        return ("ceiling", self._name(ch[0]))

    def ttl_clause(self, span: Span, ch: _Children) -> tuple[str, ast.DurationLit]:
        return ("ttl", self._duration(ch[0]))

    def max_ttl_clause(self, span: Span, ch: _Children) -> tuple[str, ast.DurationLit]:
        return ("max_ttl", self._duration(ch[0]))

    def delegate_to(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("to", ch[0])

    def delegate_depth(self, span: Span, ch: _Children) -> tuple[str, ast.Literal]:
        return ("depth", _New.Literal(parse_number(ch[0].value), self._tspan(ch[0])))

    def delegate_clause(self, span: Span, ch: _Children) -> tuple[str, ast.DelegateClause]:
        c = self._clauses(ch)
        return ("delegate", _New.DelegateClause(c.get("to"), c.get("depth"), span))

    def task_decl(self, span: Span, ch: _Children) -> ast.TaskDecl:
        c = self._clauses(ch[1:])
        return _New.TaskDecl(self._name(ch[0]), c.get("params"), c.get("tools"), c.get("intents"),
                            c.get("ceiling"), c.get("ttl"), c.get("delegate"), span)

    def defaults_decl(self, span: Span, ch: _Children) -> ast.Defaults:
        c = self._clauses(ch)
        return _New.Defaults(c.get("ttl"), c.get("max_ttl"), span)

    # rules
    def effect(self, span: Span, ch: _Children) -> str:
        tok: Tok = ch[0]
        return tok.value

    def on_intent(self, span: Span, ch: _Children) -> ast.OnIntent:
        return _New.OnIntent(self._name(ch[0]), span)

    def on_clause(self, span: Span, ch: _Children) -> tuple[str, tuple[Any, ...]]:
        return ("on", tuple(ch))

    def in_clause(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("tasks", ch[0])

    def by_clause(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("agents", ch[0])

    def when_clause(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("when", ch[0])

    def unless_clause(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("unless", ch[0])

    def because_clause(self, span: Span, ch: _Children) -> tuple[str, ast.Str]:
        return ("because", self._str(ch[0]))

    def rule(self, span: Span, ch: _Children) -> ast.Rule:
        c = self._clauses(ch[2:])
        return _New.Rule(ch[0], self._name(ch[1]), c.get("on"), c.get("tasks"), c.get("agents"),
                        c.get("when"), c.get("unless"), c.get("ttl"), c.get("because"),
                        span)

    # expressions
    or_ = _binary("or")
    and_ = _binary("and")
    in_ = _binary("in")
    matches = _binary("matches")
    add = _binary("+")
    sub = _binary("-")

    def compare(self, span: Span, ch: _Children) -> ast.Binary:
        return _New.Binary(ch[1], ch[0], ch[2], span)

    def cmp_op(self, span: Span, ch: _Children) -> str:
        tok: Tok = ch[0]
        return tok.value

    def not_(self, span: Span, ch: _Children) -> ast.Unary:
        return _New.Unary("not", ch[0], span)

    def neg(self, span: Span, ch: _Children) -> ast.Unary:
        return _New.Unary("-", ch[0], span)

    def has(self, span: Span, ch: _Children) -> ast.Has:
        tok = ch[1]
        name = self._str(tok).value if tok.type == "STRING" else tok.value
        return _New.Has(ch[0], _New.Name(name, self._tspan(tok)), span)

    def is_(self, span: Span, ch: _Children) -> ast.Is:
        return _New.Is(ch[0], self._name(ch[1]), span)

    def attr(self, span: Span, ch: _Children) -> ast.Attr:
        return _New.Attr(ch[0], self._name(ch[1]), span)

    def list(self, span: Span, ch: _Children) -> ast.ListExpr:
        return _New.ListExpr(tuple(ch), span)

    def quantifier(self, span: Span, ch: _Children) -> str:
        tok: Tok = ch[0]
        return tok.value

    def quant(self, span: Span, ch: _Children) -> ast.Quant:
        cond = ch[3] if len(ch) == 5 else None  # `if COND` is optional
        return _New.Quant(ch[0], self._name(ch[1]), ch[2], cond, ch[-1], span)

    def call(self, span: Span, ch: _Children) -> ast.Call:
        return _New.Call(self._name(ch[0]), tuple(ch[1:]), span)

    def name_ref(self, span: Span, ch: _Children) -> ast.NameRef:
        return _New.NameRef(ch[0].value, span)

    def literal(self, span: Span, ch: _Children) -> ast.Literal:
        tok: Tok = ch[0]  # its one token: the literal's span is the token's
        return self._value(tok.type, tok.value, span)

    def literal_list(self, span: Span, ch: _Children) -> ast.ListExpr:
        tok: Tok = ch[0]
        source, base, value = self.source, tok.start_pos, self._value
        return _New.ListExpr(tuple([
            value(cast(str, m.lastgroup), m.group(),
                  _New.Span(source, base + m.start(), base + m.end()))
            for m in _list_pattern(punctuation=False).finditer(tok.value)]), span)

    def _value(self, kind: str, text: str, span: Span) -> ast.Literal:
        if kind == "STRING":
            return _New.Literal(self._decoded(text, span), span)
        if kind == "NUMBER":
            return _New.Literal(parse_number(text), span)
        if kind == "DURATION":
            return _New.Literal(self._duration_value(text), span)
        return _New.Literal(kind == "TRUE", span)
