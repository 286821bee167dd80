"""Text to AST, one top-level item at a time.

The file is lexed whole (recovering from bad characters), cut into items at the reserved words
that start them, and each item is fed to the LALR parser on its own: a syntax error invalidates
only the item it is in (LANGUAGE.md §1). A Transformer turns each Lark tree into our AST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedToken, VisitError

from agp.diagnostics import Diagnostic, error
from agp.limits import MAX_EXPR_DEPTH
from agp.source import Source, Span
from agp.syntax import ast

RESERVED = frozenset(
    "module import dataclass intent intents agent tool task defaults permit forbid ask on in by "
    "when unless ttl because and or not is has matches any all true false "
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


@cache
def lark_parser() -> Lark:
    grammar = resources.files("agp.grammar").joinpath("agp.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="basic", start="item", strict=True,
                propagate_positions=True, maybe_placeholders=False, cache=True)


def parse(source: Source) -> ParsedFile:
    """Parse one file. Never raises on bad input: problems come back as diagnostics."""
    diagnostics: list[Diagnostic] = []
    tokens, comments = tokenize(source, diagnostics)
    items: list[ast.Item] = []
    for chunk in split_items(tokens):
        item = _parse_item(source, chunk, diagnostics)
        if item is not None:
            items.append(_with_doc(item, comments))
    return ParsedFile(source, tuple(items), tuple(comments), tuple(diagnostics))


# ---- lexing ---------------------------------------------------------------------------------


def tokenize(source: Source, diagnostics: list[Diagnostic]) -> tuple[list[Token], list[Comment]]:
    """The tokens of a file (reserved words after `.`/`has` made names) and its comments.

    Bad characters are reported into `diagnostics` and skipped; offsets are kept.
    """
    text = source.text
    for _ in range(MAX_LEX_ERRORS):
        try:
            raw = list(lark_parser().lex(text, dont_ignore=True))
            break
        except UnexpectedCharacters as exc:
            pos = exc.pos_in_stream
            ch = text[pos]
            span = Span(source, pos, pos + 1)
            if ch == '"':
                diagnostics.append(error("syntax", span, "unterminated string",
                                         'close the string with `"` on the same line'))
                # Close it at the end of its line (keeping every offset) so that one mistake
                # makes one error.
                eol = text.find("\n", pos)
                eol = len(text) if eol < 0 else eol
                if eol - pos >= 2:
                    text = text[: eol - 1] + '"' + text[eol:]
                    continue
            else:
                diagnostics.append(error("syntax", span, f"unexpected character {ch!r}"))
            # Blank the character out (keeping every offset) and lex again.
            text = text[:pos] + " " + text[pos + 1 :]
    else:
        return [], []
    tokens: list[Token] = []
    comments: list[Comment] = []
    for tok in raw:
        if tok.type == "COMMENT":
            comments.append(Comment(str(tok), Span(source, tok.start_pos, tok.end_pos)))
        elif tok.type != "WS":
            # A reserved word after `.` or `has` is a plain name: `args.data`, `std.intents`.
            if tokens and tokens[-1].value in (".", "has") and tok.value in RESERVED:
                tok = Token.new_borrow_pos("NAME", tok.value, tok)
            tokens.append(tok)
    return tokens, comments


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
    "OPTIONAL": "`?`",
}


def _describe(terminal: str) -> str:
    if terminal in _TOKEN_NAMES:
        return _TOKEN_NAMES[terminal]
    for term in lark_parser().terminals:
        if term.name == terminal:
            return f"`{term.pattern.value}`"
    return terminal


def _expected(names) -> str:
    described = sorted({_describe(n) for n in names if n != "BAD_NUMBER"})
    if len(described) > 10:
        described = described[:10] + ["..."]
    return ", ".join(described)


def _parse_item(source: Source, chunk: list[Token], diagnostics: list[Diagnostic]):
    parser = lark_parser().parse_interactive()
    try:
        for tok in chunk:
            if tok.type == "BAD_NUMBER":
                diagnostics.append(error(
                    "syntax", _tok_span(source, tok), f"invalid number or duration `{tok}`",
                    "a duration is integer-and-unit pairs d, h, m, s in that order, "
                    "without spaces (`30s`, `5m`, `1h30m`); it may not run into a letter"))
                return None
            parser.feed_token(tok)
        tree = parser.feed_eof(chunk[-1])
    except UnexpectedToken as exc:
        tok = exc.token
        if tok.type == "$END":
            last = chunk[-1]
            span = Span(source, last.end_pos, last.end_pos)
            first = chunk[0]
            msg = f"`{first}` item ends too early after `{last}`; expected {_expected(exc.expected)}"
        else:
            span = _tok_span(source, tok)
            msg = f"unexpected `{tok}`; expected {_expected(exc.expected)}"
        diagnostics.append(error("syntax", span, msg))
        return None
    deepest = _deepest(tree)
    if deepest is not None:
        diagnostics.append(error(
            "limit", Span(source, deepest.meta.start_pos, deepest.meta.end_pos),
            f"expression nested more than {MAX_EXPR_DEPTH} levels deep",
            "split the condition into several rules, or use `in [...]` for long lists"))
        return None
    try:
        return _Builder(source).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, _Problem):
            diagnostics.append(exc.orig_exc.diagnostic)
            return None
        raise


def _deepest(tree):
    """The first subtree deeper than MAX_EXPR_DEPTH, found without recursion, or None."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPR_DEPTH:
            return node
        stack.extend((c, depth + 1) for c in getattr(node, "children", ()) if hasattr(c, "children"))
    return None


