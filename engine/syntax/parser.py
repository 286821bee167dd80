"""Text to AST, one top-level item at a time.

The file is lexed whole (recovering from bad characters), cut into items at the reserved words
that start them, and each item is fed to the LALR parser on its own: a syntax error invalidates
only the item it is in (LANGUAGE.md §1). The parser builds our AST as it reduces (`_drive`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cache
from importlib import resources
from typing import Any, cast

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedToken
from lark.lexer import UnlessCallback
from lark.parsers.lalr_analysis import Shift

from agp.diagnostics import Diagnostic, did_you_mean, error
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
    tokens, comments = _lex(source, diagnostics)
    items: list[ast.Item] = []
    unparsed: list[tuple[str, str]] = []
    doc_lines = _doc_lines(comments)
    for chunk in split_items(tokens):
        item = _parse_item(source, chunk, diagnostics)
        if item is not None:
            items.append(_with_doc(item, doc_lines))
        else:
            unparsed.extend(_declared(chunk))
    return ParsedFile(source, tuple(items), tuple(comments), tuple(diagnostics), tuple(unparsed))


# ---- lexing ---------------------------------------------------------------------------------


def tokenize(source: Source, diagnostics: list[Diagnostic]) -> tuple[list[Token], list[Comment]]:
    """The tokens of a file (reserved words after `.`/`has` made names) and its comments.

    Bad characters are reported into `diagnostics` and skipped; offsets are kept. A list of
    literals comes as its tokens (`[`, items, `,`, `]`), as any other list.
    """
    tokens, comments = _lex(source, diagnostics)
    if any(t.type == "LITERAL_LIST" for t in tokens):
        tokens = [part for t in tokens
                  for part in (split_list(t) if t.type == "LITERAL_LIST" else (t,))]
    return tokens, comments


def split_list(tok: Token) -> list[Token]:
    """The tokens of a LITERAL_LIST token: `[`, the items, the commas and `]`."""
    return [Token(kind, text, start, end_pos=end) for kind, text, start, end in _list_parts(tok)]


def _list_parts(tok: Token) -> Iterator[tuple[str, str, int, int]]:
    """(terminal, text, start, end) of each part of a LITERAL_LIST token, in order."""
    base = _start(tok)
    for m in _list_pattern().finditer(tok):
        yield cast(str, m.lastgroup), m.group(), base + m.start(), base + m.end()


_PUNCTUATION = frozenset(("COMMA", "LSQB", "RSQB"))


@cache
def _list_pattern() -> re.Pattern[str]:
    terminals = {t.name: t.pattern.to_regexp() for t in lark_parser().terminals}
    parts = ("STRING", "DURATION", "NUMBER", "TRUE", "FALSE", *_PUNCTUATION)
    return re.compile("|".join(f"(?P<{name}>{terminals[name]})" for name in parts))


# The tokens a list of literals is made of (whitespace aside). Lexing `[` first tries to read a
# whole list of literals as one LITERAL_LIST token; that attempt reads on through such tokens only.
_LIST_PARTS = frozenset(("COMMA", "STRING", "NUMBER", "DURATION", "TRUE", "FALSE"))


@dataclass(frozen=True, slots=True)
class _Scanner:
    """lark's lexer for the grammar, as one regular expression: `_scan` runs it in a loop of its
    own, without lark's per-token machinery (a third of a parse)."""

    pattern: re.Pattern[str]  # every terminal, in lark's order of preference, as a named group
    keywords: dict[str, dict[str, str]]  # terminal -> its texts that are keywords -> keyword
    newline_types: frozenset[str]  # the terminals that may hold a line break


@cache
def _scanner() -> _Scanner:
    lexer = lark_parser()._build_lexer(dont_ignore=True)
    scanner = lexer.scanner
    assert len(scanner._mres) == 1  # the grammar has few terminals: one pattern holds them all
    keywords: dict[str, dict[str, str]] = {}
    for terminal, callback in lexer.callback.items():
        # lark's UnlessCallback: a NAME whose whole text is a keyword is that keyword.
        assert isinstance(callback, UnlessCallback), callback
        words = callback.scanner.terminals
        assert all(t.pattern.type == "str" and not t.pattern.flags for t in words)
        keywords[terminal] = {t.pattern.value: t.name for t in words}
    return _Scanner(scanner._mres[0], keywords, lexer.newline_types)


