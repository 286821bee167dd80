"""The canonical formatter for `.agp` files (`agp fmt`).

Canonical layout, the one of the language's own examples (so that they are fixed points): one
top-level item per line group, two-space indentation, clauses in the order of the grammar,
single spaces around operators and after commas, the minimum of parentheses (plus explicit
ones around an `and` inside an `or`). The values of a task's and of `defaults`' clauses are
aligned (`params  {`, `tools   a.*`); nothing is aligned across items. A rule's scope stays on
its first line, each of `when`, `unless`, `ttl` and `because` on a line of its own. A tool
written on one line stays on one line if it fits; otherwise one clause a line. Lines longer
than WIDTH are broken: lists wrap under their first item, a quantifier puts its body on the
next line, and an `and`/`or` chain puts each operand on a line of its own (see `_broken`).
Comments are kept: a comment alone on its line stays on its own line before the code that
followed it (so `##` doc comments stay attached), and a comment after code stays at the end of
that code's line (at its column when there is room). Blank lines between top-level items are
kept (several become one); literals keep their text.

Formatting never changes a decision: the output is parsed again and must give the same AST
(spans aside) and the same comments, or `format_source` raises instead of returning it.

    >>> print(format_text("permit   x on a.b when args.n>1 and not(args.m<2) or  args.k"), end="")
    permit x on a.b
      when (args.n > 1 and not (args.m < 2)) or args.k
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from agp.diagnostics import Diagnostic
from agp.source import Source
from agp.syntax import ast
from agp.syntax.parser import Comment, ParsedFile, parse
from agp.syntax.visit import ExprVisitor

WIDTH = 100  # lines longer than this are broken where the layout allows it
INDENT = 2


class FormatError(Exception):
    """The file does not parse (its diagnostics are attached), or could not be kept intact."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        super().__init__(message)
        self.diagnostics = list(diagnostics or [])


@dataclass(slots=True)
class _Line:
    indent: int
    text: str
    anchor: int  # source offset of what starts the line (for placing comments)
    trailing: list[str] = dataclasses.field(default_factory=list)
    columns: list[int] = dataclasses.field(default_factory=list)  # source columns of those
    before: list[str] = dataclasses.field(default_factory=list)  # comments on their own lines


def format_text(text: str, name: str = "<text>") -> str:
    return format_source(Source(name, text))


def format_source(source: Source) -> str:
    """The canonical text of one policy file. Raises FormatError when it does not parse."""
    parsed = parse(source)
    errors = [d for d in parsed.diagnostics if d.is_error]
    if errors:
        raise FormatError(f"{source.name} does not parse", errors)
    out = _Printer(parsed).file()
    _verify(parsed, out)
    return out


# ---- layout of the whole file -------------------------------------------------------------------