def _tok_span(source: Source, tok: Token) -> Span:
    return Span(source, tok.start_pos, tok.end_pos)


def _with_doc(item, comments: list[Comment]):
    """Attach the `##` lines directly above an item (no blank line between) as its doc."""
    line = item.span.line
    by_line = {c.span.line: c for c in comments if c.is_doc and c.span.column == _indent(c)}
    lines = []
    while (line - 1) in by_line:
        line -= 1
        lines.append(by_line[line].text[2:].removeprefix(" "))
    if not lines:
        return item
    return replace(item, doc="\n".join(reversed(lines)))


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
    """A duration in the language's syntax, or None.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    m = _DURATION.fullmatch(text)
    if not text or m is None:
        return None
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    try:
        return timedelta(days=d, hours=h, minutes=mi, seconds=s)
    except OverflowError:
        return None


def decode_string(raw: str) -> str | None:
    """The value of a string literal (with its quotes), or None when an escape is invalid."""
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


@v_args(meta=True)
class _Builder(Transformer):
    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def _span(self, meta) -> Span:
        return Span(self.source, meta.start_pos, meta.end_pos)

    def _tspan(self, tok: Token) -> Span:
        return Span(self.source, tok.start_pos, tok.end_pos)

    def _name(self, tok: Token) -> ast.Name:
        return ast.Name(str(tok), self._tspan(tok))

    def _str(self, tok: Token) -> ast.Str:
        value = decode_string(str(tok))
        if value is None:
            raise _Problem(error("syntax", self._tspan(tok), "invalid escape in string",
                                 r'valid escapes: \" \\ \/ \n \t \r \b \f \uXXXX'))
        return ast.Str(value, self._tspan(tok))

    def _duration(self, tok: Token) -> ast.DurationLit:
        value = parse_duration(str(tok))
        if value is None:
            raise _Problem(error("syntax", self._tspan(tok), f"duration `{tok}` is too large"))
        return ast.DurationLit(value, self._tspan(tok))

    @staticmethod
    def _clauses(children) -> dict:
        return {c[0]: c[1] for c in children if isinstance(c, tuple) and len(c) == 2
                and isinstance(c[0], str)}

    # declarations
    def module_decl(self, meta, ch):
        return ast.ModuleDecl(ch[0], self._span(meta))

    def import_decl(self, meta, ch):
        return ast.Import(ch[0], self._span(meta))

    def dotted(self, meta, ch):
        return ast.Name(".".join(ch), self._span(meta))

    def names(self, meta, ch):
        return tuple(self._name(t) for t in ch)

    def dataclass_decl(self, meta, ch):
        return ast.DataclassDecl(self._name(ch[0]), ch[1] if len(ch) > 1 else (), self._span(meta))

    def intent_decl(self, meta, ch):
        return ast.IntentDecl(ch[0], self._span(meta))

    def agent_decl(self, meta, ch):
        return ast.AgentDecl(self._name(ch[0]), self._str(ch[1]), self._span(meta))

    def pattern(self, meta, ch):
        return ast.Pattern(".".join(str(t) for t in ch), self._span(meta))

    def quoted_pattern(self, meta, ch):
        return ast.Pattern(self._str(ch[0]).value, self._span(meta), quoted=True)

    def patterns(self, meta, ch):
        return tuple(ch)

    def field(self, meta, ch):
        optional = len(ch) == 3
        return ast.Field(self._name(ch[0]), self._name(ch[-1]), optional, self._span(meta))

    def type_name(self, meta, ch):
        return ch[0]

    def schema(self, meta, ch):
        return ast.Schema(tuple(ch), self._span(meta))

    def intents_clause(self, meta, ch):
        return ("intents", ch[0])

    def tool_data(self, meta, ch):
        return ("data", ch[0])

    def args_clause(self, meta, ch):
        return ("args", ch[0])

    def tool_decl(self, meta, ch):
        c = self._clauses(ch[1:])
        return ast.ToolDecl(ch[0], c.get("intents", ()), c.get("data", ()), c.get("args"),
                            self._span(meta))

    def params_clause(self, meta, ch):
        return ("params", ch[0])

    def tools_clause(self, meta, ch):
        return ("tools", ch[0])

    def ceiling_clause(self, meta, ch):
        return ("ceiling", self._name(ch[0]))

    def ttl_clause(self, meta, ch):
        return ("ttl", self._duration(ch[0]))

    def max_ttl_clause(self, meta, ch):
        return ("max_ttl", self._duration(ch[0]))

    def delegate_to(self, meta, ch):
        return ("to", ch[0])

    def delegate_depth(self, meta, ch):
        value = float(ch[0]) if "." in ch[0] else int(ch[0])
        return ("depth", ast.Literal(value, self._tspan(ch[0])))

    def delegate_clause(self, meta, ch):
        c = self._clauses(ch)
        return ("delegate", ast.Delegate(c.get("to"), c.get("depth"), self._span(meta)))

    def task_decl(self, meta, ch):
        c = self._clauses(ch[1:])
        return ast.TaskDecl(self._name(ch[0]), c.get("params"), c.get("tools"), c.get("intents"),
                            c.get("ceiling"), c.get("ttl"), c.get("delegate"), self._span(meta))

    def defaults_decl(self, meta, ch):
        c = self._clauses(ch)
        return ast.Defaults(c.get("ttl"), c.get("max_ttl"), self._span(meta))

    # rules
    def effect(self, meta, ch):
        return str(ch[0])

    def on_intent(self, meta, ch):
        return ast.OnIntent(self._name(ch[0]), self._span(meta))

    def on_clause(self, meta, ch):
        return ("on", tuple(ch))

    def in_clause(self, meta, ch):
        return ("tasks", ch[0])

    def by_clause(self, meta, ch):
        return ("agents", ch[0])

    def when_clause(self, meta, ch):
        return ("when", ch[0])

    def unless_clause(self, meta, ch):
        return ("unless", ch[0])

    def because_clause(self, meta, ch):
        return ("because", self._str(ch[0]))

    def rule(self, meta, ch):
        c = self._clauses(ch[2:])
        return ast.Rule(ch[0], self._name(ch[1]), c.get("on"), c.get("tasks"), c.get("agents"),
                        c.get("when"), c.get("unless"), c.get("ttl"), c.get("because"),
                        self._span(meta))

    # expressions
    def _binary(op):  # noqa: N805 - a factory evaluated in the class body
        def build(self, meta, ch):
            return ast.Binary(op, ch[0], ch[-1], self._span(meta))
        return build

    or_ = _binary("or")
    and_ = _binary("and")
    in_ = _binary("in")
    matches = _binary("matches")
    add = _binary("+")
    sub = _binary("-")

    def compare(self, meta, ch):
        return ast.Binary(str(ch[1]), ch[0], ch[2], self._span(meta))

    def cmp_op(self, meta, ch):
        return str(ch[0])

    def not_(self, meta, ch):
        return ast.Unary("not", ch[0], self._span(meta))

    def neg(self, meta, ch):
        return ast.Unary("-", ch[0], self._span(meta))

    def has(self, meta, ch):
        tok = ch[1]
        name = self._str(tok).value if tok.type == "STRING" else str(tok)
        return ast.Has(ch[0], ast.Name(name, self._tspan(tok)), self._span(meta))

    def is_(self, meta, ch):
        return ast.Is(ch[0], self._name(ch[1]), self._span(meta))

    def attr(self, meta, ch):
        return ast.Attr(ch[0], self._name(ch[1]), self._span(meta))

    def list(self, meta, ch):
        return ast.ListExpr(tuple(ch), self._span(meta))

    def quantifier(self, meta, ch):
        return str(ch[0])

    def quant(self, meta, ch):
        return ast.Quant(ch[0], self._name(ch[1]), ch[2], ch[3], self._span(meta))

    def call(self, meta, ch):
        return ast.Call(self._name(ch[0]), tuple(ch[1:]), self._span(meta))

    def name_ref(self, meta, ch):
        return ast.NameRef(str(ch[0]), self._span(meta))

    def literal(self, meta, ch):
        tok = ch[0]
        span = self._tspan(tok)
        if tok.type == "STRING":
            return ast.Literal(self._str(tok).value, span)
        if tok.type == "NUMBER":
            return ast.Literal(float(tok) if "." in tok else int(tok), span)
        if tok.type == "DURATION":
            return ast.Literal(self._duration(tok).value, span)
        return ast.Literal(tok.type == "TRUE", span)
