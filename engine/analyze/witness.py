"""From a solver's model to a concrete Request, and back through the evaluators to confirm it.

A witness is shown only once both evaluators (the reference interpreter and the compiled one)
decide it as the solver said: the encoding over-approximates what it cannot encode exactly, so a
model may be spurious, and a spurious one is never shown (agp.analyze.encode).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import z3  # type: ignore[import-untyped]  # z3 ships no type information

from agp.analyze.encode import HOP_KINDS, Space, glob_regex
from agp.engine import Evaluator, make_evaluator
from agp.model import Decision
from agp.policy import Policy

UTC = timezone.utc
NICE_MS = 1000  # the budget of a check with the preferences of `nice`
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ESCAPE = re.compile(r"\\u\{([0-9a-fA-F]+)\}")


class Solver:
    """Checks of formulas over one space, each with a time budget (`timeout` seconds).

    Each check runs on a fresh z3 solver: an incremental one (push/pop, assumptions) skips the
    preprocessing that strings and regular expressions need, and was slower by one or two orders
    of magnitude, and unpredictably so, on the example sets. Every check holds the request's
    validity (`space.valid()`, built at the first check: the encodings have then added every
    path) and what `add` adds.
    """

    def __init__(self, space: Space, timeout: float) -> None:
        self.space = space
        self.extra: list[z3.BoolRef] = []
        self._valid: dict[tuple[bool, bool], z3.BoolRef] = {}
        self.timeout = max(1, int(timeout * 1000))
        self.timeouts = 0
        self._model: z3.ModelRef | None = None
        self._nice: z3.BoolRef | None = None
        self._plain: tuple[z3.BoolRef, z3.BoolRef] | None = None

    @property
    def nice(self) -> z3.BoolRef:
        """`nice(space)`, built once (the space's paths are all known by the first check)."""
        if self._nice is None:
            self._nice = nice(self.space)
        return self._nice

    @property
    def plain(self) -> tuple[z3.BoolRef, z3.BoolRef]:
        """`nice` in two parts: what is cheap to ask of the solver, and what is only checked
        on its model (printable strings: regular expressions over every string of the request
        doubled the time of a witness check, and the solver's own strings mostly are)."""
        if self._plain is None:
            self._plain = nice(self.space, strings=False), printable_strings(self.space)
        return self._plain

    def readable(self, *facts: z3.BoolRef, chain: bool = True, tool: bool = True) -> str:
        """A check of the facts that prefers a model that reads well (`nice`), with a short
        budget: first with the cheap part of the preferences, its model kept when its strings
        are printable too; else with all of them."""
        cheap, strings = self.plain
        verdict = self.check(*facts, cheap, timeout=NICE_MS, chain=chain, tool=tool)
        if verdict != "sat":
            return verdict
        assert self._model is not None
        if z3.is_true(self._model.eval(strings, model_completion=True)):
            return verdict
        return self.check(*facts, self.nice, timeout=NICE_MS, chain=chain, tool=tool)

    def valid(self, chain: bool = True, tool: bool = True) -> z3.BoolRef:
        """The space's validity; without `chain`, for requests without a chain only; without
        `tool`, for checks that fix the tool to one of the space's `tool_names`."""
        key = (chain, tool)
        if key not in self._valid:
            s = self.space
            self._valid[key] = s.valid(tool=tool) if chain else \
                z3.And(s.valid(hops=False, tool=tool), s.length == 0)
        return self._valid[key]

    @property
    def model(self) -> z3.ModelRef | None:
        """The model of the last check, when it was "sat"."""
        return self._model

    def add(self, *facts: z3.BoolRef) -> None:
        self.extra.extend(facts)

    def check(self, *facts: z3.BoolRef, timeout: int | None = None, chain: bool = True,
              tool: bool = True) -> str:
        """"sat", "unsat" or "unknown" (the time budget ran out, or the solver gave up).
        `timeout` (milliseconds) shortens the budget of this check; without `chain`, only
        requests without a chain are searched (cheaper for the solver); without `tool`, the
        facts fix the tool to one of the space's `tool_names` (its shape then goes unsaid)."""
        solver = z3.Solver(ctx=self.space.ctx)
        solver.set("timeout", min(self.timeout, timeout or self.timeout))
        solver.add(self.valid(chain, tool), *self.extra, *facts)
        result = solver.check()
        self._model = solver.model() if result == z3.sat else None
        if result == z3.sat:
            return "sat"
        if result == z3.unsat:
            return "unsat"
        if timeout is None:  # a shortened check that ran out is only a preference lost
            self.timeouts += 1
        return "unknown"

    def first(self, tries: Iterable[Sequence[z3.BoolRef]], *facts: z3.BoolRef,
              tool: bool = True, chain: bool = True) -> tuple[str, z3.ModelRef | None]:
        """A model of the facts: first of each of `tries` (formulas that imply the facts in a
        small part of the space, a fixed tool, one of the space's `tool_names`, and a fixed
        task: agp.analyze.encode.Leaf), each with a short budget, then of the facts
        themselves. A free tool name under many patterns, with every task's envelope rows, can
        take the solver seconds where a leaf takes milliseconds. Without `chain`, a try that
        has no model without a chain has none with one either (the caller knows). When no leaf
        has a model, the facts mostly have none either: the proof comes first, the preferences
        only after it."""
        space = self.space
        for formulas in tries:
            # most rules need no chain, and a search without one is quicker: then with one
            for with_chain in (False, True):
                verdict = self.readable(*formulas, space.length <= space.hops,
                                        chain=with_chain, tool=False)
                if verdict == "sat":
                    return "sat", self._model
                if verdict == "unsat" and not chain:
                    break
        verdict = self.check(*facts, tool=tool)
        if verdict != "sat":
            return verdict, None
        return self.witness(*facts, tool=tool)

    def witness(self, *facts: z3.BoolRef, tool: bool = True) -> tuple[str, z3.ModelRef | None]:
        """A model of the facts, preferring one that reads well and survives JSON (whole
        numbers and seconds, printable ASCII): the solver's own choice otherwise. Without
        `tool`, as in `check`."""
        # The preferences make some checks much slower (strings): they get a short budget.
        verdict = self.readable(*facts, self.space.length <= self.space.hops, tool=tool)
        if verdict == "sat":
            return verdict, self._model
        verdict = self.check(*facts, tool=tool)  # a proof of absence takes this check more
        if verdict == "sat":  # perhaps only a long chain will do: a readable one if possible
            raw = self._model
            if self.readable(*facts, tool=tool) != "sat":
                self._model = raw
            verdict = "sat"
        return verdict, self._model


def nice(space: Space, strings: bool = True) -> z3.BoolRef:
    """What makes a model read well and survive JSON; without `strings`, all of it but
    `printable_strings`."""
    V = space.Val
    out = [printable_strings(space)] if strings else []
    # it names the chain's last hop: not empty (and, with the strings, readable); a name of
    # our own when no formula reads it (cheaper for the solver than any constraint on it)
    out.append(z3.Length(space.agent_id) > 0 if space.agent_read else
               space.agent_id == z3.StringVal("agent", space.ctx))
    out += [z3.IsInt(space.now), z3.IsInt(space.started),
            z3.Implies(space.has_started, space.started <= space.now)]
    # What a request cannot say on its own (a verified identity needs a trusted SVID; the task
    # state is the runtime's): only when needed.
    out += [z3.Not(space.verified), z3.Not(space.identity_failed), z3.Not(space.ended),
            z3.Not(space.store_down), z3.Not(space.session_full), z3.Not(space.history_late)]
    for key, (_, value) in space.paths.items():
        out += [z3.Implies(V.is_num(value), z3.IsInt(V.n(value))),
                z3.Not(V.is_time(value))]  # JSON has no timestamps: they are strings
        if key[0] != "args":  # only an args field declared `duration` reads a duration
            out.append(z3.Not(V.is_dur(value)))
        else:
            out.append(z3.Implies(V.is_dur(value), z3.IsInt(V.d(value))))
    return z3.And(out)


def printable_strings(space: Space) -> z3.BoolRef:
    """Every string of the request in printable ASCII; the agent's id without spaces too."""
    V = space.Val
    printable = z3.Star(z3.Range(" ", "~", space.ctx))
    strings = [space.tool, space.agent_id, space.task_kind, space.task_id, space.objective]
    out = [z3.InRe(x, printable) for x in strings]
    out.append(z3.InRe(space.agent_id, z3.Plus(z3.Range("!", "~", space.ctx))))
    out += [z3.Implies(V.is_str(value), z3.InRe(V.s(value), printable))
            for _, value in space.paths.values()]
    return z3.And(out)


def text(model: z3.ModelRef, s: z3.SeqRef) -> str:
    raw = model.eval(s, model_completion=True).as_string()
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), raw)


