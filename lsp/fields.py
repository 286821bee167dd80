"""The fields of request values (`args.`, `task.params.`, `chain.`, ...) as a rule sees them.

`args` is typed by the schemas of the tools the rule is scoped to, `task.params` by those of its
tasks (LANGUAGE.md §4); the other roots have the fixed shapes of agp.check.types.
"""

from __future__ import annotations

from dataclasses import dataclass

from agp.check import types as T
from agp.glob import compile_glob
from agp.lsp.index import Index
from agp.lsp.vocabulary import FIELDS, TARGET


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str
    doc: str
    optional: bool = False


def _schema_fields(decls, what: str) -> list[FieldInfo]:
    found: dict[str, list] = {}
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


def _label(decl) -> str:
    return decl.pattern.text if hasattr(decl, "pattern") else decl.name.text


def args_fields(index: Index, patterns: list[str]) -> list[FieldInfo]:
    globs = [compile_glob(p) for p in patterns]
    decls = [d.item for d in index.kinds("tool")
             if any(g.relates(compile_glob(d.name)) for g in globs)]
    return _schema_fields([(d, d.args) for d in decls], "argument")


def params_fields(index: Index, tasks: list[str]) -> list[FieldInfo]:
    decls = [ds[0].item for t in tasks if (ds := index.declarations.get(("task", t)))]
    return _schema_fields([(d, d.params) for d in decls], "parameter")


def _static(t: T.Type, owner: str) -> list[FieldInfo]:
    return [FieldInfo(n, str(ft), FIELDS.get((owner, n), "")) for n, ft in t.fields or ()]


def fields_of(path: list[str], index: Index, patterns: list[str], tasks: list[str],
              variables: frozenset[str] = frozenset()) -> list[FieldInfo]:
    """The fields of the value named by a dotted path, or [] when they are not known."""
    if not path or path[0] in variables:
        return []
    p = tuple(path)
    if p == ("args",):
        return args_fields(index, patterns)
    if p == ("task", "params"):
        return params_fields(index, tasks)
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
