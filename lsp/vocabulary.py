"""What the words of the language mean, for hover and completion (from LANGUAGE.md).

The names a condition starts from, and what each holds, are the engine's (`agp.syntax.names.ROOTS`,
typed by `agp.check.types.root_types`); the keywords and the fields of request values are
documented here.
"""

from __future__ import annotations

from agp.check import types as T
from agp.syntax.names import ROOTS

KEYWORDS = {
    "module": "`module NAME`: names the file's module (documentation and diagnostics only).",
    "import": "`import std.MODULE`: loads a module of the standard library "
              "(`std.intents`, `std.dataclasses`, `std.guards`).",
    "dataclass": "`dataclass X > A, B`: declares the data class X above (more sensitive than) "
                 "A and B. Classes form a lattice; `data <= X` and `data >= X` compare through it.",
    "intent": "`intent a, b`: declares intents, what a tool call means to do. In a rule, "
              "`on intent NAME` scopes it to calls carrying that intent; in a condition, `intent` "
              "is the set of intents of the call.",
    "intents": "`intents a, b` in a tool or task: the intents a tool carries, or that a task allows.",
    "agent": "`agent NAME \"PATTERN\"`: binds a name to a workload-identity glob. In a condition, "
             "`agent` is the acting agent (`agent.id`, `agent.attrs`); `agent is NAME` tests a "
             "declared pattern.",
    "tool": "`tool PATTERN { intent ... data ... args {...} }`: declares what a tool (or a family "
            "of tools, with `*`) does. In a condition, `tool` is the called tool's name.",
    "task": "`task NAME { params tools intents data ttl delegate }`: the envelope of a live "
            "objective. In a condition, `task` is the task instance (`task.kind`, `task.params`, "
            "`task.age`); `task is NAME` tests its kind.",
    "defaults": "`defaults { ttl D  max_ttl D }`: the grant TTL when no rule sets one, and the hard "
                "cap on every grant.",
    "permit": "`permit NAME [on ...] [in ...] [by ...] [when ...] [unless ...] [ttl D]`: allows "
              "matching calls, unless some forbid or the envelope denies them.",
    "forbid": "`forbid NAME ...`: denies matching calls, whatever permits say. An evaluation error "
              "makes a forbid match.",
    "ask": "`ask NAME ...`: matching calls need a human's approval (unless something denies).",
    "on": "`on PATTERN, intent NAME`: the tools (globs) or intents a rule applies to.",
    "in": "In a rule header, `in TASK, ...`: only requests of those tasks. In a condition, "
          "`x in Y`: membership in a list, `data`, `intent` or `chain`, or a substring.",
    "by": "`by AGENT, ...`: only calls by agents matching those declared patterns.",
    "when": "`when EXPR`: the rule matches only when the condition is true.",
    "unless": "`unless EXPR`: the rule does not match when the condition is true "
              "(evaluated only when `when` holds).",
    "ttl": "`ttl D`: how long a grant (rule), a task instance (task) or a default grant lives.",
    "max_ttl": "`max_ttl D`: the cap on every grant's TTL.",
    "because": "`because \"TEXT\"`: the reason shown in decisions this rule decides.",
    "and": "Boolean and, left to right, stopping when the result is known.",
    "or": "Boolean or, left to right, stopping when the result is known.",
    "not": "Boolean negation.",
    "is": "`agent is A`: the agent matches A's pattern; `task is T`: the task's kind is T.",
    "has": "`x has f`: whether the object has the field (test before reading optional args).",
    "matches": "`s matches \"glob\"`: `*` matches any run of characters, `?` one character.",
    "any": "`any(x in LIST: EXPR)`: true when EXPR holds for some element.",
    "all": "`all(x in LIST: EXPR)`: true when EXPR holds for every element.",
    "count": "`count(x in LIST: EXPR)`: the number of elements for which EXPR holds.",
    "sum": "`sum(x in LIST: EXPR)`: the sum of EXPR (numbers, or durations) over the elements.",
    "if": "`any(x in LIST if COND: EXPR)`: a quantifier's filter; only the elements for which "
          "COND holds are considered (any, all, count and sum).",
    "true": "The boolean true.",
    "false": "The boolean false.",
    "params": "`params { name: type, ... }`: the schema of a task instance's parameters.",
    "tools": "`tools PATTERN, ...`: the tools a task may call.",
    "data": "In a tool, `data A, B`: the classes it always touches; in a task, `data <= X`: the "
            "ceiling. In a condition, `data` is the set of classes involved in the call.",
    "delegate": "`delegate { to AGENTS  depth <= N }`: who a task may be handed to, how deep. "
                "Without it the chain may not go deeper than 1.",
    "to": "`to AGENT, ...`: the agents a task may be delegated to.",
    "depth": "`depth <= N`: the deepest delegation chain a task allows.",
    "args": "In a tool, `args { name: type, name?: type }`: the arguments' schema. In a condition, "
            "`args` is the call's arguments.",
}

FIELDS = {
    ("agent", "id"): "the acting agent's workload identity (e.g. a SPIFFE ID)",
    ("agent", "attrs"): "free-form attributes of the agent",
    ("task", "kind"): "the task's declared name",
    ("task", "id"): "the task instance's id",
    ("task", "params"): "the task instance's parameters (typed by the task's `params` schema)",
    ("task", "objective"): "the task's objective, in words",
    ("task", "age"): "how long ago the task started (a duration)",
    ("task", "started_at"): "when the task started",
    ("task", "seen"): "the data classes the task has taken in so far (its session), compared "
                      "through the lattice like `data`: `task.seen >= secret`",
    ("task", "history"): "the task's earlier calls, oldest first: items with `tool`, `intent`, "
                         "`data`, `args`, `decision`, `at`, `age`",
    ("agent", "verified"): "true when a valid JWT-SVID proved the agent's identity",
    ("history item", "tool"): "the tool the earlier call named",
    ("history item", "intent"): "the call's intents (a set: `payment in h.intent`)",
    ("history item", "data"): "the call's data classes (a set, through the lattice: "
                              "`h.data >= secret`)",
    ("history item", "args"): "the call's arguments (not checked against tool schemas)",
    ("history item", "decision"): "`\"allow\"`, `\"deny\"` or `\"ask\"`",
    ("history item", "at"): "when the call was decided",
    ("history item", "age"): "how long ago the call was decided (a duration, at this decision's "
                             "`now`)",
    ("chain", "depth"): "the number of hand-offs from the origin: [alice, bot] is 1, an empty "
                        "chain 0",
    ("chain", "hops"): "the list of hops, each with `principal`, `kind`, `at`, `scope`",
    ("chain", "origin"): "the first hop (missing when the chain is empty)",
    ("hop", "principal"): "who this hop is (a user or an agent identity)",
    ("hop", "kind"): "`human`, `agent`, ...",
    ("hop", "at"): "when the hop was delegated to",
    ("hop", "scope"): "what the hop attenuated the delegation to (`tools`, `intents`, `data`, `ttl`)",
    ("target", "host"): "the host the call goes to",
    ("target", "external"): "whether the target is outside the organisation",
}

TARGET = T.obj(host=T.STRING, external=T.BOOL)


def root_doc(name: str) -> tuple[str, str]:
    """A root's type, as a condition outside any rule's scope sees it, and what it holds.

    >>> root_doc("now")
    ('timestamp', 'the decision time')
    """
    return str(T.root_types()[name]), ROOTS[name]