def _scan(text: str, start: int) -> tuple[list[Token], int | None]:
    """The tokens of `text` from `start`, comments included, whitespace left out, as lark's lexer
    makes them (positions, lines and columns); and where a character no token matches stands,
    or None at the end of the text. tests/test_parser.py holds it equal to lark's lexer."""
    scanner = _scanner()
    match, keywords, newline_types = scanner.pattern.match, scanner.keywords, scanner.newline_types
    line = text.count("\n", 0, start) + 1
    line_start = text.rfind("\n", 0, start) + 1
    tokens: list[Token] = []
    pos, end = start, len(text)
    while pos < end:
        m = match(text, pos)
        if m is None:
            return tokens, pos
        value = m.group()
        kind: str = m.lastgroup  # type: ignore[assignment]  # a terminal's group matched
        after = m.end()
        if kind == "WS":
            newlines = value.count("\n")
            if newlines:
                line += newlines
                line_start = pos + value.rindex("\n") + 1
            pos = after
            continue
        if kind in keywords:
            kind = keywords[kind].get(value, kind)
        # lark's Token, made as its lexer makes it, without the layers of its constructor.
        tok = str.__new__(Token, value)
        tok.type, tok.value, tok.start_pos = kind, value, pos
        tok.line, tok.column = line, pos - line_start + 1
        if kind in newline_types and "\n" in value:  # a list of literals over several lines
            line += value.count("\n")
            line_start = pos + value.rindex("\n") + 1
        tok.end_line, tok.end_column, tok.end_pos = line, after - line_start + 1, after
        tokens.append(tok)
        pos = after
    return tokens, None


def _recovering_lex(source: Source, diagnostics: list[Diagnostic]) -> list[Token] | None:
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
    raw: list[Token] = []
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
        start = _start(raw[resume]) if raw else 0
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


def _lex(source: Source, diagnostics: list[Diagnostic]) -> tuple[list[Token], list[Comment]]:
    """`tokenize`, where a list of literals is one LITERAL_LIST token."""
    raw = _recovering_lex(source, diagnostics)
    if raw is None:
        return [], []
    tokens: list[Token] = []
    comments: list[Comment] = []
    for tok in raw:
        if tok.type == "COMMENT":
            comments.append(Comment(str(tok), _tok_span(source, tok)))
        else:
            # A reserved word after `.` or `has` is a plain name: `args.data`, `std.intents`.
            # Only the keyword `has` counts: in `on t.has unless ...`, `has` is a name.
            if tokens and (tokens[-1].value == "." or (
                    tokens[-1].value == "has" and _is_keyword(tokens[-1]))) and _is_keyword(tok):
                tok = Token.new_borrow_pos("NAME", tok.value, tok)
            # So is a field name before `:` or `?:`, where only a name can stand
            # (`args { to: string }`, `any(x in data: ...)` reads the same either way).
            elif tokens and tok.value in (":", "?") and _is_keyword(tokens[-1]) \
                    and tokens[-1].value not in ("true", "false"):
                tokens[-1] = Token.new_borrow_pos("NAME", tokens[-1].value, tokens[-1])
            tokens.append(tok)
    return tokens, comments


def _is_keyword(tok: Token) -> bool:
    return tok.type not in ("NAME", "STRING") and tok.value in RESERVED


def split_items(tokens: list[Token]) -> list[list[Token]]:
    """Cut a file's tokens into top-level items (LANGUAGE.md §1), even around broken ones."""
    chunks: list[list[Token]] = []
    braces = 0
    for i, tok in enumerate(tokens):
        if _starts_item(tokens, i, braces) or not chunks:
            chunks.append([])
            braces = 0
        chunks[-1].append(tok)
        if tok.type != "STRING":
            if tok.value == "{":
                braces += 1
            elif tok.value == "}" and braces > 0:
                braces -= 1
    return chunks


def _starts_item(tokens: list[Token], i: int, braces: int) -> bool:
    """Whether token i begins a top-level item, even after an unclosed bracket."""
    tok = tokens[i]
    if tok.type in ("NAME", "STRING"):
        return False
    if tok.value in ITEM_WORDS:
        return True
    if tok.value in DECL_WORDS:
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if nxt is None or nxt.type not in ("NAME", "STRING", "STAR"):
            return False
        if tok.value != "intent":  # `agent x`, `tool x`, `task x` never occur inside an item
            return True
        # `intent x` is also a clause of tool and task bodies and of a rule's `on` list.
        return braces == 0 and not (i > 0 and tokens[i - 1].value in ("on", ","))
    return False


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