def number(value: z3.ExprRef) -> int | float:
    f = Fraction(value.as_fraction())
    return int(f) if f.denominator == 1 else float(f)


def instant(model: z3.ModelRef, t: z3.ArithRef) -> str:
    secs = Fraction(model.eval(t, model_completion=True).as_fraction())
    when = _EPOCH + timedelta(microseconds=round(secs * 1_000_000))
    return when.isoformat().replace("+00:00", "Z")


def request_of(space: Space, model: z3.ModelRef) -> dict[str, Any]:
    """The concrete Request (as JSON) of a model: what `agp eval` accepts."""
    m, s = model, space

    def true(b: z3.BoolRef) -> bool:
        return bool(z3.is_true(m.eval(b, model_completion=True)))

    objects: dict[tuple[str, ...], dict[str, Any]] = {
        ("args",): {}, ("context",): {}, ("attrs",): {}, ("params",): {}, ("target",): {}}
    for key in sorted(s.paths, key=len):
        present, value = s.paths[key]
        parent = objects.get(key[:-1])
        if parent is None or not true(present):
            continue
        parent[key[-1]] = json_value(s, m, value, key, objects)
    request: dict[str, Any] = {"agent": {"id": text(m, s.agent_id)}, "tool": text(m, s.tool)}
    if objects[("attrs",)]:
        request["agent"]["attrs"] = objects[("attrs",)]
    if true(s.has_task):
        task: dict[str, Any] = {"kind": text(m, s.task_kind), "params": objects[("params",)]}
        if true(s.has_task_id):
            task["id"] = text(m, s.task_id)
        if true(s.has_objective):
            task["objective"] = text(m, s.objective)
        if true(s.has_started):
            task["started_at"] = instant(m, s.started)
        seen = [c for c in s.classes if true(s.seen[c])]
        if seen:
            task["seen"] = seen
        # the history's labels are all the model says of it (conditions see it as opaque)
        item_data = [c for c in s.classes if true(s.history_data[c])]
        item_intent = [i for i in s.intents if true(s.history_intent[i])]
        if item_data or item_intent:
            task["history"] = [{"tool": request["tool"], "intent": item_intent,
                                "data": item_data, "decision": "allow",
                                "at": instant(m, s.now)}]
        request["task"] = task
    length = m.eval(s.length, model_completion=True).as_long()
    if length:
        request["chain"] = chain_of(s, m, length, request["agent"]["id"])
    request["intent"] = [i for i in s.intents if true(s.intent[i])]
    request["data"] = [c for c in s.classes if true(s.data[c])]
    request["args"] = objects[("args",)]
    if true(s.has_target):
        request["target"] = objects[("target",)]
    request["context"] = objects[("context",)]
    request["now"] = instant(m, s.now)
    return request