class _Printer:
    def __init__(self, parsed: ParsedFile):
        self.parsed = parsed
        self.source = parsed.source
        self.text = parsed.source.text

    def _alone(self, c: Comment) -> bool:
        start = self.text.rfind("\n", 0, c.span.start) + 1
        return not self.text[start : c.span.start].strip()

    def file(self) -> str:
        items = sorted(self.parsed.items, key=lambda i: i.span.start)
        inner: dict[int, list[Comment]] = {id(i): [] for i in items}
        trailing_after: dict[int, list[Comment]] = {id(i): [] for i in items}
        # Top-level elements in source order: items, and the comments between them.
        elements: list[ast.Item | Comment] = list(items)
        for c in self.parsed.comments:
            owner = next((i for i in items if i.span.start <= c.span.start < i.span.end), None)
            if owner is not None:
                inner[id(owner)].append(c)
                continue
            before = [i for i in items if i.span.end <= c.span.start]
            if before and not self._alone(c):
                trailing_after[id(before[-1])].append(c)
            else:
                elements.append(c)
        elements.sort(key=lambda e: e.span.start)

        out: list[str] = []
        prev_end: int | None = None
        for element in elements:
            start = element.span.start
            if prev_end is not None and self._blank_between(prev_end, start):
                out.append("")
            if isinstance(element, Comment):
                out.append(element.text.rstrip())
                prev_end = element.span.end
                continue
            lines = self.item(element)
            self._place(lines, inner[id(element)] + trailing_after[id(element)])
            out.extend(_render(lines))
            ends = [element.span.end] + [c.span.end for c in trailing_after[id(element)]]
            prev_end = max(ends)
        while out and out[-1] == "":
            out.pop()
        return "\n".join(out) + "\n" if out else ""

    def _blank_between(self, a: int, b: int) -> bool:
        gap = self.text[a:b]
        return any(not part.strip() for part in gap.split("\n")[1:-1])

    def _place(self, lines: list[_Line], comments: list[Comment]) -> None:
        for c in sorted(comments, key=lambda c: c.span.start):
            text = c.text.rstrip()
            if self._alone(c):
                target = next((ln for ln in lines if ln.anchor > c.span.start), None)
                if target is None:  # after the last line of the item
                    lines.append(_Line(lines[0].indent, "", c.span.start, before=[text]))
                else:
                    target.before.append(text)
            else:
                # Never the empty line that only carries comments after the item (it is not
                # printed, so a comment at its end would be lost).
                target = next((ln for ln in reversed(lines)
                               if ln.text and ln.anchor <= c.span.start), lines[0])
                target.trailing.append(text)
                target.columns.append(c.span.column - 1)

    # ---- items ------------------------------------------------------------------------------

    def item(self, item: ast.Item) -> list[_Line]:
        s = item.span.start
        if isinstance(item, ast.ModuleDecl):
            return [_Line(0, f"module {item.name.text}", s)]
        if isinstance(item, ast.Import):
            return [_Line(0, f"import {item.module.text}", s)]
        if isinstance(item, ast.DataclassDecl):
            text = f"dataclass {item.name.text}"
            if item.parents:
                text += " > " + _names(item.parents)
            return [_Line(0, text, s)]
        if isinstance(item, ast.IntentDecl):
            return [_Line(0, f"intent {_names(item.names)}", s)]
        if isinstance(item, ast.AgentDecl):
            return [_Line(0, f"agent {item.name.text} {item.pattern.span.text}", s)]
        if isinstance(item, ast.ToolDecl):
            return self.tool(item)
        if isinstance(item, ast.TaskDecl):
            return self.task(item)
        if isinstance(item, ast.Defaults):
            return self.defaults(item)
        if isinstance(item, ast.Rule):
            return self.rule(item)
        raise TypeError(f"cannot format {type(item).__name__}")

    def _has_inner_comments(self, item: ast.Item) -> bool:
        return any(item.span.start <= c.span.start < item.span.end
                   for c in self.parsed.comments)

    def block(self, head: str, start: int, end: int, clauses: list[list[_Line]],
              inline: bool = False) -> list[_Line]:
        """`head { ... }` with one clause a line (each clause: lines at indent 0), or inline."""
        if not clauses:
            return [_Line(0, f"{head} {{}}", start)]
        if inline and all(len(c) == 1 for c in clauses):
            text = f"{head} {{ " + "  ".join(c[0].text for c in clauses) + " }"
            if len(text) <= WIDTH:
                return [_Line(0, text, start)]
        lines = [_Line(0, f"{head} {{", start)]
        for clause in clauses:
            lines.extend(_Line(ln.indent + INDENT, ln.text, ln.anchor) for ln in clause)
        lines.append(_Line(0, "}", end - 1))
        return lines

    def tool(self, t: ast.ToolDecl) -> list[_Line]:
        clauses = []
        if t.intents:
            clauses.append(_fill(INDENT, "intent ", _named(t.intents)))
        if t.data:
            clauses.append(_fill(INDENT, "data ", _named(t.data)))
        if t.args is not None:
            clauses.append(_schema_lines(INDENT, "args ", t.args))
        # A tool written on one line may stay on one line; otherwise one clause a line.
        one_line = "\n" not in t.span.text and not self._has_inner_comments(t)
        return self.block(f"tool {_pattern(t.pattern)}", t.span.start, t.span.end,
                          [_dedent(c) for c in clauses], inline=one_line)

    def task(self, t: ast.TaskDecl) -> list[_Line]:
        present = [k for k, v in (("params", t.params), ("tools", t.tools),
                                  ("intents", t.intents), ("data", t.ceiling), ("ttl", t.ttl))
                   if v is not None]
        width = max(map(len, present), default=0)

        def key(word: str) -> str:
            return word.ljust(width) + " "

        clauses = []
        if t.params is not None:
            clauses.append(_schema_lines(INDENT, key("params"), t.params))
        if t.tools is not None:
            clauses.append(_fill(INDENT, key("tools"),
                                 [(_pattern(p), p.span.start) for p in t.tools]))
        if t.intents is not None:
            clauses.append(_fill(INDENT, key("intents"), _named(t.intents)))
        if t.ceiling is not None:
            clauses.append([_Line(INDENT, key("data") + f"<= {t.ceiling.text}",
                                  t.ceiling.span.start)])
        if t.ttl is not None:
            clauses.append([_Line(INDENT, key("ttl") + t.ttl.span.text, t.ttl.span.start)])
        if t.delegate is not None:
            d = t.delegate
            parts = []
            if d.to is not None:
                parts.append(f"to {_names(d.to)}")
            if d.depth is not None:
                parts.append(f"depth <= {d.depth.span.text}")
            body = "{ " + "  ".join(parts) + " }" if parts else "{}"
            clauses.append([_Line(INDENT, f"delegate {body}", d.span.start)])
        return self.block(f"task {t.name.text}", t.span.start, t.span.end,
                          [_dedent(c) for c in clauses])

    def defaults(self, d: ast.Defaults) -> list[_Line]:
        present = [(k, v) for k, v in (("ttl", d.ttl), ("max_ttl", d.max_ttl)) if v is not None]
        width = max((len(k) for k, _ in present), default=0)
        clauses = [[_Line(0, f"{k.ljust(width)} {v.span.text}", v.span.start)]
                   for k, v in present]
        return self.block("defaults", d.span.start, d.span.end, clauses)

    def rule(self, r: ast.Rule) -> list[_Line]:
        head = f"{r.effect} {r.name.text}"
        scope = []
        if r.on is not None:
            scope.append(("on ", [(_on(o), o.span.start) for o in r.on]))
        if r.tasks is not None:
            scope.append(("in ", _named(r.tasks)))
        if r.agents is not None:
            scope.append(("by ", _named(r.agents)))
        texts = [p + ", ".join(t for t, _ in items) for p, items in scope]
        if len(" ".join([head, *texts])) <= WIDTH:
            lines = [_Line(0, " ".join([head, *texts]), r.span.start)]
        else:
            # As many scope clauses as fit stay on the first line; the others get their own.
            lines = [_Line(0, head, r.span.start)]
            on_first = True
            for (prefix, items), text in zip(scope, texts, strict=False):
                if on_first and len(lines[0].text) + 1 + len(text) <= WIDTH:
                    lines[0].text += " " + text
                    continue
                on_first = False
                lines.extend(_fill(INDENT, prefix, items))
        for word, e in (("when", r.when), ("unless", r.unless)):
            if e is not None:
                lines.extend(_Line(i, t, a) for i, t, a in
                             _broken(e, OR, INDENT, word + " ", ""))
        if r.ttl is not None:
            lines.append(_Line(INDENT, f"ttl {r.ttl.span.text}", r.ttl.span.start))
        if r.because is not None:
            lines.append(_Line(INDENT, f"because {r.because.span.text}",
                               r.because.span.start))
        return lines