def _parse_item(source: Source, chunk: list[Token],
                diagnostics: list[Diagnostic]) -> ast.Item | None:
    """One top-level item's AST, or None when none can be built (its errors are reported)."""
    repaired = _repair(source, chunk, diagnostics)
    if repaired is None:
        return None
    chunk = repaired
    built, at = _drive(source, chunk)
    if built is None:
        accepted = _accepted(chunk, at)
        tok = chunk[at] if at < len(chunk) else Token.new_borrow_pos("$END", "", chunk[-1])
        diagnostics.append(_syntax_error(source, chunk, at, tok, accepted))
        recovered = _recover(source, chunk, at, accepted)
        if recovered is None:
            return None
        built, chunk = recovered
    if built.height > MAX_EXPR_DEPTH + 1:  # a node deeper than MAX_EXPR_DEPTH below the item
        deepest = _deepest(_lark_tree(chunk))
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


def _drive(source: Source, tokens: list[Token]) -> tuple[_Built | None, int]:
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
    shape = tuple([tok.type for tok in tokens])
    known = _SHAPES.get(shape)
    if known is None:
        known = _actions(shape)
        if len(_SHAPES) >= MAX_SHAPES:
            _SHAPES.clear()  # a file of ever new shapes: start again rather than grow
        _SHAPES[shape] = known
    steps, at = known
    if steps is None:
        return None, at
    return _build(source, tokens, steps), n


# The reductions an item's terminals go through depend on the terminals alone (LR parsing reads
# nothing else), and a policy's items come in few shapes: ten thousand rules of the benchmark,
# in two. So the table is walked once per shape, and the steps it gave are replayed for every
# item of that shape, without the table and without the reductions that only change the state
# (a `?rule` of one symbol: half of all reductions). Bounded: an item is at most a few hundred
# bytes of steps.
MAX_SHAPES = 4096
_SHAPES: dict[tuple[str, ...], tuple[tuple[_Reduction | None, ...] | None, int]] = {}


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


def _build(source: Source, tokens: list[Token], steps: tuple[_Reduction | None, ...]) -> _Built:
    """The item the steps of `_actions` make of these tokens."""
    builder = _Builder(source)
    # Each symbol on the stack: its value, where its text starts and ends, and its height.
    values: list[tuple[Any, Any, Any, int]] = []
    next_token = iter(tokens).__next__
    for r in steps:
        if r is None:
            tok = next_token()
            values.append((tok, tok.start_pos, tok.end_pos, 0))
            continue
        popped = values[-r.size:]
        del values[-r.size:]
        children: list[Any] = []
        height = 0
        for index, splice in r.keep:
            value, _, _, h = popped[index]
            if splice:  # a `_rule`'s children; its list is ours to grow (left recursion)
                if children:
                    children.extend(value)
                else:
                    children = value
            else:
                children.append(value)
            if h > height:
                height = h
        start, end = popped[0][1], popped[-1][2]
        if r.build is not None:
            node = r.build(builder, Span(source, start, end), children)
            height += 1
        else:
            node = children if r.splice else children[0]
        values.append((node, start, end, height))
    (node, _, _, height), = values
    return _Built(node, height, builder.problem)


def _lark_tree(tokens: list[Token]) -> Tree[Token] | None:
    """lark's own tree of an item that parses (for the rare error that needs its shape)."""
    parser = lark_parser().parse_interactive()
    try:
        for tok in tokens:
            parser.feed_token(tok)
        tree: Tree[Token] = parser.feed_eof(tokens[-1])  # type: ignore[no-untyped-call]
        return tree
    except UnexpectedToken:
        return None


def _accepted(tokens: list[Token], at: int) -> set[str]:
    """The terminals the parser accepts after tokens[:at]: exactly those, where the set of an
    LALR error is a superset (its states are shared by several contexts)."""
    parser = lark_parser().parse_interactive()
    for tok in tokens[:at]:
        parser.feed_token(tok)
    accepted: set[str] = parser.accepts()  # type: ignore[no-untyped-call]
    return accepted


