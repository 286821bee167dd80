"""Code generation: one Python function per decision-tree leaf, compiled with `compile()`.

Each leaf (a tool name, refined by a task kind) becomes a function `(R, I, D, NOW, failed)` that
returns the matching forbids, asks and permits and the indices of the rules whose compiled
condition raised. Those rules are then decided by the reference evaluator, which owns error
messages and spans (the evaluation is pure, so doing it twice gives the same answer); a rule the
generator does not specialise is handed over the same way.

Values are the ones of agp.values and the operations are its functions: generated code only
inlines the common case of an operation (`x <= 500` when `x` is a number) and calls the shared
function for every other case, so both evaluators take the same path whenever it matters.

Every function gets its own namespace (a copy of the policy set's), a unique pseudo-filename
registered in `linecache`, and a line map from generated lines back to policy spans
(`CompiledEvaluator.locate`), so a profile or a traceback can be read against the `.agp` file.
The linecache entry and the line map are dropped when the function is freed, so their number
follows the number of live functions, which the decision tree bounds.
"""

from __future__ import annotations

import itertools
import linecache
import weakref
from datetime import datetime, timedelta

from agp import budget, interp
from agp.compile.ir import literal_value
from agp.compile.passes import is_boolean
from agp.glob import compile_glob
from agp.stdlib.builtins import BUILTINS
from agp.steps import chain_depth
from agp.values import (
    LabelSet,
    Missing,
    arith,
    attribute,
    equal,
    has,
    matches,
    member,
    negate,
    order,
    truth,
)

ROOTS = frozenset(("tool", "args", "intent", "data", "target", "agent", "task", "chain",
                   "context", "now"))
_CMP = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_MISSING = object()


class Unsupported(Exception):
    """An expression the generator leaves to the reference evaluator (rare forms)."""


def _no_target():
    raise Missing("the request has no `target`")


def _no_task():
    raise Missing("the request has no `task`")


def _path(value, names):
    """Read a chain of attributes; _MISSING (what `has` and `is` turn into false) when absent."""
    for n in names:
        if value is _MISSING:
            return value
        if isinstance(value, dict):
            value = value[n] if n in value else _MISSING
        else:
            attribute(value, n)  # raises the reference's error for a non-object
    return value


def _has_v(value, name):
    return False if value is _MISSING else has(value, name)


def _is_v(value, label):
    return False if value is _MISSING else interp.is_label(value, label)


BASE = {
    "_attribute": attribute, "_equal": equal, "_order": order, "_member": member,
    "_matches": matches, "_arith": arith, "_negate": negate, "_truth": truth,
    "_quantified": interp.quantified, "_metered": budget.metered, "_no_task": _no_task, "_chain_depth": chain_depth, "_LabelSet": LabelSet, "_no_target": _no_target, "_path": _path,
    "_has_v": _has_v, "_is_v": _is_v, "_MISSING": _MISSING, "_NUM": (int, float),
    "_any": any, "_all": all, "timedelta": timedelta, "datetime": datetime,
    "_environment": interp.environment,
}

_counter = itertools.count()


def may_fail(x, bound=frozenset()) -> bool:
    """False only when the expression can never raise (so a decided outcome may skip it)."""
    tag = x[0]
    if tag == "lit":
        return False
    if tag == "name":
        return x[1] in ("target", "task") and x[1] not in bound
    if tag == "attr":
        return not (x[1][0] == "name" and x[1][1] == "agent" and "agent" not in bound
                    and x[2] in ("id", "attrs"))
    if tag == "list":
        return any(may_fail(i, bound) for i in x[1])
    if tag == "un":
        return x[1] != "not" or not is_boolean(x[2]) or may_fail(x[2], bound)
    if tag == "bin":
        op, left, right = x[1], x[2], x[3]
        if op in ("and", "or"):
            return any(not is_boolean(s) or may_fail(s, bound) for s in (left, right))
        if op in ("==", "!="):
            return may_fail(left, bound) or may_fail(right, bound)
        if op == "in" and right[0] == "list":
            return may_fail(left, bound) or may_fail(right, bound)
        return True
    if tag == "has":
        return not (x[1][0] == "name" and x[1][1] in ("args", "target", "agent", "task",
                                                        "context", "chain")
                    and x[1][1] not in bound)
    return True