def _render(lines: list[_Line]) -> list[str]:
    out: list[str] = []
    for ln in lines:
        pad = " " * (ln.indent + (INDENT if ln.text == "}" else 0))
        out.extend(pad + c for c in ln.before)
        if not ln.text:
            continue
        code = " " * ln.indent + ln.text
        if ln.trailing:
            column = max(ln.columns[0], len(code) + 2)
            code = code.ljust(column) + " ".join(ln.trailing)
        out.append(code)
    return out


def _dedent(lines: list[_Line]) -> list[_Line]:
    return [_Line(ln.indent - INDENT, ln.text, ln.anchor) for ln in lines]


def _named(names: tuple[ast.Name, ...]) -> list[tuple[str, int]]:
    return [(n.text, n.span.start) for n in names]


def _fill(indent: int, prefix: str, items: list[tuple[str, int]], suffix: str = "",
          cont: int | None = None) -> list[_Line]:
    """`prefix a, b, c suffix`, wrapped before an item that would pass WIDTH; continuation
    lines start under the first item."""
    cont = indent + len(prefix) if cont is None else cont
    lines = [_Line(indent, prefix, items[0][1] if items else 0)]
    fresh = True  # nothing but the prefix on the current line yet
    for i, (text, anchor) in enumerate(items):
        piece = text + ("," if i < len(items) - 1 else suffix)
        line = lines[-1]
        if not fresh and line.indent + len(line.text) + 1 + len(piece) > WIDTH:
            lines.append(_Line(cont, piece, anchor))
        else:
            line.text += ("" if fresh else " ") + piece
        fresh = False
    if not items:
        lines[-1].text = (prefix + suffix).rstrip()
    return lines


