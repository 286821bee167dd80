"""Text to AST, one top-level item at a time.

The file is lexed whole (recovering from bad characters), cut into items at the reserved words
that start them, and each item is fed to the LALR parser on its own: a syntax error invalidates
only the item it is in (LANGUAGE.md §1). A Transformer turns each Lark tree into our AST.
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

from lark import Lark, TextSlice, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedToken, VisitError
from lark.tree import Meta

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


# The tokens a list of literals is made of. Lexing `[` first tries to read a whole list of
# literals as one LITERAL_LIST token; that attempt reads on through such tokens only.
_LIST_PARTS = frozenset(("WS", "COMMA", "STRING", "NUMBER", "DURATION", "TRUE", "FALSE"))


def _recovering_lex(source: Source, diagnostics: list[Diagnostic]) -> list[Token] | None:
    """All the tokens of a file, whitespace and comments included, each bad character reported
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
    # For each token of `raw`, the index of the `[` that begins the list-of-literals tokens
    # it ends, or -1.
    opened: list[int] = []
    start = 0
    for _ in range(MAX_LEX_ERRORS):
        try:
            for tok in lark_parser().lex(TextSlice(text, start, len(text)), dont_ignore=True):
                if tok.type == "LSQB":
                    opened.append(len(raw))
                else:
                    opened.append(opened[-1] if opened and tok.type in _LIST_PARTS else -1)
                raw.append(tok)
            return raw
        except UnexpectedCharacters as exc:
            text = _blank_out(source, text, cast(int, exc.pos_in_stream), diagnostics)
        resume = opened[-1] if opened and opened[-1] >= 0 else max(len(raw) - 1, 0)
        start = _start(raw[resume]) if raw else 0
        del raw[resume:], opened[resume:]
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
        elif tok.type != "WS":
            # A reserved word after `.` or `has` is a plain name: `args.data`, `std.intents`.
            if tokens and tokens[-1].value in (".", "has") and _is_keyword(tok):
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
    tree, exc, at = _lalr(chunk)
    if exc is not None:
        accepted = _accepted(chunk, at)
        diagnostics.append(_syntax_error(source, chunk, at, exc.token, accepted))
        tree = _recover(chunk, at, accepted)
    if tree is None:  # (only after a syntax error)
        return None
    deepest = _deepest(tree)
    if deepest is not None:
        diagnostics.append(error(
            "limit", Span(source, deepest.meta.start_pos, deepest.meta.end_pos),
            f"expression nested more than {MAX_EXPR_DEPTH} levels deep",
            "split the condition into several rules, or use `in [...]` for long lists"))
        return None
    try:
        item: ast.Item = _Builder(source).transform(tree)
        return item
    except VisitError as exc:
        if isinstance(exc.orig_exc, _Problem):
            diagnostics.append(exc.orig_exc.diagnostic)
            return None
        raise


def _lalr(tokens: list[Token]) -> tuple[Tree[Token] | None, UnexpectedToken | None, int]:
    """(tree, None, len) or, on a syntax error, (None, the error, the index of its token)."""
    parser = lark_parser().parse_interactive()
    for i, tok in enumerate(tokens):
        try:
            parser.feed_token(tok)
        except UnexpectedToken as exc:
            return None, exc, i
    try:
        tree: Tree[Token] = parser.feed_eof(tokens[-1])  # type: ignore[no-untyped-call]
        return tree, None, len(tokens)
    except UnexpectedToken as exc:
        return None, exc, len(tokens)


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


def _recover(chunk: list[Token], at: int, accepted: set[str]) -> Tree[Token] | None:
    """What can be kept of an item with a syntax error, so that one mistake does not also make
    errors about the names the item declares: the item without the words after its end (`allow
    p ...` after a complete task), or the item with its unclosed blocks closed. Else None.
    A rule is never cut short: it would be checked as another rule (`when task.age > 30` of
    `when task.age > 30 minutes`), and nothing refers to a rule by its name."""
    if at < len(chunk):
        if at > 0 and "$END" in accepted and chunk[0].type not in ("PERMIT", "FORBID", "ASK"):
            return _lalr(chunk[:at])[0]
        return None
    last = chunk[-1]
    closers: list[Token] = []
    while _unclosed(chunk + closers) is not None:
        closers.append(Token("RBRACE", "}", last.end_pos, last.end_line, last.end_column,
                             last.end_line, last.end_column, last.end_pos))
        tree = _lalr(chunk + closers)[0]
        if tree is not None:
            return tree
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