def ir_size(x) -> int:
    """The number of nodes of an IR expression: that of its AST (agp.interp.expr_size), since
    the passes leave quantifiers as written."""
    tag = x[0]
    if tag == "list":
        return 1 + sum(ir_size(i) for i in x[1])
    if tag in ("attr", "has", "is"):
        return 1 + ir_size(x[1])
    if tag == "un":
        return 1 + ir_size(x[2])
    if tag == "bin":
        return 1 + ir_size(x[2]) + ir_size(x[3])
    if tag == "quant":
        return 1 + ir_size(x[4]) + ir_size(x[5])
    if tag == "call":
        return 1 + sum(ir_size(a) for a in x[3])
    return 1  # a literal or a name


class ExprGen:
    """Python source for the expressions of one leaf function."""

    def __init__(self, ns: dict, labels: dict, lattice, prefix: str):
        self.ns = ns
        self.labels = labels  # name -> Label
        self.lattice = lattice
        self.prefix = prefix
        self.n = 0
        self.uses: set[str] = set()  # roots the leaf's preamble must bind
        self._consts: dict = {}

    def const(self, value, key=None) -> str:
        key = key if key is not None else (type(value), value)
        name = self._consts.get(key)
        if name is None:
            name = f"_{self.prefix}_{len(self._consts)}"
            self._consts[key] = name
            self.ns[name] = value
        return name

    def tmp(self) -> str:
        self.n += 1
        return f"_t{self.n}"

    # -- values -------------------------------------------------------------------------------

    def value(self, x, scope: dict, walrus: bool) -> str:
        tag = x[0]
        if tag == "lit":
            return self.literal(literal_value(x[1]))
        if tag == "list":
            if all(i[0] == "lit" for i in x[1]):
                return self.literal_list(x)
            return "[" + ", ".join(self.value(i, scope, walrus) for i in x[1]) + "]"
        if tag == "name":
            return self.name(x[1], scope)
        if tag == "attr":
            obj = x[1]
            if obj[0] == "name" and obj[1] == "agent" and "agent" not in scope and x[2] in (
                    "id", "attrs"):
                self.uses.add("agent")
                return f"AG.{x[2]}"
            if obj[0] == "name" and obj[1] == "chain" and "chain" not in scope and x[2] == "depth":
                return "_chain_depth(R.chain)"
            if obj[0] == "name" and obj[1] == "task" and "task" not in scope and x[2] in (
                    "params", "kind"):
                return f"(R.task.{x[2]} if R.task is not None else _no_task())"
            o = self.value(obj, scope, walrus)
            k = repr(x[2])
            if walrus:
                t = self.tmp()
                return f"({t}[{k}] if type({t} := {o}) is dict and {k} in {t} else " \
                       f"_attribute({t}, {k}))"
            return f"_attribute({o}, {k})"
        if tag == "un":
            if x[1] == "not":
                return f"(not {self.boolean(x[2], scope, walrus, 'the operand of `not`')})"
            return f"_negate({self.value(x[2], scope, walrus)})"
        if tag == "bin":
            return self.binary(x, scope, walrus)
        if tag == "has":
            return f"_has_v({self.tolerant(x[1], scope, walrus)}, {x[2]!r})"
        if tag == "is":
            return self.is_(x, scope, walrus)
        if tag == "quant":
            var = f"_q{self.tmp()}"
            inner = {**scope, x[2]: var}
            seq = self.value(x[4], scope, False)
            body = self.boolean(x[5], inner, False, "a quantifier body")
            fn = "_any" if x[1] == "any" else "_all"
            code = f"{fn}({body} for {var} in _quantified({seq}, {ir_size(x[5])}))"
            # One not inside another owns an evaluation budget, as in the reference (agp.budget);
            # `_metered` checks at run time too, like the reference does.
            return code if scope else f"_metered(lambda: {code})"
        if tag == "call":
            fn = BUILTINS.get(x[1])
            if fn is None:
                raise Unsupported(f"unknown function {x[1]!r}")
            impl = self.const(fn.impl, key=("fn", x[1]))
            return f"{impl}({', '.join(self.value(a, scope, walrus) for a in x[3])})"
        raise Unsupported(tag)

    def literal_list(self, x, values=None) -> str:
        # Keyed by the node, not its text: a list literal may be megabytes long, and the IR
        # outlives the generation of the function.
        if values is None:
            values = [literal_value(i[1]) for i in x[1]]
        return self.const(tuple(values), key=("list", id(x)))

    def literal(self, v) -> str:
        if isinstance(v, bool) or v is None:
            return repr(v)
        if type(v) is str or type(v) is int:
            return repr(v)
        return self.const(v)

    def name(self, n: str, scope: dict) -> str:
        if n in scope:
            return scope[n]
        if n in ROOTS:
            self.uses.add(n)
            return {
                "tool": "R.tool", "args": "ARGS", "intent": '_LabelSet("intent", I)',
                "data": '_LabelSet("class", D)', "target": "(T if T is not None else _no_target())",
                "agent": '{"id": AG.id, "attrs": AG.attrs}',
                "task": "E['task']", "chain": "E['chain']", "context": "R.context", "now": "NOW",
            }[n]
        label = self.labels.get(n)
        if label is None:
            raise Unsupported(f"unknown name {n!r}")
        return self.const(label, key=("label", n))

    def tolerant(self, x, scope: dict, walrus: bool) -> str:
        """The value of an object for `has` and `is`: _MISSING instead of a Missing error."""
        names = []
        while x[0] == "attr":
            names.append(x[2])
            x = x[1]
        if x[0] != "name":
            raise Unsupported("`has` or `is` on a computed object")
        if x[1] in scope:
            root = scope[x[1]]
        elif x[1] == "target":
            self.uses.add("target")
            root = "(T if T is not None else _MISSING)"
        elif x[1] == "task":
            self.uses.add("task")
            root = "E.get('task', _MISSING)"
        else:
            root = self.name(x[1], scope)
        if not names:
            return root
        return f"_path({root}, {tuple(reversed(names))!r})"

    def is_(self, x, scope, walrus) -> str:
        label = self.labels.get(x[2])
        if label is None:
            raise Unsupported("unknown label")
        obj = x[1]
        if obj[0] == "name" and obj[1] not in scope:
            if obj[1] == "agent" and label.kind == "agent":
                self.uses.add("agent")
                return f"{self.const(label.glob, key=('glob', label.glob.pattern))}.match(AG.id)"
            if obj[1] == "task" and label.kind == "task":
                self.uses.add("task_kind")
                return f"(K == {label.name!r})"
        return f"_is_v({self.tolerant(obj, scope, walrus)}, {self.const(label, ('label', x[2]))})"

    def boolean(self, x, scope, walrus, what: str) -> str:
        code = self.value(x, scope, walrus)
        if is_boolean(x):
            return code
        return f"_truth({code}, {what!r})"

    def binary(self, x, scope, walrus) -> str:
        op, left, right = x[1], x[2], x[3]
        if op in ("and", "or"):
            what = f"an operand of `{op}`"
            return f"({self.boolean(left, scope, walrus, what)} {op} " \
                   f"{self.boolean(right, scope, walrus, what)})"
        if op in ("==", "!="):
            code = self.equality(left, right, scope, walrus)
            return code if op == "==" else f"(not {code})"
        if op in _CMP:
            return self.ordering(op, left, right, scope, walrus)
        if op == "in":
            return self.membership(left, right, scope, walrus)
        if op == "matches":
            glob = compile_glob(right[1]) if right[0] == "lit" and type(right[1]) is str else None
            if glob is not None and walrus and glob.linear:  # `_matches` may refuse the others
                g = self.const(glob, key=("glob", right[1]))
                t = self.tmp()
                s = self.value(left, scope, walrus)
                return f"({g}.match({t}) if type({t} := {s}) is str else " \
                       f"_matches({t}, {right[1]!r}))"
            return f"_matches({self.value(left, scope, walrus)}, {self.value(right, scope, walrus)})"
        if op in ("+", "-"):
            return f"_arith({op!r}, {self.value(left, scope, walrus)}, " \
                   f"{self.value(right, scope, walrus)})"
        raise Unsupported(op)

    def equality(self, left, right, scope, walrus) -> str:
        if left[0] == "lit" and right[0] != "lit":
            left, right = right, left  # equal() is symmetric
        if right[0] == "lit":
            v = literal_value(right[1])
            if isinstance(v, bool):
                return f"({self.value(left, scope, walrus)} is {v!r})"
            if walrus and (type(v) is str or type(v) in (int, float)):
                test = "is str" if type(v) is str else "in _NUM"
                t = self.tmp()
                lit = self.literal(v)
                return f"({t} == {lit} if type({t} := {self.value(left, scope, walrus)}) " \
                       f"{test} else _equal({t}, {lit}))"
        return f"_equal({self.value(left, scope, walrus)}, {self.value(right, scope, walrus)})"

    def ordering(self, op, left, right, scope, walrus) -> str:
        lat = self.const(self.lattice, key=("lattice",))
        for a, b, o in ((left, right, op), (right, left, _FLIP[op])):
            # `data OP class`, written either way round: a table lookup when every class of the
            # request is declared (otherwise the shared function decides, and may fail).
            if a[0] == "name" and a[1] == "data" and "data" not in scope and b[0] == "name" \
                    and b[1] not in scope and self._is_class(b[1]):
                self.uses.add("data")
                cls = b[1]
                below = self.lattice.below
                if o in ("<=", "<"):
                    ok = frozenset(n for n in below
                                   if n in below[cls] and (o == "<=" or n != cls))
                    test = f"D <= {self.const(ok, key=('set', o, cls))}"
                else:
                    above = frozenset(n for n in below if cls in below[n]
                                      and (o == ">=" or n != cls))
                    test = f"not D.isdisjoint({self.const(above, key=('set', o, cls))})"
                known = self.const(frozenset(below), key=("known",))
                label = self.const(self.labels[cls], key=("label", cls))
                return f"({test} if D <= {known} else _order({o!r}, _LabelSet('class', D), " \
                       f"{label}, {lat}))"
        if walrus:
            for a, b, flip in ((left, right, False), (right, left, True)):
                if b[0] == "lit":
                    v = literal_value(b[1])
                    test = {str: "is str", int: "in _NUM", float: "in _NUM",
                            timedelta: "is timedelta"}.get(type(v))
                    if test is None:
                        continue
                    t = self.tmp()
                    lit = self.literal(v)
                    av = self.value(a, scope, walrus)
                    expr = f"{lit} {op} {t}" if flip else f"{t} {op} {lit}"
                    args = f"{lit}, {t}" if flip else f"{t}, {lit}"
                    return f"({expr} if type({t} := {av}) {test} else " \
                           f"_order({op!r}, {args}, {lat}))"
        return f"_order({op!r}, {self.value(left, scope, walrus)}, " \
               f"{self.value(right, scope, walrus)}, {lat})"

    def _is_class(self, name: str) -> bool:
        lb = self.labels.get(name)
        return lb is not None and lb.kind == "class"

    def membership(self, left, right, scope, walrus) -> str:
        if right[0] == "list" and right[1] and all(i[0] == "lit" for i in right[1]) and walrus:
            values = [literal_value(i[1]) for i in right[1]]
            lst = self.literal_list(right, values)
            t = self.tmp()
            item = self.value(left, scope, walrus)
            if all(type(v) is str for v in values):
                s = self.const(frozenset(values), key=("strs", id(right)))
                return f"({t} in {s} if type({t} := {item}) is str else _member({t}, {lst}))"
            if all(type(v) in (int, float) for v in values):
                s = self.const(frozenset(values), key=("nums", id(right)))
                return f"({t} in {s} if type({t} := {item}) in _NUM else _member({t}, {lst}))"
        if right[0] == "name" and right[1] in ("intent", "data") and right[1] not in scope:
            want = "intent" if right[1] == "intent" else "class"
            names = None
            if left[0] == "lit" and type(left[1]) is str:
                names = left[1]
            elif left[0] == "name" and left[1] not in scope and left[1] not in ROOTS:
                lb = self.labels.get(left[1])
                if lb is not None and lb.kind == want:
                    names = lb.name
            if names is not None:
                self.uses.add(right[1])
                return f"({names!r} in {'I' if want == 'intent' else 'D'})"
        return f"_member({self.value(left, scope, walrus)}, {self.value(right, scope, walrus)})"