def chain_of(s: Space, m: z3.ModelRef, length: int, agent: str) -> list[dict[str, str]]:
    """The chain of a model: its encoded hops, then, for a longer chain, new principals of
    kind agent up to the acting agent as the last hop (the likeliest shape of a valid chain:
    the evaluators then confirm it or not)."""
    known = min(length, s.hops)
    principals = principals_of(s, m, known, agent)
    chain = [{"principal": principals[i],
              "kind": HOP_KINDS[m.eval(s.kinds[i], model_completion=True).as_long()]}
             for i in range(known)]
    if length > known:
        taken = set(principals) | {agent}
        extra = (f"hop-{i}" for i in range(length * 2) if f"hop-{i}" not in taken)
        chain += [{"principal": next(extra), "kind": "agent"}
                  for _ in range(length - known - 1)]
        chain.append({"principal": agent, "kind": "agent"})
    return chain


def principals_of(s: Space, m: z3.ModelRef, length: int, agent: str) -> list[str]:
    """Strings for the hops' principals that fit the model's abstraction of them (the acting
    agent, the same as an earlier hop, or a new principal with the model's patterns), each new
    one found by a small solver of its own."""
    out: list[str] = []

    def true(b: z3.BoolRef) -> bool:
        return bool(z3.is_true(m.eval(b, model_completion=True)))

    for i in range(length):
        if true(s.hop_is_agent[i]):
            out.append(agent)
            continue
        same = next((out[j] for j in range(i) if true(s.hop_same[(j, i)])), None)
        if same is not None:
            out.append(same)
            continue
        wanted = {pattern: true(bit) for pattern, bit in s.hop_in[i].items()}
        easy = _easy_principal(s, wanted, {agent, *out}, i)
        if easy is not None:
            out.append(easy)
            continue
        ctx = z3.Context()
        p = z3.String("p", ctx)
        side = z3.Solver(ctx=ctx)
        side.set("timeout", 2000)
        side.add(z3.Length(p) > 0, z3.InRe(p, z3.Star(z3.Range(" ", "~", ctx))),
                 *(p != z3.StringVal(x, ctx) for x in [agent, *out]))
        for pattern, bit in s.hop_in[i].items():
            member = z3.InRe(p, glob_regex(pattern, ctx))
            side.add(member if true(bit) else z3.Not(member))
        out.append(text(side.model(), p) if side.check() == z3.sat else f"principal-{i}")
    return out


