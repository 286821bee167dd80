"""Completion: keywords the LALR parser accepts at the cursor, names of the kind the clause wants,
request fields after `args.`, `task.`, `task.params.`, `chain.`, `agent.`, and the standard
functions. It reads the tokens before the cursor, so it works in a document that does not parse;
the names it offers are those the checker knows in the set, plus those declared since its last
check (`current.py`: a completion never waits for a check).

Tool names are dotted, and editors cut words at dots: a tool item carries an edit that replaces
the whole dotted name typed so far (`on payments.re` -> `on payments.refund`), and only the tools
that start with it are offered (the list is marked incomplete, so the editor asks again as the
name grows or shrinks).
"""

from __future__ import annotations

from lark import Token
from lsprotocol import types as lsp

from agp.lsp import cursor
from agp.lsp.context import AgpServer
from agp.lsp.current import Current
from agp.lsp.fields import FieldInfo, fields_of, history_variables
from agp.lsp.occurrences import Declaration, Occurrences
from agp.lsp.positions import LineIndex
from agp.lsp.vocabulary import KEYWORDS, root_doc
from agp.stdlib.builtins import BUILTINS
from agp.syntax import ast
from agp.syntax.names import KIND_WORDS, ROOTS

K = lsp.CompletionItemKind
KIND_ICONS = {"class": K.Class, "intent": K.EnumMember, "agent": K.Interface, "task": K.Module,
              "tool": K.Function, "rule": K.Event}
TRIGGERS = [".", " "]
TOOL_CLAUSES = ("on", "tools")
Items = list[lsp.CompletionItem]


def completion(ls: AgpServer, params: lsp.CompletionParams) -> lsp.CompletionList | None:
    found = ls.current(params.text_document.uri, params.position)
    if found is None:
        return None
    trigger = params.context.trigger_character if params.context else None
    return complete_at(*found, trigger)


def complete_at(cur: Current, offset: int, trigger: str | None = None) -> lsp.CompletionList | None:
    ctx = cursor.at(cur.text, offset, cur.item_start(offset))
    if trigger == " " and not _after_space_ok(ctx):
        return None
    return complete(ctx, cur.names, cur.lines)


def _after_space_ok(ctx: cursor.Cursor) -> bool:
    # A space asks for names only where a clause wants one (`on `, `in `, `data <= `, `is `).
    return ctx.last is not None and ctx.last.value in ("on", "in", "by", "<=", ">=", "is", "to",
                                                       "tools", "intent", "intents", ">", ",")


def complete(ctx: cursor.Cursor, names: Occurrences, lines: LineIndex) -> lsp.CompletionList:
    items = _items(ctx, names, lines)
    # Tools are filtered here by the dotted name typed so far: ask again as it changes.
    filtered = ctx.offset > ctx.name_start and any(i.text_edit for i in items)
    return lsp.CompletionList(is_incomplete=filtered, items=items)


def _items(ctx: cursor.Cursor, names: Occurrences, lines: LineIndex) -> Items:
    last = ctx.last
    if last is not None and last.value == "." and last.type != "STRING":
        if ctx.clause() in TOOL_CLAUSES:
            return _tools(ctx, names, lines)
        return _fields(ctx, names, len(ctx.item) - 1)
    if last is not None and last.value == "has":
        dot = Token.new_borrow_pos("DOT", ".", last)
        path = cursor.dotted_before([*ctx.item[:-1], dot], len(ctx.item) - 1)
        return _fields_items(fields_of(path, names, *ctx.rule_scope()))
    accepts = ctx.accepts() if ctx.item else {"$END"}
    items: Items = []
    if accepts is None or "$END" in accepts:
        items += [_keyword(k) for k in cursor.ITEM_KEYWORDS]
    if accepts:
        words = cursor.keyword_terminals()
        items += [_keyword(words[t]) for t in sorted(accepts) if t in words
                  and words[t] not in (*cursor.ITEM_KEYWORDS, "intent")]
        if "INTENT" in accepts and ctx.head in ("permit", "forbid", "ask", "tool", "task"):
            items.append(_keyword("intent"))
    if accepts is None or "NAME" in accepts or "STAR" in accepts or "STRING" in accepts:
        found, only = _names(ctx, names, lines)
        items = found if only else items + found
    return _unique(items)