def _schema_lines(indent: int, prefix: str, schema: ast.Schema) -> list[_Line]:
    if not schema.fields:
        return [_Line(indent, prefix + "{}", schema.span.start)]
    return _fill(indent, prefix + "{ ", [(_field(f), f.span.start) for f in schema.fields],
                 " }")


def _names(names: tuple[ast.Name, ...]) -> str:
    return ", ".join(n.text for n in names)


def _pattern(p: ast.Pattern) -> str:
    return p.span.text if p.quoted else p.text


def _on(o: ast.Pattern | ast.OnIntent) -> str:
    return f"intent {o.name.text}" if isinstance(o, ast.OnIntent) else _pattern(o)


def _field(f: ast.Field) -> str:
    return f"{f.name.text}{'?' if f.optional else ''}: {f.type.text}"


# ---- expressions ------------------------------------------------------------------------------

OR, AND, NOT, CMP, SUM, UNARY, POSTFIX, ATOM = range(1, 9)
_CMP_OPS = frozenset(("==", "!=", "<", "<=", ">", ">=", "in", "matches"))


class _Precedence(ExprVisitor):
    """How tightly each form binds, from OR (loosest) to ATOM: below what its place needs, it is
    parenthesized."""

    def visit_Binary(self, e: ast.Binary) -> int:
        if e.op == "or":
            return OR
        if e.op == "and":
            return AND
        return CMP if e.op in _CMP_OPS else SUM

    def visit_Unary(self, e: ast.Unary) -> int:
        return NOT if e.op == "not" else UNARY

    def visit_Has(self, e: ast.Has | ast.Is) -> int:
        return CMP

    visit_Is = visit_Has

    def visit_Attr(self, e: ast.Attr) -> int:
        return POSTFIX

    def visit_Literal(self, e: ast.Expr) -> int:
        return ATOM

    visit_ListExpr = visit_NameRef = visit_Quant = visit_Call = visit_Literal


_prec = _Precedence().visit


def expr(e: ast.Expr, need: int = OR) -> str:
    """The canonical text of an expression, parenthesized when its context needs it."""
    text = _expr(e)
    return f"({text})" if _prec(e) < need else text