def _repair(source: Source, chunk: list[Token],
            diagnostics: list[Diagnostic]) -> list[Token] | None:
    """Report the mistakes the lexer recognises (the BAD_ tokens) with their fix, and put the fix
    in their place so that the rest of the item is still parsed and checked. None when the fix
    is unclear: the item is dropped."""
    if not any(t.type.startswith("BAD_") for t in chunk):
        return chunk
    out: list[Token] = []
    for tok in chunk:
        span = _tok_span(source, tok)
        if tok.type == "BAD_OPERATOR":
            fix = _OPERATORS[str(tok)]
            diagnostics.append(error("syntax", span, f"`{tok}` is not an operator in agp",
                                     f"write `{fix}`"))
            tok = Token.new_borrow_pos(_terminal_names()[fix], fix, tok)
        elif tok.type == "BAD_STRING":
            fix = _double_quoted(str(tok))
            diagnostics.append(error("syntax", span, "strings are written in double quotes",
                                     f"write `{fix}`"))
            tok = Token.new_borrow_pos("STRING", fix, tok)
        elif tok.type == "BAD_NUMBER":
            duration = suggest_duration(str(tok))
            diagnostics.append(error("syntax", span, f"invalid number or duration `{tok}`",
                                     _duration_hint(duration)))
            if duration is None:
                return None
            tok = Token.new_borrow_pos("DURATION", duration, tok)
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


def _syntax_error(source: Source, chunk: list[Token], at: int, tok: Token,
                  accepted: set[str]) -> Diagnostic:
    expected = _expected(accepted)
    if accepted == {"$END"}:  # words after a complete item, which they do not start
        expected = "the start of an item (`permit`, `forbid`, `ask`, `tool`, `task`, ...)"
    if tok.type == "$END":
        last = chunk[-1]
        opened = _unclosed(chunk)
        return error("syntax", Span(source, _end(last), _end(last)),
                     f"`{chunk[0]}` item ends too early after `{last}`; expected {expected}",
                     f"close the `{{` of line {opened.line} with `}}`" if opened else None)
    if tok.type == "LITERAL_LIST":  # underline its `[`, as for any other token
        return error("syntax", Span(source, _start(tok), _start(tok) + 1),
                     f"unexpected `[`; expected {expected}")
    duration = _duration_around(source, chunk, at)
    if duration is not None:
        span, fix = duration
        return error("syntax", span, f"`{span.text}` is not a duration", _duration_hint(fix))
    hint = None
    if tok.type == "NUMBER" and "DURATION" in accepted:  # `ttl 30`
        hint = _duration_hint(None)
    elif tok.type == "NAME":
        if str(tok) in _SYNONYMS:
            hint = f"did you mean `{_SYNONYMS[str(tok)]}`?"
        else:
            keywords = [t for t, n in _terminal_names().items()
                        if n in accepted and t.isidentifier()]
            hint = did_you_mean(str(tok), keywords)
    return error("syntax", _tok_span(source, tok), f"unexpected `{tok}`; expected {expected}", hint)


def _duration_around(source: Source, chunk: list[Token], at: int) -> tuple[Span, str] | None:
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
    span = Span(source, _start(chunk[first]), _end(chunk[last]))
    fix = suggest_duration(span.text)
    return (span, fix) if fix else None


def _unclosed(chunk: list[Token]) -> Token | None:
    """The innermost `{` of an item that is not closed."""
    opened: list[Token] = []
    for tok in chunk:
        if tok.type == "LBRACE":
            opened.append(tok)
        elif tok.type == "RBRACE" and opened:
            opened.pop()
    return opened[-1] if opened else None


def _recover(source: Source, chunk: list[Token], at: int,
             accepted: set[str]) -> tuple[_Built, list[Token]] | None:
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
    closers: list[Token] = []
    while _unclosed(chunk + closers) is not None:
        closers.append(Token("RBRACE", "}", last.end_pos, last.end_line, last.end_column,
                             last.end_line, last.end_column, last.end_pos))
        built = _drive(source, chunk + closers)[0]
        if built is not None:
            return built, chunk + closers
    return None


# Top-level keywords that declare names, and the kind of what they declare.
_DECLARES = {"dataclass": "class", "intent": "intent", "agent": "agent", "task": "task",
             "tool": "tool"}


def _declared(chunk: list[Token]) -> list[tuple[str, str]]:
    """What an item that does not parse declares, read from its tokens: [(kind, name)]."""
    kind = _DECLARES.get(chunk[0].value) if _is_keyword(chunk[0]) else None
    if kind is None:
        return []
    if kind == "tool":
        parts: list[str] = []
        for tok in chunk[1:]:
            if tok.type == "LBRACE":
                break
            parts.append((decode_string(tok) or "") if tok.type == "STRING" else str(tok))
        return [("tool", "".join(parts))] if parts else []
    found: list[tuple[str, str]] = []
    for i in range(1, len(chunk), 2):  # `intent a, b, c` declares several
        if chunk[i].type != "NAME":
            break
        found.append((kind, str(chunk[i])))
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