def _easy_principal(s: Space, wanted: dict[str, bool], taken: set[str], i: int) -> str | None:
    """A principal with the wanted patterns found without a solver (most are): a pattern it must
    match with its wildcards filled in, or a plain name when it must match none."""
    must = [p for p, hit in wanted.items() if hit]
    candidates = [re.sub(r"[*?]", "x", p) for p in must] or [f"principal-{i}", f"user-{i}"]
    for c in candidates:
        if c and c not in taken and c.isprintable() and \
                all(s.agent_globs[p].match(c) == hit for p, hit in wanted.items()):
            return c
    return None


def json_value(s: Space, m: z3.ModelRef, value: z3.DatatypeRef, key: tuple[str, ...],
               objects: dict[tuple[str, ...], dict[str, Any]]) -> Any:
    v = m.eval(value, model_completion=True)
    kind = v.decl().name()
    if kind == "str":
        return text(m, v.arg(0))
    if kind == "num":
        return number(v.arg(0))
    if kind == "bool":
        return bool(z3.is_true(v.arg(0)))
    if kind == "dur":  # a duration in JSON: a number of seconds
        return number(v.arg(0))
    if kind == "time":
        return instant(m, v.arg(0))
    if kind == "obj":
        objects[key] = {}
        return objects[key]
    if kind == "list":
        return [m.eval(v.arg(0), model_completion=True).as_long()]
    return None


@dataclass(frozen=True, slots=True)
class Decided:
    """A request as both evaluators decide it under one policy (None when they disagree: a
    defect of agp that the differential tests look for)."""

    decision: Decision | None
    reference: Decision
    compiled: Decision


def decide_both(evaluators: tuple[Evaluator, Evaluator], request: dict[str, Any]) -> Decided:
    reference, compiled = (e.decide(request) for e in evaluators)
    same = reference.to_json() == compiled.to_json()
    return Decided(reference if same else None, reference, compiled)


def evaluators(policy: Policy) -> tuple[Evaluator, Evaluator]:
    """The reference evaluator and the compiled one (what `agp.load(compiled=...)` builds)."""
    return make_evaluator(policy, False), make_evaluator(policy, True)
