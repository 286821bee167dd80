"""The tokens around a cursor, for features that must work on text that does not parse yet.

The document is lexed with the parser's own lexer (which recovers from bad characters and turns a
reserved word after `.` or `has` into a name), cut into items where the parser cuts them, and the
item under the cursor is read clause by clause.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from lark import Token
from lark.exceptions import UnexpectedInput

from agp.source import Source
from agp.syntax.parser import Comment, decode_string, lark_parser, split_items, tokenize

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DOTTED_TAIL = re.compile(r"(?:(?:[A-Za-z_][A-Za-z0-9_]*|\*)\.)*(?:[A-Za-z_][A-Za-z0-9_]*)?$")
ITEM_KEYWORDS = ("module", "import", "dataclass", "intent", "agent", "tool", "task", "defaults",
                 "permit", "forbid", "ask")
RULE_CLAUSES = ("on", "in", "by", "when", "unless", "ttl", "because")
BLOCK_CLAUSES = ("params", "tools", "intents", "intent", "data", "ttl", "delegate", "to", "depth",
                 "args", "max_ttl")


@lru_cache(maxsize=32)
def tokens(text: str) -> tuple[Token, ...]:
    """The document's tokens (comments and whitespace left out)."""
    return tuple(tokenize(Source("", text), [])[0])


def tokens_between(text: str, start: int, offset: int) -> Sequence[Token]:
    """The tokens of `text` from `start`, an item start, to the end of the line of `offset`, at
    their offsets in the whole text; the same as those of `tokens(text)` there, since a token
    never runs on to the next line (a list of literals over several lines comes as its parts
    in either case). Their lines are not counted."""
    if start == 0:
        return tokens(text)
    end = text.find("\n", offset)
    # Blanks in place of the text before `start` keep every offset; the lexer skips them in
    # one match.
    return tokenize(Source("", " " * start + text[start : len(text) if end < 0 else end]), [])[0]


@lru_cache(maxsize=8)
def comments(text: str) -> tuple[Comment, ...]:
    return tuple(tokenize(Source("", text), [])[1])


def start_of(tok: Token) -> int:
    """Where a token starts (the lexer gives every token a position)."""
    return tok.start_pos or 0


def end_of(tok: Token) -> int:
    return tok.end_pos or 0


def is_word(tok: Token) -> bool:
    return WORD.fullmatch(tok.value) is not None and tok.type != "STRING"


@lru_cache(maxsize=1)
def keyword_terminals() -> dict[str, str]:
    """Terminal name -> keyword, for the grammar's reserved words (`PERMIT` -> `permit`)."""
    out = {}
    for term in lark_parser().terminals:
        value = getattr(term.pattern, "value", "")
        if term.pattern.type == "str" and WORD.fullmatch(value):
            out[term.name] = value
    return out


@dataclass
class Cursor:
    """The item under the cursor, up to the cursor."""

    item: list[Token]  # the tokens of the current item before the cursor
    prefix: str  # the part of a word already typed at the cursor
    prefix_start: int
    name_start: int = 0  # where a dotted name typed up to the cursor starts (`payments.re`)
    offset: int = 0  # the cursor

    @property
    def last(self) -> Token | None:
        return self.item[-1] if self.item else None

    @property
    def head(self) -> str | None:
        return self.item[0].value if self.item else None

    def accepts(self) -> set[str] | None:
        """The terminals the LALR parser accepts next, or None when the item is already broken."""
        parser = lark_parser().parse_interactive()
        try:
            for tok in self.item:
                parser.feed_token(tok)
        except UnexpectedInput:
            return None
        accepts: set[str] = parser.accepts()  # type: ignore[no-untyped-call]  # lark's own
        return accepts

    def clause(self) -> str | None:
        """The innermost clause word the cursor is in (`on`, `when`, `tools`, `to`, ...)."""
        words = RULE_CLAUSES if self.head in ("permit", "forbid", "ask") else BLOCK_CLAUSES
        # A clause word counts only outside brackets: inside them, `in` is the one of
        # `count(h in task.history ...)`, not the rule's `in TASKS`.
        depth = 0
        found = None
        for tok in self.item[1:]:
            if tok.value in (")", "]") and tok.type != "STRING":
                depth -= 1
            elif tok.value in ("(", "[") and tok.type != "STRING":
                depth += 1
            elif depth <= 0 and tok.type not in ("NAME", "STRING") and tok.value in words:
                found = str(tok.value)
        return found

    def rule_scope(self) -> tuple[list[str], list[str]]:
        return rule_scope(self.item)