def _agents_test(gen: ExprGen, patterns) -> str:
    exact = frozenset(p for p in patterns if "*" not in p and "?" not in p)
    tests = []
    if exact:
        tests.append(f"AID in {gen.const(exact, key=('agents', tuple(sorted(exact))))}")
    for p in patterns:
        if p not in exact:
            tests.append(f"{gen.const(compile_glob(p), key=('glob', p))}.match(AID)")
    return " or ".join(tests) if tests else "False"


def generate_leaf(rules: list, durations: frozenset, ctx) -> tuple:
    """The function deciding `rules`, compiled, with its source registered in linecache and its
    line map in `ctx.line_maps` for as long as the function lives.

    `rules` are one leaf's candidate rules for one task kind, as (index, rule, dynamic
    on-intents or None), in policy order; forbids and asks are emitted before permits.
    `durations` are the duration arguments of the tool declarations the leaf matches. The code
    depends on nothing else (no tool name, no task kind), so leaves share it.
    """
    n = next(_counter)
    # A namespace per function, not one per policy set: when the function is dropped (a leaf
    # memo evicts it, a reload replaces the evaluator) its constants go with it.
    ns = dict(ctx.namespace)
    gen = ExprGen(ns, ctx.labels, ctx.lattice, f"L{n}")
    body: list[tuple[str, object]] = []  # (line, span or None)
    ordered = [r for r in rules if r[1]["effect"] == "forbid"] + \
              [r for r in rules if r[1]["effect"] == "ask"] + \
              [r for r in rules if r[1]["effect"] == "permit"]
    delegated = set()
    for idx, rule, dyn in ordered:
        effect = rule["effect"]
        target = {"forbid": "F", "ask": "A", "permit": "P"}[effect]
        rec = gen.const(ctx.records[idx], key=("rule", idx))
        span = ctx.span(rule["span"])
        body.append((f"# {effect} {rule['name']!r} at {str(span)!r}", span))
        guards = []
        if dyn is not None:
            gen.uses.add("intent")
            guards.append(f"not {gen.const(dyn, key=('oi', tuple(sorted(dyn))))}.isdisjoint(I)")
        if rule["agents"] is not None:
            gen.uses.add("aid")
            guards.append(f"({_agents_test(gen, rule['agents'])})")
        try:
            conds = []
            if rule["when"] is not None:
                conds.append((gen.boolean(rule["when"], {}, True, "a condition"), rule["when"]))
            if rule["unless"] is not None:
                conds.append(("not " + gen.boolean(rule["unless"], {}, True, "a condition"),
                              rule["unless"]))
            fallible = any(may_fail(c[1]) or not is_boolean(c[1]) for c in conds)
        except Unsupported:
            delegated.add(idx)
            conds, fallible = None, True
        if effect != "forbid" and not fallible:
            # The outcome is already deny: a rule that cannot fail changes nothing.
            guards.insert(0, "not (failed or F)")
        pad = ""
        if guards:
            body.append((f"if {' and '.join(guards)}:", span))
            pad = "    "
        if conds is None:
            body.append((f"{pad}X = (X or []) + [{idx}]", span))
            continue
        if not conds:
            body.append((f"{pad}{target}.append({rec})", span))
            continue
        body.append((f"{pad}try:", span))
        test = " and ".join(f"({c})" for c, _ in conds)
        body.append((f"{pad}    if {test}:", ctx.span(conds[0][1][-1])))
        body.append((f"{pad}        {target}.append({rec})", span))
        body.append((f"{pad}except Exception:", span))
        body.append((f"{pad}    X = (X or []) + [{idx}]", span))
    pre = ["F = []", "A = []", "P = []", "X = None"]
    uses = gen.uses
    if "agent" in uses or "aid" in uses:
        pre.append("AG = R.agent")
    if "aid" in uses:
        pre.append("AID = AG.id")
    if "task_kind" in uses:
        pre.append("K = R.task.kind if R.task is not None else None")
    if "target" in uses:
        pre.append("T = R.target")
    needs_env = bool(uses & {"task", "chain"}) or ("args" in uses and durations)
    if needs_env:
        dur = gen.const(durations, key=("durations",))
        pre.append(f"E = _environment(R, NOW, I, D, {dur})")
    if "args" in uses:
        pre.append("ARGS = E['args']" if durations else "ARGS = R.args")
    fname = f"leaf_{n}"
    lines = [f"def {fname}(R, I, D, NOW, failed):"]
    lines.extend("    " + p for p in pre)
    line_map: dict[int, object] = {}
    for text, span in body:
        lines.append("    " + text)
        if span is not None:
            line_map[len(lines)] = span
    lines.append("    return F, A, P, X")
    source = "\n".join(lines) + "\n"
    filename = f"<agp {ctx.hash[7:19]} leaf {n}>"
    code = compile(source, filename, "exec")
    exec(code, ns)  # noqa: S102 - our own generated source; IR strings enter only via repr()
    fn = ns.pop(fname)  # the namespace must not hold the function: no cycle, freed on last use
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    ctx.line_maps[filename] = line_map
    ctx.delegated |= delegated
    weakref.finalize(fn, _forget, filename, ctx.line_maps).atexit = False  # nothing to tidy then
    return fn, filename, line_map, delegated, source


def _forget(filename: str, line_maps: dict) -> None:
    """A generated function was freed: so are its linecache entry and its line map."""
    linecache.cache.pop(filename, None)
    line_maps.pop(filename, None)