def _deepest(tree: Tree[Token]) -> Tree[Token] | None:
    """The first subtree deeper than MAX_EXPR_DEPTH, found without recursion, or None."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPR_DEPTH:
            return node
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))
    return None


def _tok_span(source: Source, tok: Token) -> Span:
    return Span(source, _start(tok), _end(tok))


# The offsets of a token: lark types them optional, but every token of the lexer has them.
def _start(tok: Token) -> int:
    return cast(int, tok.start_pos)


def _end(tok: Token) -> int:
    return cast(int, tok.end_pos)


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


class _Problem(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


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


# What a _Builder method gets: the values of the children of a node of the Lark tree (a method
# named `list` is one of them, hence the alias).
_Children = list[Any]


def _binary(op: str) -> Callable[[_Builder, Meta, _Children], ast.Binary]:
    """The _Builder method of a rule of the grammar that is `left OP right`."""
    def build(self: _Builder, meta: Meta, ch: _Children) -> ast.Binary:
        return ast.Binary(op, ch[0], ch[-1], self._span(meta))
    return build


@v_args(meta=True)
class _Builder(Transformer[Token, ast.Item]):
    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source

    def _span(self, meta: Meta) -> Span:
        return Span(self.source, meta.start_pos, meta.end_pos)

    def _tspan(self, tok: Token) -> Span:
        return _tok_span(self.source, tok)

    def _name(self, tok: Token) -> ast.Name:
        return ast.Name(str(tok), self._tspan(tok))

    def _str(self, tok: Token) -> ast.Str:
        return self._string(str(tok), self._tspan(tok))

    def _string(self, text: str, span: Span) -> ast.Str:
        value = decode_string(text)
        if value is None:
            raise _Problem(error("syntax", span, "invalid escape in string",
                                 r'valid escapes: \" \\ \/ \n \t \r \b \f \uXXXX'))
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
    def module_decl(self, meta: Meta, ch: _Children) -> ast.ModuleDecl:
        return ast.ModuleDecl(ch[0], self._span(meta))

    def import_decl(self, meta: Meta, ch: _Children) -> ast.Import:
        return ast.Import(ch[0], self._span(meta))

    def dotted(self, meta: Meta, ch: _Children) -> ast.Name:
        return ast.Name(".".join(ch), self._span(meta))

    def names(self, meta: Meta, ch: _Children) -> tuple[ast.Name, ...]:
        return tuple(self._name(t) for t in ch)

    def dataclass_decl(self, meta: Meta, ch: _Children) -> ast.DataclassDecl:
        return ast.DataclassDecl(self._name(ch[0]), ch[1] if len(ch) > 1 else (), self._span(meta))

    def intent_decl(self, meta: Meta, ch: _Children) -> ast.IntentDecl:
        return ast.IntentDecl(ch[0], self._span(meta))

    def agent_decl(self, meta: Meta, ch: _Children) -> ast.AgentDecl:
        return ast.AgentDecl(self._name(ch[0]), self._str(ch[1]), self._span(meta))

    def pattern(self, meta: Meta, ch: _Children) -> ast.Pattern:
        return ast.Pattern(".".join(str(t) for t in ch), self._span(meta))

    def quoted_pattern(self, meta: Meta, ch: _Children) -> ast.Pattern:
        return ast.Pattern(self._str(ch[0]).value, self._span(meta), quoted=True)

    def patterns(self, meta: Meta, ch: _Children) -> tuple[ast.Pattern, ...]:
        return tuple(ch)

    def field(self, meta: Meta, ch: _Children) -> ast.Field:
        optional = len(ch) == 3
        return ast.Field(self._name(ch[0]), self._name(ch[-1]), optional, self._span(meta))

    def type_name(self, meta: Meta, ch: _Children) -> Any:
        return ch[0]

    def schema(self, meta: Meta, ch: _Children) -> ast.Schema:
        return ast.Schema(tuple(ch), self._span(meta))

    def intents_clause(self, meta: Meta, ch: _Children) -> tuple[str, Any]:
        return ("intents", ch[0])

    def tool_data(self, meta: Meta, ch: _Children) -> tuple[str, Any]:
        return ("data", ch[0])

    def args_clause(self, meta: Meta, ch: _Children) -> tuple[str, Any]:
        return ("args", ch[0])

    def tool_decl(self, meta: Meta, ch: _Children) -> ast.ToolDecl:
        c = self._clauses(ch[1:])
        return ast.ToolDecl(ch[0], c.get("intents", ()), c.get("data", ()), c.get("args"),
                            self._span(meta))

    def params_clause(self, meta: Meta, ch: _Children) -> tuple[str, Any]:
        return ("params", ch[0])

    def tools_clause(self, meta: Meta, ch: _Children) -> tuple[str, Any]:
        return ("tools", ch[0])

    def ceiling_clause(self, meta: Meta, ch: _Children) -> tuple[str, ast.Name]:
        return ("ceiling", self._name(ch[0]))

    def ttl_clause(self, meta: Meta, ch: _Children) -> tuple[str, ast.DurationLit]:
        return ("ttl", self._duration(ch[0]))

    def max_ttl_clause(self, meta: Meta, ch: _Children) -> tuple[str, ast.DurationLit]:
        return ("max_ttl", self._duration(ch[0]))

    def delegate_to(self, meta: Meta, ch: _Children) -> tuple[str, Any]:
        return ("to", ch[0])

    def delegate_depth(self, meta: Meta, ch: _Children) -> tuple[str, ast.Literal]:
        return ("depth", ast.Literal(parse_number(str(ch[0])), self._tspan(ch[0])))

    def delegate_clause(self, meta: Meta, ch: _Children) -> tuple[str, ast.DelegateClause]:
        c = self._clauses(ch)
        return ("delegate", ast.DelegateClause(c.get("to"), c.get("depth"), self._span(meta)))

    def task_decl(self, meta: Meta, ch: _Children) -> ast.TaskDecl:
        c = self._clauses(ch[1:])
        return ast.TaskDecl(self._name(ch[0]), c.get("params"), c.get("tools"), c.get("intents"),
                            c.get("ceiling"), c.get("ttl"), c.get("delegate"), self._span(meta))

    def defaults_decl(self, meta: Meta, ch: _Children) -> ast.Defaults:
        c = self._clauses(ch)
        return ast.Defaults(c.get("ttl"), c.get("max_ttl"), self._span(meta))

    # rules
    def effect(self, meta: Meta, ch: _Children) -> str:
        return str(ch[0])

    def on_intent(self, meta: Meta, ch: _Children) -> ast.OnIntent:
        return ast.OnIntent(self._name(ch[0]), self._span(meta))

    def on_clause(self, meta: Meta, ch: _Children) -> tuple[str, tuple[Any, ...]]:
        return ("on", tuple(ch))

    def in_clause(self, meta: Meta, ch: _Children) -> tuple[str, Any]:
        return ("tasks", ch[0])

    def by_clause(self, meta: Meta, ch: _Children) -> tuple[str, Any]:
        return ("agents", ch[0])

    def when_clause(self, meta: Meta, ch: _Children) -> tuple[str, Any]:
        return ("when", ch[0])

    def unless_clause(self, meta: Meta, ch: _Children) -> tuple[str, Any]:
        return ("unless", ch[0])

    def because_clause(self, meta: Meta, ch: _Children) -> tuple[str, ast.Str]:
        return ("because", self._str(ch[0]))

    def rule(self, meta: Meta, ch: _Children) -> ast.Rule:
        c = self._clauses(ch[2:])
        return ast.Rule(ch[0], self._name(ch[1]), c.get("on"), c.get("tasks"), c.get("agents"),
                        c.get("when"), c.get("unless"), c.get("ttl"), c.get("because"),
                        self._span(meta))

    # expressions
    or_ = _binary("or")
    and_ = _binary("and")
    in_ = _binary("in")
    matches = _binary("matches")
    add = _binary("+")
    sub = _binary("-")

    def compare(self, meta: Meta, ch: _Children) -> ast.Binary:
        return ast.Binary(str(ch[1]), ch[0], ch[2], self._span(meta))

    def cmp_op(self, meta: Meta, ch: _Children) -> str:
        return str(ch[0])

    def not_(self, meta: Meta, ch: _Children) -> ast.Unary:
        return ast.Unary("not", ch[0], self._span(meta))

    def neg(self, meta: Meta, ch: _Children) -> ast.Unary:
        return ast.Unary("-", ch[0], self._span(meta))

    def has(self, meta: Meta, ch: _Children) -> ast.Has:
        tok = ch[1]
        name = self._str(tok).value if tok.type == "STRING" else str(tok)
        return ast.Has(ch[0], ast.Name(name, self._tspan(tok)), self._span(meta))

    def is_(self, meta: Meta, ch: _Children) -> ast.Is:
        return ast.Is(ch[0], self._name(ch[1]), self._span(meta))

    def attr(self, meta: Meta, ch: _Children) -> ast.Attr:
        return ast.Attr(ch[0], self._name(ch[1]), self._span(meta))

    def list(self, meta: Meta, ch: _Children) -> ast.ListExpr:
        return ast.ListExpr(tuple(ch), self._span(meta))

    def quantifier(self, meta: Meta, ch: _Children) -> str:
        return str(ch[0])

    def quant(self, meta: Meta, ch: _Children) -> ast.Quant:
        cond = ch[3] if len(ch) == 5 else None  # `if COND` is optional
        return ast.Quant(ch[0], self._name(ch[1]), ch[2], cond, ch[-1], self._span(meta))

    def call(self, meta: Meta, ch: _Children) -> ast.Call:
        return ast.Call(self._name(ch[0]), tuple(ch[1:]), self._span(meta))

    def name_ref(self, meta: Meta, ch: _Children) -> ast.NameRef:
        return ast.NameRef(str(ch[0]), self._span(meta))

    def literal(self, meta: Meta, ch: _Children) -> ast.Literal:
        return self._literal(ch[0])

    def literal_list(self, meta: Meta, ch: _Children) -> ast.ListExpr:
        return ast.ListExpr(tuple(
            self._value(kind, text, Span(self.source, start, end))
            for kind, text, start, end in _list_parts(ch[0]) if kind not in _PUNCTUATION),
            self._span(meta))

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