# The offsets of a token: lark types them optional, but every token of the lexer has them.
# (No `cast`: these run for most tokens of a parse, and a call is most of their cost.)
def _tok_span(source: Source, tok: Token) -> Span:
    return Span(source, tok.start_pos, tok.end_pos)  # type: ignore[arg-type]


def _start(tok: Token) -> int:
    return tok.start_pos  # type: ignore[return-value]


def _end(tok: Token) -> int:
    return tok.end_pos  # type: ignore[return-value]


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
_Children = list[Any]


def _binary(op: str) -> Callable[[_Builder, Span, _Children], ast.Binary]:
    """The _Builder method of a rule of the grammar that is `left OP right`."""
    def build(self: _Builder, span: Span, ch: _Children) -> ast.Binary:
        return ast.Binary(op, ch[0], ch[-1], span)
    return build


class _Builder:
    """Our AST from the children of each rule of the grammar, as `_drive` reduces it: a method
    per rule (or alias), given the node's span and the kept children (tokens, or what the methods
    of the rules below returned)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        # The first mistake met (an invalid escape): the item is reported and dropped. Building
        # goes on, so that an item too deeply nested is reported as that first, as it always was.
        self.problem: Diagnostic | None = None

    def _tspan(self, tok: Token) -> Span:
        return Span(self.source, tok.start_pos, tok.end_pos)  # type: ignore[arg-type]

    def _name(self, tok: Token) -> ast.Name:
        # A token's `value` is its text as a plain str, which str(tok) would copy.
        return ast.Name(tok.value, Span(self.source, tok.start_pos, tok.end_pos))  # type: ignore[arg-type]

    def _str(self, tok: Token) -> ast.Str:
        return self._string(str(tok), self._tspan(tok))

    def _string(self, text: str, span: Span) -> ast.Str:
        value = decode_string(text)
        if value is None:
            if self.problem is None:
                self.problem = error("syntax", span, "invalid escape in string",
                                     r'valid escapes: \" \\ \/ \n \t \r \b \f \uXXXX')
            return ast.Str(text, span)
        return ast.Str(value, span)

    def _duration(self, tok: Token) -> ast.DurationLit:
        return ast.DurationLit(self._duration_value(str(tok)), self._tspan(tok))

    @staticmethod
    def _duration_value(text: str) -> timedelta:
        value = parse_duration(text)
        # Too large to represent: kept beyond every bound, like a number too large (see
        # parse_number), for the checker to report.
        return timedelta.max if value is None else value

    @staticmethod
    def _clauses(children: list[Any]) -> dict[str, Any]:
        return {c[0]: c[1] for c in children if isinstance(c, tuple) and len(c) == 2
                and isinstance(c[0], str)}

    # declarations
    def module_decl(self, span: Span, ch: _Children) -> ast.ModuleDecl:
        return ast.ModuleDecl(ch[0], span)

    def import_decl(self, span: Span, ch: _Children) -> ast.Import:
        return ast.Import(ch[0], span)

    def dotted(self, span: Span, ch: _Children) -> ast.Name:
        return ast.Name(".".join(ch), span)

    def names(self, span: Span, ch: _Children) -> tuple[ast.Name, ...]:
        return tuple(self._name(t) for t in ch)

    def dataclass_decl(self, span: Span, ch: _Children) -> ast.DataclassDecl:
        return ast.DataclassDecl(self._name(ch[0]), ch[1] if len(ch) > 1 else (), span)

    def intent_decl(self, span: Span, ch: _Children) -> ast.IntentDecl:
        return ast.IntentDecl(ch[0], span)

    def agent_decl(self, span: Span, ch: _Children) -> ast.AgentDecl:
        return ast.AgentDecl(self._name(ch[0]), self._str(ch[1]), span)

    def pattern(self, span: Span, ch: _Children) -> ast.Pattern:
        return ast.Pattern(".".join(str(t) for t in ch), span)

    def quoted_pattern(self, span: Span, ch: _Children) -> ast.Pattern:
        return ast.Pattern(self._str(ch[0]).value, span, quoted=True)

    def patterns(self, span: Span, ch: _Children) -> tuple[ast.Pattern, ...]:
        return tuple(ch)

    def field(self, span: Span, ch: _Children) -> ast.Field:
        optional = len(ch) == 3
        return ast.Field(self._name(ch[0]), self._name(ch[-1]), optional, span)

    def type_name(self, span: Span, ch: _Children) -> Any:
        return ch[0]

    def schema(self, span: Span, ch: _Children) -> ast.Schema:
        return ast.Schema(tuple(ch), span)

    def intents_clause(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("intents", ch[0])

    def tool_data(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("data", ch[0])

    def args_clause(self, span: Span, ch: _Children) -> tuple[str, Any]:
        return ("args", ch[0])

    def tool_decl(self, span: Span, ch: _Children) -> ast.ToolDecl:
        c = self._clauses(ch[1:])
        return ast.ToolDecl(ch[0], c.get("intents", ()), c.get("data", ()), c.get("args"),
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
        return ("depth", ast.Literal(parse_number(str(ch[0])), self._tspan(ch[0])))

    def delegate_clause(self, span: Span, ch: _Children) -> tuple[str, ast.DelegateClause]:
        c = self._clauses(ch)
        return ("delegate", ast.DelegateClause(c.get("to"), c.get("depth"), span))

    def task_decl(self, span: Span, ch: _Children) -> ast.TaskDecl:
        c = self._clauses(ch[1:])
        return ast.TaskDecl(self._name(ch[0]), c.get("params"), c.get("tools"), c.get("intents"),
                            c.get("ceiling"), c.get("ttl"), c.get("delegate"), span)

    def defaults_decl(self, span: Span, ch: _Children) -> ast.Defaults:
        c = self._clauses(ch)
        return ast.Defaults(c.get("ttl"), c.get("max_ttl"), span)

    # rules
    def effect(self, span: Span, ch: _Children) -> str:
        return str(ch[0])

    def on_intent(self, span: Span, ch: _Children) -> ast.OnIntent:
        return ast.OnIntent(self._name(ch[0]), span)

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
        return ast.Rule(ch[0], self._name(ch[1]), c.get("on"), c.get("tasks"), c.get("agents"),
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
        return ast.Binary(str(ch[1]), ch[0], ch[2], span)

    def cmp_op(self, span: Span, ch: _Children) -> str:
        return str(ch[0])

    def not_(self, span: Span, ch: _Children) -> ast.Unary:
        return ast.Unary("not", ch[0], span)

    def neg(self, span: Span, ch: _Children) -> ast.Unary:
        return ast.Unary("-", ch[0], span)

    def has(self, span: Span, ch: _Children) -> ast.Has:
        tok = ch[1]
        name = self._str(tok).value if tok.type == "STRING" else str(tok)
        return ast.Has(ch[0], ast.Name(name, self._tspan(tok)), span)

    def is_(self, span: Span, ch: _Children) -> ast.Is:
        return ast.Is(ch[0], self._name(ch[1]), span)

    def attr(self, span: Span, ch: _Children) -> ast.Attr:
        return ast.Attr(ch[0], self._name(ch[1]), span)

    def list(self, span: Span, ch: _Children) -> ast.ListExpr:
        return ast.ListExpr(tuple(ch), span)

    def quantifier(self, span: Span, ch: _Children) -> str:
        return str(ch[0])

    def quant(self, span: Span, ch: _Children) -> ast.Quant:
        cond = ch[3] if len(ch) == 5 else None  # `if COND` is optional
        return ast.Quant(ch[0], self._name(ch[1]), ch[2], cond, ch[-1], span)

    def call(self, span: Span, ch: _Children) -> ast.Call:
        return ast.Call(self._name(ch[0]), tuple(ch[1:]), span)

    def name_ref(self, span: Span, ch: _Children) -> ast.NameRef:
        return ast.NameRef(str(ch[0]), span)

    def literal(self, span: Span, ch: _Children) -> ast.Literal:
        return self._literal(ch[0])

    def literal_list(self, span: Span, ch: _Children) -> ast.ListExpr:
        return ast.ListExpr(tuple(
            self._value(kind, text, Span(self.source, start, end))
            for kind, text, start, end in _list_parts(ch[0]) if kind not in _PUNCTUATION),
            span)

    def _literal(self, tok: Token) -> ast.Literal:
        return self._value(tok.type, str(tok), self._tspan(tok))

    def _value(self, kind: str, text: str, span: Span) -> ast.Literal:
        if kind == "STRING":
            return ast.Literal(self._string(text, span).value, span)
        if kind == "NUMBER":
            return ast.Literal(parse_number(text), span)
        if kind == "DURATION":
            return ast.Literal(self._duration_value(text), span)
        return ast.Literal(kind == "TRUE", span)