class _Text(ExprVisitor):
    """The canonical text of each form, its operands parenthesized as they need."""

    def visit_Literal(self, e: ast.Literal) -> str:
        return e.span.text

    def visit_NameRef(self, e: ast.NameRef) -> str:
        return e.name

    def visit_ListExpr(self, e: ast.ListExpr) -> str:
        return "[" + ", ".join(expr(i) for i in e.items) + "]"

    def visit_Attr(self, e: ast.Attr) -> str:
        return f"{expr(e.obj, POSTFIX)}.{e.name.text}"

    def visit_Unary(self, e: ast.Unary) -> str:
        if e.op == "not":
            # `not (a in b)` reads better than the equivalent `not a in b`.
            return f"not {expr(e.operand, SUM)}"
        return f"-{expr(e.operand, UNARY)}"

    def visit_Binary(self, e: ast.Binary) -> str:
        if e.op == "or":
            return f"{_or_operand(e.left, OR)} or {_or_operand(e.right, AND)}"
        if e.op == "and":
            return f"{expr(e.left, AND)} and {expr(e.right, NOT)}"
        if e.op in _CMP_OPS:
            return f"{expr(e.left, SUM)} {e.op} {expr(e.right, SUM)}"
        return f"{expr(e.left, SUM)} {e.op} {expr(e.right, UNARY)}"

    def visit_Has(self, e: ast.Has) -> str:
        return f"{expr(e.obj, SUM)} has {e.field.span.text}"

    def visit_Is(self, e: ast.Is) -> str:
        return f"{expr(e.obj, SUM)} is {e.name.text}"

    def visit_Quant(self, e: ast.Quant) -> str:
        return f"{_quant_head(e)}{expr(e.seq)}{_quant_filter(e)}: {expr(e.body)})"

    def visit_Call(self, e: ast.Call) -> str:
        return f"{e.func.text}(" + ", ".join(expr(a) for a in e.args) + ")"


_expr = _Text().visit


def _quant_head(e: ast.Quant) -> str:
    return f"{e.kind}({e.var.text} in "


def _quant_filter(e: ast.Quant) -> str:
    return "" if e.filter is None else f" if {expr(e.filter)}"


def _or_operand(e: ast.Expr, need: int) -> str:
    # `a and b or c` is correct but easy to misread: the canonical form says `(a and b) or c`.
    if _is_and(e):
        return f"({_expr(e)})"
    return expr(e, need)


def _chain(e: ast.Expr, op: str) -> list[ast.Expr]:
    if isinstance(e, ast.Binary) and e.op == op:
        return [*_chain(e.left, op), e.right]
    return [e]


