"""A checked policy set: the IR that every evaluator runs (built by agp.check)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from agp.glob import Glob
from agp.syntax import ast
from agp.syntax.parser import ParsedFile
from agp.values import Label, Lattice

DEFAULT_TTL = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class ToolInfo:
    glob: Glob
    intents: frozenset[str]
    data: frozenset[str]
    durations: frozenset[str]  # args fields typed `duration`, converted from JSON before evaluation
    decl: ast.ToolDecl


@dataclass(frozen=True, slots=True)
class TaskInfo:
    name: str
    tools: tuple[Glob, ...] | None
    intents: frozenset[str] | None
    ceiling: str | None
    ttl: timedelta | None
    delegate: bool  # whether the task has a `delegate` block
    delegate_to: tuple[Glob, ...] | None  # None: any agent
    depth: int | None  # None: no limit
    decl: ast.TaskDecl


@dataclass(frozen=True, slots=True)
class RuleInfo:
    name: str
    effect: str  # "permit" | "forbid" | "ask"
    on_tools: tuple[Glob, ...]
    on_intents: frozenset[str]
    scoped_on: bool  # whether the rule has an `on` clause
    tasks: frozenset[str] | None
    agents: tuple[Glob, ...] | None
    when: ast.Expr | None
    unless: ast.Expr | None
    ttl: timedelta | None
    because: str | None
    decl: ast.Rule


@dataclass(frozen=True, slots=True)
class Policy:
    lattice: Lattice
    intents: frozenset[str]
    agents: dict[str, Glob]
    tools: tuple[ToolInfo, ...]
    tasks: dict[str, TaskInfo]
    rules: tuple[RuleInfo, ...]
    labels: dict[str, Label]  # every declared name usable in a condition
    default_ttl: timedelta
    max_ttl: timedelta | None
    hash: str
    sources: tuple[ParsedFile, ...]  # the ParsedFiles, user files first, then standard-library modules
