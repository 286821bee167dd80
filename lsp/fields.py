"""The fields of request values (`args.`, `task.params.`, `chain.`, ...) as a rule sees them.

`args` is typed by the schemas of the tools the rule is scoped to, `task.params` by those of its
tasks (LANGUAGE.md §4), both as the checker declared them; the other roots have the fixed shapes of
agp.check.types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lark import Token

from agp.check import types as T
from agp.glob import compile_glob
from agp.lsp.occurrences import Occurrences
from agp.lsp.vocabulary import FIELDS, TARGET
from agp.syntax import ast

Owner = ast.ToolDecl | ast.TaskDecl


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str
    doc: str
    optional: bool = False


def _schema_fields(decls: list[tuple[Owner, ast.Schema | None]], what: str) -> list[FieldInfo]:
    found: dict[str, list[tuple[Owner, ast.Field]]] = {}
    for decl, schema in decls:
        for f in schema.fields if schema is not None else ():
            found.setdefault(f.name.text, []).append((decl, f))
    out = []
    for name, uses in found.items():
        types = sorted({f.type.text for _, f in uses})
        owners = ", ".join(f"`{_label(d)}`" for d, _ in uses)
        optional = any(f.optional for _, f in uses) or len(uses) < len(decls)
        out.append(FieldInfo(name, types[0] if len(types) == 1 else "any",
                             f"{what} of {owners}", optional))
    return out


def _label(decl: Owner) -> str:
    return decl.pattern.text if isinstance(decl, ast.ToolDecl) else decl.name.text


def args_fields(names: Occurrences, patterns: list[str]) -> list[FieldInfo]:
    globs = [compile_glob(p) for p in patterns]
    tools = [d for text, d in names.checked.tools.items()
             if any(g.relates(compile_glob(text)) for g in globs)]
    return _schema_fields([(d, d.args) for d in tools], "argument")


def params_fields(names: Occurrences, tasks: list[str]) -> list[FieldInfo]:
    decls = [d.item for t in tasks if (d := names.label(t)) is not None and d.kind == "task"]
    return _schema_fields([(d, d.params) for d in decls if isinstance(d, ast.TaskDecl)],
                          "parameter")


def _static(t: T.Type, owner: str) -> list[FieldInfo]:
    return [FieldInfo(n, str(ft), FIELDS.get((owner, n), "")) for n, ft in t.fields or ()]


_QUANTIFIERS = frozenset(("any", "all", "count", "sum"))
_OVER_HISTORY = ("in", "task", ".", "history")


def history_variables(item: Sequence[Token]) -> frozenset[str]:
    """The variables of the quantifiers over `task.history` in a rule's tokens (`h` in
    `count(h in task.history ...)`): their fields are those of a history item."""
    found = set()
    for i in range(len(item) - 6):
        if item[i].value in _QUANTIFIERS and item[i + 1].value == "(" and \
                tuple(t.value for t in item[i + 3:i + 7]) == _OVER_HISTORY:
            found.add(str(item[i + 2].value))
    return frozenset(found)


def fields_of(path: list[str], names: Occurrences, patterns: list[str], tasks: list[str],
              variables: frozenset[str] = frozenset(),
              history: frozenset[str] = frozenset()) -> list[FieldInfo]:
    """The fields of the value named by a dotted path, or [] when they are not known. `history`
    are the variables that stand for an item of `task.history` (history_variables)."""
    if path and path[0] in history and path[0] not in variables:
        return _static(T.HISTORY_ITEM, "history item") if len(path) == 1 else []
    if not path or path[0] in variables:
        return []
    p = tuple(path)
    if p == ("args",):
        return args_fields(names, patterns)
    if p == ("task", "params"):
        return params_fields(names, tasks)
    if p == ("task",):
        return _static(T.task_type(T.OBJECT), "task")
    if p == ("chain",):
        return _static(T.CHAIN, "chain")
    if p == ("chain", "origin"):
        return _static(T.HOP, "hop")
    if p == ("agent",):
        return _static(T.AGENT, "agent")
    if p == ("target",):
        return _static(TARGET, "target")
    return []
