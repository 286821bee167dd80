"""The language's fixed vocabulary, defined once for the checker, both evaluators and the editor.

`ROOTS` are the names a condition starts from (LANGUAGE.md §4): they cannot be declared, and a
condition reads the request through them. `KIND_WORDS` is how messages name each kind of thing a
policy declares.

>>> "now" in ROOTS, with_article(KIND_WORDS["intent"])
(True, 'an intent')
"""

from __future__ import annotations

# Each name, with what it holds (the language server shows it). Its type is
# agp.check.types.root_types()'s.
ROOTS: dict[str, str] = {
    "tool": "the called tool's name",
    "args": "the call's arguments (typed by the schemas of the rule's tools)",
    "intent": "the set of intents of the call: the tool declaration's plus the request's",
    "data": "the set of data classes involved: the request's plus the tool declaration's",
    "target": "where the call goes, e.g. `target.host`, `target.external`",
    "agent": "the acting agent: `agent.id`, `agent.attrs.*`, `agent.verified`",
    "task": "the task instance: `task.kind`, `task.id`, `task.params.*`, `task.objective`, "
            "`task.age`; its session: `task.seen`, `task.history`",
    "chain": "the delegation chain: `chain.depth`, `chain.hops`, `chain.origin`",
    "context": "free-form attributes supplied by the caller",
    "now": "the decision time",
}

# The kinds of what a policy declares (data classes, intents, agents and tasks share one
# namespace; tools and rules have their own), as messages name them.
KIND_WORDS: dict[str, str] = {"class": "data class", "intent": "intent", "agent": "agent",
                              "task": "task", "tool": "tool", "rule": "rule"}


def with_article(word: str) -> str:
    """`a data class`, `an intent`."""
    return ("an " if word[0] in "aeiou" else "a ") + word
