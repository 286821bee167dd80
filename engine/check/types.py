"""Static types of condition expressions (LANGUAGE.md §4)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Type:
    name: str
    elem: Type | None = None
    fields: tuple[tuple[str, Type], ...] | None = None  # None: an open object

    def field(self, name: str) -> Type | None:
        return dict(self.fields).get(name) if self.fields is not None else None

    def __str__(self) -> str:
        if self.name == "list" and self.elem is not None and self.elem.name != "any":
            return f"list of {self.elem}"
        return self.name


ANY = Type("any")
BOOL = Type("bool")
NUMBER = Type("number")
STRING = Type("string")
DURATION = Type("duration")
TIMESTAMP = Type("timestamp")
CLASS = Type("data class")
INTENT = Type("intent")
AGENT_NAME = Type("agent name")
TASK_NAME = Type("task name")
CLASS_SET = Type("data")  # the request's set of data classes
INTENT_SET = Type("intents")  # the request's set of intents
OBJECT = Type("object")
LIST = Type("list", ANY)


def obj(**fields: Type) -> Type:
    return Type("object", fields=tuple(fields.items()))


def list_of(elem: Type) -> Type:
    return Type("list", elem)


HOP = obj(principal=STRING, kind=STRING, at=TIMESTAMP, scope=OBJECT)
CHAIN = Type("chain", fields=(("depth", NUMBER), ("hops", list_of(HOP)), ("origin", HOP)))
AGENT = obj(id=STRING, attrs=OBJECT, verified=BOOL)
# An item of `task.history` (LANGUAGE.md §6). Its `args` is an open object: a history spans every
# tool, so no schema types it.
HISTORY_ITEM = obj(tool=STRING, intent=INTENT_SET, data=CLASS_SET, args=OBJECT, decision=STRING,
                   at=TIMESTAMP, age=DURATION)


def task_type(params: Type) -> Type:
    return obj(kind=STRING, id=STRING, params=params, objective=STRING, age=DURATION,
               started_at=TIMESTAMP, seen=CLASS_SET, history=list_of(HISTORY_ITEM))


def root_types(args: Type = OBJECT, params: Type = OBJECT) -> dict[str, Type]:
    """The type of each name of agp.syntax.names.ROOTS in a rule's conditions; `args` and
    `task.params` are those of the schemas of the rule's tools and tasks, when they have one."""
    return {
        "tool": STRING, "args": args, "intent": INTENT_SET, "data": CLASS_SET, "target": OBJECT,
        "agent": AGENT, "task": task_type(params), "chain": CHAIN, "context": OBJECT,
        "now": TIMESTAMP,
    }


SCHEMA_TYPES = {"string": STRING, "number": NUMBER, "bool": BOOL, "duration": DURATION,
                "list": LIST, "any": ANY}

# Pairs that `<`, `<=`, `>`, `>=` accept.
ORDERED = {(t, t) for t in ("number", "string", "duration", "timestamp", "data class")} | {
    ("data", "data class"), ("data class", "data")}