def at(text: str, offset: int, item_start: int = 0) -> Cursor:
    """The cursor at `offset`; `item_start` is a place before it where an item starts
    (LANGUAGE.md §1): the text is lexed from there, instead of from the start of the file."""
    before = [t for t in tokens_between(text, item_start, offset) if end_of(t) <= offset]
    prefix, start = "", offset
    line_start = text.rfind("\n", 0, offset) + 1
    m = re.search(r"[A-Za-z_][A-Za-z0-9_]*$", text[line_start:offset])  # a word is on one line
    if m:
        prefix, start = m.group(), line_start + m.start()
        if before and end_of(before[-1]) == offset and is_word(before[-1]):
            before.pop()  # the word being typed says nothing about what may come
    chunks = split_items(before)
    # The dotted name being typed, read on its line (a tool name never spans lines), so that a
    # completion can replace all of it: `on payments.re` becomes `on payments.refund`.
    line = text[max(line_start, offset - 1024) : offset]
    tail = DOTTED_TAIL.search(line)  # it matches everywhere, if only the empty string
    name = tail.group() if tail else ""
    return Cursor(chunks[-1] if chunks else [], prefix, start, offset - len(name), offset)


def item_tokens(text: str, offset: int) -> list[Token]:
    """Every token of the item that contains `offset`."""
    for chunk in split_items(list(tokens(text))):
        if chunk and start_of(chunk[0]) <= offset <= end_of(chunk[-1]):
            return chunk
    return []


def token_at(text: str, offset: int) -> tuple[int, Token] | None:
    toks = tokens(text)
    for i, tok in enumerate(toks):
        if start_of(tok) <= offset <= end_of(tok) and (offset < end_of(tok) or is_word(tok)):
            return i, tok
    return None


def dotted_before(toks: Sequence[Token], i: int) -> list[str]:
    """The names of `a.b.c` ending just before the `.` at toks[i]: ["a", "b", "c"]."""
    path: list[str] = []
    while i >= 1 and toks[i].value == "." and toks[i - 1].type != "STRING" and is_word(toks[i - 1]):
        path.insert(0, toks[i - 1].value)
        i -= 2
    return path


def rule_scope(item: list[Token]) -> tuple[list[str], list[str]]:
    """The tool patterns after `on` and the task names after `in` of a rule's tokens."""
    patterns: list[str] = []
    tasks: list[str] = []
    clause, current = None, ""
    for tok in item[2:]:
        if tok.type not in ("NAME", "STRING") and tok.value in RULE_CLAUSES:
            if current:
                patterns.append(current)
            clause, current = tok.value, ""
            if clause in ("when", "unless", "ttl", "because"):
                break
            continue
        if clause == "on":
            if tok.value == ",":
                if current:
                    patterns.append(current)
                current = ""
            elif tok.value == "intent" and not current:
                current = ""
                clause = "on-intent"
            elif tok.type == "STRING":
                current = decode_string(tok.value) or ""
            else:
                current += tok.value
        elif clause == "on-intent" and tok.value == ",":
            clause = "on"
        elif clause == "in" and tok.type == "NAME":
            tasks.append(tok.value)
    if clause == "on" and current:
        patterns.append(current)
    return patterns, tasks