# (indent, text, source offset of what starts the line)
_Lines = list[tuple[int, str, int]]


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where an expression is laid out: after `lead` and before `tail`, at `indent`."""

    need: int  # how tightly what stands there must bind (see `expr`)
    indent: int
    lead: str
    tail: str
    force_parens: bool = False
    hanging: bool = False  # inside parentheses or a quantifier (see `_broken`)


def _broken(e: ast.Expr, need: int, indent: int, lead: str, tail: str,
            force_parens: bool = False, hanging: bool = False) -> _Lines:
    """`lead EXPR tail` as lines no longer than WIDTH where possible.

    An `and`/`or` chain that does not fit is broken before each operator. At the top of a
    condition the operators are right-aligned, so that the operands line up under the first
    (`when a` / `   and b`); inside parentheses or a quantifier (`hanging`) they stand under the
    first operand, so that a nested chain never lines up with the chain around it. A
    quantifier that does not fit has its body on the next lines, after its `(`; a list that
    does not fit is wrapped, its items under the first.
    """
    text = f"({_expr(e)})" if force_parens else expr(e, need)
    if indent + len(lead) + len(text) + len(tail) <= WIDTH:
        return [(indent, lead + text + tail, e.span.start)]
    lines: _Lines = _LAYOUT.visit(e, _Slot(need, indent, lead, tail, force_parens, hanging), text)
    return lines


class _Layout(ExprVisitor):
    """How each form is broken over lines when it does not fit on one (`_broken`); `text` is
    its text on one line."""

    def visit_Literal(self, e: ast.Expr, at: _Slot, text: str) -> _Lines:
        # Literals, names, field reads, `has`, `is` and calls are never broken.
        return [(at.indent, at.lead + text + at.tail, e.span.start)]

    visit_NameRef = visit_Attr = visit_Has = visit_Is = visit_Call = visit_Literal

    def visit_Unary(self, e: ast.Unary, at: _Slot, text: str) -> _Lines:
        if e.op == "not" and _prec(e.operand) <= CMP:
            return _broken(e.operand, ATOM, at.indent, at.lead + "not ", at.tail)
        return self.visit_Literal(e, at, text)

    def visit_Quant(self, e: ast.Quant, at: _Slot, text: str) -> _Lines:
        if at.force_parens:
            return self.visit_Literal(e, at, text)
        column = at.indent + len(at.lead) + len(e.kind) + 1
        return [*_broken(e.seq, OR, at.indent, at.lead + _quant_head(e), _quant_filter(e) + ":"),
                *_broken(e.body, OR, column, "", ")" + at.tail, hanging=True)]

    def visit_ListExpr(self, e: ast.ListExpr, at: _Slot, text: str) -> _Lines:
        if not e.items:
            return self.visit_Literal(e, at, text)
        # Wrapped like a clause's list: continuation lines start under the first item.
        lines = _fill(at.indent, at.lead + "[", [(expr(i), i.span.start) for i in e.items],
                      "]" + at.tail)
        return [(ln.indent, ln.text, e.span.start if n == 0 else ln.anchor)
                for n, ln in enumerate(lines)]

    def visit_Binary(self, e: ast.Binary, at: _Slot, text: str) -> _Lines:
        if e.op in _CMP_OPS and isinstance(e.right, ast.ListExpr) and not at.force_parens \
                and _prec(e) >= at.need:
            return _broken(e.right, OR, at.indent, f"{at.lead}{expr(e.left, SUM)} {e.op} ",
                           at.tail)
        if e.op not in ("and", "or"):
            return self.visit_Literal(e, at, text)
        lead, tail, hanging = at.lead, at.tail, at.hanging
        if at.force_parens or _prec(e) < at.need:
            lead, tail, hanging = lead + "(", ")" + tail, True
        op, parts = e.op, _chain(e, e.op)
        column = at.indent + len(lead)
        op_indent = column if hanging else column - len(op) - 1
        lines: _Lines = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if op == "or":
                part_need, parens = (OR if i == 0 else AND), _is_and(part)
            else:
                part_need, parens = (AND if i == 0 else NOT), False
            if i == 0:
                lines.extend(_broken(part, part_need, at.indent, lead, tail if last else "",
                                     parens))
            else:
                lines.extend(_broken(part, part_need, op_indent, op + " ",
                                     tail if last else "", parens))
        return lines


_LAYOUT = _Layout()


def _is_and(e: ast.Expr) -> bool:
    return isinstance(e, ast.Binary) and e.op == "and"


# ---- the safety net ---------------------------------------------------------------------------


def shape(node: object) -> object:
    """A node without its spans: two texts with equal shapes decide alike."""
    if isinstance(node, (ast.Name, ast.Str)):
        return getattr(node, "text", None) if isinstance(node, ast.Name) else ("str", node.value)
    if isinstance(node, ast.Pattern):
        return ("pattern", node.text, node.quoted)
    if isinstance(node, ast.Literal):
        return ("lit", type(node.value).__name__, node.value)
    if isinstance(node, ast.DurationLit):
        return ("dur", node.value)
    if dataclasses.is_dataclass(node):
        return (type(node).__name__,) + tuple(
            shape(getattr(node, f.name)) for f in dataclasses.fields(node) if f.name != "span")
    if isinstance(node, (tuple, list)):
        return tuple(shape(x) for x in node)
    return node


def _verify(parsed: ParsedFile, out: str) -> None:
    again = parse(Source(parsed.source.name, out))
    if any(d.is_error for d in again.diagnostics):
        raise FormatError(f"{parsed.source.name}: internal error: the formatted text does not "
                          "parse; the file was left as it is")
    before = sorted(parsed.items, key=lambda i: i.span.start)
    if shape(tuple(before)) != shape(again.items):
        raise FormatError(f"{parsed.source.name}: internal error: formatting would change the "
                          "policy; the file was left as it is")
    if sorted(c.text.rstrip() for c in parsed.comments) != \
            sorted(c.text.rstrip() for c in again.comments):
        raise FormatError(f"{parsed.source.name}: internal error: formatting would lose a "
                          "comment; the file was left as it is")