def _names(ctx: cursor.Cursor, names: Occurrences, lines: LineIndex) -> tuple[Items, bool]:
    """The names that fit the clause, and whether nothing else fits there."""
    head, clause, last = ctx.head, ctx.clause(), ctx.last
    if head is None or last is None:
        return [], False
    if head in ("permit", "forbid", "ask") and len(ctx.item) == 1:
        return [], True  # the rule's own name
    if clause in ("when", "unless"):
        if last.value in ("<=", ">=", "<", ">") and ctx.item[-2].value == "data":
            return _declared(names, "class"), True
        if last.value == "is":
            return _declared(names, "agent") + _declared(names, "task"), True
        return _expression(names), False
    return _header_names(ctx, names, lines, head, clause, last.value), False


def _header_names(ctx: cursor.Cursor, names: Occurrences, lines: LineIndex, head: str,
                  clause: str | None, prev: str) -> Items:
    if prev == "intent" and clause in ("on", None) or clause in ("intents", "intent"):
        return _declared(names, "intent")
    if head == "dataclass" and prev in (">", ","):
        return _declared(names, "class")
    if clause in TOOL_CLAUSES:
        return _tools(ctx, names, lines)
    if clause == "in":
        return _declared(names, "task")
    if clause in ("by", "to"):
        return _declared(names, "agent")
    if clause == "data" and head == "tool":
        return _declared(names, "class")
    if prev == "<=" and ctx.item[-2].value == "data":
        return _declared(names, "class")  # a task's ceiling
    return []


def _expression(names: Occurrences) -> Items:
    items = [lsp.CompletionItem(label=name, kind=K.Variable, detail=root_doc(name)[0],
                                documentation=_md(root_doc(name)[1])) for name in ROOTS]
    for fn in BUILTINS.values():
        items.append(lsp.CompletionItem(
            label=fn.name, kind=K.Function, detail=fn.signature, documentation=_md(fn.doc),
            insert_text=f"{fn.name}($1)", insert_text_format=lsp.InsertTextFormat.Snippet))
    for kind in ("class", "intent", "agent", "task"):
        items += _declared(names, kind)
    return items


def _declared(names: Occurrences, kind: str) -> Items:
    return [_declared_item(decl) for decl in names.declared(kind)]


def _declared_item(decl: Declaration) -> lsp.CompletionItem:
    doc = decl.item.doc
    label = decl.name
    if isinstance(decl.item, ast.ToolDecl) and decl.item.pattern.quoted:
        label = f'"{decl.name}"'
    return lsp.CompletionItem(label=label, kind=KIND_ICONS[decl.kind],
                              detail=KIND_WORDS[decl.kind],
                              documentation=_md(doc) if doc else None)


def _tools(ctx: cursor.Cursor, names: Occurrences, lines: LineIndex) -> Items:
    """The declared tools that start with the dotted name typed so far, each replacing it."""
    typed = lines.text[ctx.name_start : ctx.offset].lower()
    where = lines.range(ctx.name_start, ctx.offset)
    out = []
    for decl in names.declared("tool"):
        if decl.name.lower().startswith(typed):
            item = _declared_item(decl)
            item.filter_text = decl.name
            item.text_edit = lsp.TextEdit(range=where, new_text=item.label)
            out.append(item)
    return out


def _fields(ctx: cursor.Cursor, names: Occurrences, dot: int) -> Items:
    path = cursor.dotted_before(ctx.item, dot)
    if ctx.clause() not in ("when", "unless"):
        return []
    return _fields_items(fields_of(path, names, *ctx.rule_scope(),
                                   history=history_variables(ctx.item)))


def _fields_items(fields: list[FieldInfo]) -> Items:
    return [lsp.CompletionItem(label=f.name, kind=K.Field,
                               detail=f.type + (" (optional)" if f.optional else ""),
                               documentation=_md(f.doc) if f.doc else None) for f in fields]


def _keyword(word: str) -> lsp.CompletionItem:
    doc = KEYWORDS.get(word)
    return lsp.CompletionItem(label=word, kind=K.Keyword, documentation=_md(doc) if doc else None)


def _md(text: str) -> lsp.MarkupContent:
    return lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text)


def _unique(items: Items) -> Items:
    seen: set[str] = set()
    out = []
    for item in items:
        if item.label not in seen:
            seen.add(item.label)
            out.append(item)
    return out
