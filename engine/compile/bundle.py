"""Compiled bundles (format 4): a one-line header with the format version and a SHA-256 of the
body, then the body.

The header is read and checked first; the body is hashed and compared before it is parsed, and
it is parsed as JSON, never unpickled or executed: a bundle carries data, and the code generator
lets its strings into Python only as bound constants. The hash detects corruption and edits made
without recomputing it; it is not a signature (sign or HMAC the file to authenticate its origin).

The body's first line is what loading reads: the source texts, the declarations, and every rule
after the passes, by form (`dumps`: one example rule per form, with its AST; each rule its scope,
its form's number and its literals' values, checked against the form's kinds when read), in
columns (`_COLUMNS`: a list per field rather than a row per rule, each checked in one pass). So
loading runs no pass and decodes no condition but the examples': code is generated per form
(agp.compile.codegen) and each rule binds its own literals. Each later line is one rule as
written (`Written`), decoded when first read: the reference evaluator explains a rule's
evaluation error with its conditions as written, and the engine of a bundle lists every rule of
the policy set only when asked (`Engine.policy`).

The IR is written and read by one pair of functions, `encode` and `decode`, driven by the type
annotations of its dataclasses (`agp.compile.ir` and the AST of `agp.syntax.ast`), so a new field
or a new form of expression needs no code here. A dataclass is a JSON array headed by its class
name, `["Binary", "and", [...], [...], [0, 18, 33]]`; a `Span` is `[source, start, end]`, an
index into the body's table of source texts (so that messages and line maps point at the policy
text without parsing it again); a duration is `{"us": microseconds}`. Decoding checks every value
against its annotation and builds only the classes the annotations name: the body chooses among
the forms of a union by name, and nothing else.

>>> from agp.source import Source
>>> from agp.syntax import ast
>>> from agp.syntax.parser import parse
>>> when = parse(Source("x.agp", "permit p when not x")).items[0].when
>>> table = Sources()
>>> data = encode(when, ast.Expr, table)
>>> data
['Unary', 'not', ['NameRef', 'x', [0, 18, 19]], [0, 14, 19]]
>>> decode(data, ast.Expr, [Source("x.agp", table.texts[0][1])]).operand
NameRef(name='x', span=Span(source=Source('x.agp'), start=18, end=19))
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import threading
import types
import typing
from collections import abc, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from agp import __version__
from agp.compile.codegen import cond_shape, hole_kind, hole_value
from agp.compile.ir import EFFECTS, FormRef, IRRule, Program
from agp.compile.passes import optimise
from agp.frozen import slot_setters
from agp.source import Source, Span
from agp.syntax import ast

MAGIC = "agp-bundle"
FORMAT_VERSION = 4

_US = timedelta(microseconds=1)


class BundleError(Exception):
    """A bundle that cannot be loaded: another version, a tampered or corrupted file."""


class Sources:
    """The source texts that the spans of an encoded value point into, in order of first use."""

    def __init__(self) -> None:
        self.index: dict[int, int] = {}
        self.texts: list[list[str]] = []  # [name, text]

    def number(self, source: Source) -> int:
        key = id(source)
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.texts)
            self.texts.append([source.name, source.text])
        return found


Encode = Callable[[Any, Sources], Any]
Decode = Callable[[Any, list[Source]], Any]
_ENCODERS: dict[object, Encode] = {}
_DECODERS: dict[object, Decode] = {}


def encode(value: object, tp: object, sources: Sources) -> Any:
    """`value`, of type `tp`, as JSON-able data (spans numbered in `sources`)."""
    return _built(tp, _ENCODERS, _encoder)(value, sources)


def decode(data: object, tp: object, sources: list[Source]) -> Any:
    """The value of type `tp` that `encode` wrote as `data`; ValueError when `data` is not one."""
    return _built(tp, _DECODERS, _decoder)(data, sources)


Make = Callable[[tuple[Any, ...]], Any]  # a shape -> its encoder, or its decoder
_BUILD = threading.Lock()


def _built(tp: object, cache: dict[object, Any], make: Make) -> Any:
    """The codec of `tp`, built on first use (under a lock: two threads may load bundles)."""
    found = cache.get(tp)
    if found is None or type(found) is list:
        with _BUILD:
            found = _codec(tp, cache, make)
    return found


def _codec(tp: object, cache: dict[object, Any], make: Make) -> Any:
    found = cache.get(tp)
    if type(found) is list:
        # A record inside itself: a codec that calls the one being built, through the list that
        # receives it.
        return lambda v, s: found[0](v, s)
    if found is None:
        later: list[Any] = []
        cache[tp] = later
        forms = _forms(tp)
        if forms is not None:
            # The several forms of an expression, each tagged with its class name. The codec is
            # cached before its forms are built, so that a form inside itself (a Binary's
            # operands) calls it directly rather than through `later`: a call less per node.
            codecs: dict[str, Any] = {}
            found = cache[tp] = make(("union", len(forms) < len(typing.get_args(tp)), codecs))
            codecs.update((a.__name__, _codec(a, cache, make)) for a in forms)
        elif dataclasses.is_dataclass(tp) and tp is not Span:
            hints = typing.get_type_hints(tp)
            found = cache[tp] = make(("record", tp, [_codec(hints[f.name], cache, make)
                                                     for f in dataclasses.fields(tp)]))
        else:
            found = cache[tp] = make(_shape(tp, cache, make))
        later.append(found)
    return found


def _forms(tp: object) -> list[Any] | None:
    """The forms of a union of several (null aside), or None when `tp` is not one."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    members = [a for a in typing.get_args(tp) if a is not type(None)]
    return members if len(members) > 1 else None


def _shape(tp: object, cache: dict[object, Any], make: Make) -> tuple[Any, ...]:
    """What kind of value `tp` is, with the codecs of its parts."""
    if tp in (str, int, bool, type(None)):
        return ("scalar", tp)
    if tp is Span or tp is timedelta or tp is object:  # object: a literal's value
        return ({Span: "span", timedelta: "duration", object: "value"}[tp],)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis or origin is abc.Sequence:
        return ("tuple", _codec(args[0], cache, make))
    if origin is dict and args[0] is str:
        return ("dict", _codec(args[1], cache, make))
    if origin in (typing.Union, types.UnionType):  # of one form (several: see `_codec`)
        return ("optional", _codec(next(a for a in args if a is not type(None)), cache, make))
    raise TypeError(f"no JSON form for {tp!r}")


def _encoder(shape: tuple[Any, ...]) -> Encode:
    kind = shape[0]
    if kind == "scalar":
        return lambda v, s: v
    if kind == "record":
        cls, fields = shape[1], shape[2]
        names = [f.name for f in dataclasses.fields(cls)]
        return lambda v, s: [cls.__name__, *(f(getattr(v, n), s)
                                             for f, n in zip(fields, names, strict=True))]
    if kind == "span":
        return lambda v, s: [s.number(v.source), v.start, v.end]
    if kind == "duration":
        return lambda v, s: {"us": v // _US}
    if kind == "value":
        return lambda v, s: {"us": v // _US} if isinstance(v, timedelta) else v
    if kind == "tuple":
        item = shape[1]
        return lambda v, s: [item(x, s) for x in v]
    if kind == "dict":
        value = shape[1]
        return lambda v, s: {k: value(x, s) for k, x in v.items()}
    if kind == "optional":
        inner = shape[1]
        return lambda v, s: None if v is None else inner(v, s)
    optional, forms = shape[1], shape[2]
    return lambda v, s: None if v is None and optional else forms[type(v).__name__](v, s)


def _bad(what: str, data: object) -> ValueError:
    return ValueError(f"expected {what}, found {json.dumps(data)[:60]}")


def _int(data: object) -> int:
    if type(data) is not int:
        raise _bad("an integer", data)
    return data


def _duration(data: object) -> timedelta:
    if type(data) is not dict or data.keys() != {"us"}:
        raise _bad("a duration", data)
    return timedelta(microseconds=_int(data["us"]))


def _value(data: object) -> object:
    """A literal's value: a string, a finite number, a boolean or a duration."""
    if type(data) in (str, bool, int) or (type(data) is float and math.isfinite(data)):
        return data
    return _duration(data)


def _decoder(shape: tuple[Any, ...]) -> Decode:
    kind = shape[0]
    if kind == "scalar":
        return _scalar(shape[1])
    if kind == "record":
        return _record(shape[1], shape[2])
    if kind == "span":
        return _span
    if kind == "duration":
        return lambda d, s: _duration(d)
    if kind == "value":
        return lambda d, s: _value(d)
    if kind == "tuple":
        return _tuple(shape[1])
    if kind == "dict":
        return _dict(shape[1])
    if kind == "optional":
        inner = shape[1]
        return lambda d, s: None if d is None else inner(d, s)
    return _union(shape[1], shape[2])


def _scalar(tp: type) -> Decode:
    def decode(data: object, sources: list[Source]) -> object:
        if type(data) is not tp:
            raise _bad(f"a {tp.__name__}", data)
        return data

    return decode


_new = object.__new__


def _record(cls: type, fields: list[Decode]) -> Decode:
    name, size = cls.__name__, len(fields) + 1
    plan = list(zip(range(1, size), slot_setters(cls), fields, strict=True))

    def decode(data: object, sources: list[Source]) -> object:
        if type(data) is not list or len(data) != size or data[0] != name:
            raise _bad(f"a {name}", data)
        made: object = _new(cls)
        for i, set_field, field in plan:
            set_field(made, field(data[i], sources))
        return made

    return decode


_SET_SOURCE, _SET_START, _SET_END = slot_setters(Span)


def _span(data: object, sources: list[Source]) -> Span:
    # The commonest value of a bundle (every node has one): tested without a call per part.
    if type(data) is list and len(data) == 3:
        i, start, end = data
        if type(i) is int and type(start) is int and type(end) is int \
                and 0 <= i < len(sources) and 0 <= start <= end <= len(sources[i].text):
            span = _new(Span)
            _SET_SOURCE(span, sources[i])
            _SET_START(span, start)
            _SET_END(span, end)
            return span
    raise _bad("a span", data)


def _tuple(item: Decode) -> Decode:
    def decode(data: object, sources: list[Source]) -> tuple[object, ...]:
        if type(data) is not list:
            raise _bad("a list", data)
        return tuple([item(x, sources) for x in data])

    return decode


def _dict(value: Decode) -> Decode:
    def decode(data: object, sources: list[Source]) -> dict[str, object]:
        if type(data) is not dict:
            raise _bad("an object", data)
        return {k: value(x, sources) for k, x in data.items()}

    return decode


def _union(optional: bool, forms: dict[str, Decode]) -> Decode:
    def decode(data: object, sources: list[Source]) -> object:
        if data is None and optional:
            return None
        form = forms.get(data[0]) if type(data) is list and data and type(data[0]) is str \
            else None
        if form is None:
            raise _bad(" or ".join(forms) + (" or null" if optional else ""), data)
        return form(data, sources)

    return decode


# ---- the file --------------------------------------------------------------------------------


def dumps(program: Program) -> bytes:
    """A bundle's body: one line of JSON with what loading needs (the source texts, the
    declarations, every rule after the passes by form, in columns: `_COLUMNS`), then each rule as
    written, one line of JSON each, decoded only when an error must be explained (`Written`)."""
    sources = Sources()
    after = {r.index: r for r in optimise(program).rules}
    forms: dict[object, int] = {}
    examples: list[Any] = []
    cols: dict[str, list[Any]] = {c: [] for c in _COLUMNS}
    for r in program.rules:
        o = after.get(r.index)
        state: object = 0  # removed by the passes
        if o is not None and o.when is None and o.unless is None:
            state = 1  # no condition left
        elif o is not None:
            key, holes = cond_shape(o)
            form = forms.get(key)
            if form is None:
                form = forms[key] = len(examples)
                examples.append(encode(o, IRRule, sources))
            where = (o.when if o.when is not None else o.unless).span  # type: ignore[union-attr]
            state = [form, [_hole_data(hole_value(h)) for h in holes],
                     encode(where, Span, sources)]
        for c, value in zip(_COLUMNS, (
                r.name, r.effect, list(r.on_tools), list(r.on_intents), r.scoped_on,
                _opt_list(r.tasks), _opt_list(r.agents), _opt_list(r.agent_names),
                encode(r.ttl, timedelta | None, sources), r.because, state,
                encode(r.span, Span, sources), encode(r.name_span, Span, sources)), strict=True):
            if c in _SPANS:
                cols[c] += value
            else:
                cols[c].append(value)
    written = [_json(encode(r, IRRule, sources)) for r in program.rules]
    head = encode(dataclasses.replace(program, rules=(), compiled=None), Program, sources)
    # The hash first, so that a reader compares it with the header's before decoding anything.
    first = _json({"hash": program.hash, "sources": sources.texts, "program": head,
                   "forms": examples, "rules": cols})
    return "\n".join([first, *written]).encode("utf-8")


# The columns of the rules after the passes (`dumps`, `_rules`), one value per rule in each: a
# list per column rather than a row per rule, so that each column is checked in one pass and
# JSON builds no list per rule. A span column holds three integers per rule (`_span`).
_COLUMNS = ("name", "effect", "on_tools", "on_intents", "scoped_on", "tasks", "agents",
            "agent_names", "ttl", "because", "state", "span", "name_span")
_SPANS = ("span", "name_span")


def _json(value: object) -> str:
    # Compact JSON never holds a raw newline (strings escape theirs): one value per line.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _opt_list(items: tuple[str, ...] | None) -> list[str] | None:
    return None if items is None else list(items)


def _hole_data(value: object) -> object:
    """A hole's value as JSON (`_hole` reads it back)."""
    if type(value) is tuple:
        return [_hole_data(v) for v in value]
    return {"us": value // _US} if isinstance(value, timedelta) else value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _parse(line: bytes) -> Any:
    return json.loads(line.decode("utf-8"), parse_constant=_no_constant)


def loads(body: bytes, policy: object = None, name: str = "the bundle") -> Program:
    """The Program of a bundle's body (of policy hash `policy`, when given), its rules after the
    passes in `compiled`; BundleError when the body is not one."""
    first, _, rest = body.partition(b"\n")
    try:
        data = _parse(first)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{name}: unreadable bundle body: {exc}") from None
    if not isinstance(data, dict) or policy is not None and data.get("hash") != policy:
        raise BundleError(f"{name}: the bundle body does not match its header")
    try:
        texts = data["sources"]
        if type(texts) is not list or not all(
                type(t) is list and len(t) == 2 and all(type(x) is str for x in t) for t in texts):
            raise _bad("a list of [name, text]", texts)
        sources = [Source(n, t) for n, t in texts]
        program: Program = decode(data["program"], Program, sources)
        if program.rules or program.compiled is not None:
            raise _bad("a program without rules", data["program"])
        examples = [_example(e, sources) for e in _list(data["forms"])]
        forms = [(cond_shape(e)[0], e, [hole_kind(hole_value(h)) for h in cond_shape(e)[1]])
                 for e in examples]
        compiled = _rules(data["rules"], sources, forms)
        if (rest.count(b"\n") + 1 if rest else 0) != len(compiled):
            raise _bad(f"{len(compiled)} rules as written", "another number of lines")
    except (KeyError, ValueError, TypeError) as exc:
        raise BundleError(f"{name}: malformed bundle ({exc})") from None
    return dataclasses.replace(program, rules=Written(rest, len(compiled), sources, name),
                               compiled=compiled)


def _list(data: object) -> list[Any]:
    if type(data) is not list:
        raise _bad("a list", data)
    return data


def _example(data: object, sources: list[Source]) -> IRRule:
    rule: IRRule = decode(data, IRRule, sources)
    if rule.form is not None or rule.when is None and rule.unless is None:
        raise _bad("a rule with its conditions", data)
    return rule


def _strs(data: object) -> tuple[str, ...]:
    if type(data) is not list or not all(type(x) is str for x in data):
        raise _bad("a list of strings", data)
    return tuple(data)


def _opt_strs(data: object) -> tuple[str, ...] | None:
    return None if data is None else _strs(data)


def _hole(data: object, shared: dict[object, object]) -> object:
    """A hole's value (`codegen.hole_value`): a literal's value, or a tuple of them (one object
    for equal tuples of strings: thousands of rules list the same few)."""
    if type(data) is list:
        items = tuple([_value(x) for x in data])
        if all(type(x) is str for x in items):
            return shared.setdefault(items, items)
        return items
    return data if data is None else _value(data)


def _column(cols: dict[str, Any], name: str, n: int, ok: Callable[[Any], bool] | None = None,
            what: str = "") -> list[Any]:
    """Column `name` of `n` values (`_COLUMNS`), each passing `ok` when given."""
    col = cols[name]
    if type(col) is not list or len(col) != n:
        raise _bad(f"a column {name} of {n} values", col)
    if ok is not None and not all(map(ok, col)):
        raise _bad(f"{what} in each value of column {name}", col)
    return col


def _is_str(x: object) -> bool:
    return type(x) is str


def _is_opt_str(x: object) -> bool:
    return x is None or type(x) is str


def _spans(col: list[Any], sources: list[Source]) -> list[Span]:
    """A span column's spans: three integers each, checked as `_span` checks one."""
    return [_span(col[i:i + 3], sources) for i in range(0, len(col), 3)]


# The setters of the fields of IRRule and FormRef, in order (see agp.frozen).
_IR_RULE, _FORM_REF = slot_setters(IRRule), slot_setters(FormRef)


def _rules(cols: object, sources: list[Source],
           forms: list[tuple[object, IRRule, list[object]]]) -> tuple[IRRule, ...]:
    """The rules after the passes, from their columns (`dumps`); ValueError when they are not."""
    if type(cols) is not dict or cols.keys() != set(_COLUMNS):
        raise _bad("the columns " + ", ".join(_COLUMNS), cols)
    n = len(cols["name"]) if type(cols["name"]) is list else -1
    names = _column(cols, "name", n, _is_str, "a string")
    effects = _column(cols, "effect", n, EFFECTS.__contains__, "an effect")
    scoped = _column(cols, "scoped_on", n, lambda x: type(x) is bool, "a boolean")
    because = _column(cols, "because", n, _is_opt_str, "a string or null")
    tools = [_strs(x) for x in _column(cols, "on_tools", n)]
    intents = [_strs(x) for x in _column(cols, "on_intents", n)]
    tasks = [_opt_strs(x) for x in _column(cols, "tasks", n)]
    agents = [_opt_strs(x) for x in _column(cols, "agents", n)]
    agent_names = [_opt_strs(x) for x in _column(cols, "agent_names", n)]
    ttls = [None if x is None else _duration(x) for x in _column(cols, "ttl", n)]
    spans = _spans(_column(cols, "span", 3 * n), sources)
    name_spans = _spans(_column(cols, "name_span", 3 * n), sources)
    shared: dict[object, object] = {}
    whens: list[ast.Expr | None] = [None] * n
    refs: list[FormRef | None] = [None] * n
    for i, state in enumerate(_column(cols, "state", n)):
        if state == 0 and type(state) is int:
            whens[i] = ast.Literal(False, spans[i])  # the passes remove it (prune_dead_rules)
        elif type(state) is list and len(state) == 3 and type(state[0]) is int \
                and 0 <= state[0] < len(forms):
            key, example, kinds = forms[state[0]]
            holes = tuple([_hole(h, shared) for h in _list(state[1])])
            if [hole_kind(h) for h in holes] != kinds:
                raise _bad(f"the constants of form {state[0]}", state[1])
            ref = refs[i] = _new(FormRef)
            for set_field, value in zip(_FORM_REF, (key, example, holes,
                                                    _span(state[2], sources)), strict=True):
                set_field(ref, value)
        elif not (state == 1 and type(state) is int):
            raise _bad("a rule's state", state)
    # Built a field at a time, from its column (an IRRule's __init__ sets each field through
    # `object.__setattr__`, as a frozen dataclass must: twice as slow, for 10,000 rules).
    rules = [_new(IRRule) for _ in range(n)]
    columns: tuple[Iterable[Any], ...] = (
        range(n), names, name_spans, effects, tools, intents, scoped, tasks, agents,
        agent_names, whens, itertools.repeat(None), ttls, because, spans, refs)
    for set_field, column in zip(_IR_RULE, columns, strict=True):
        deque(map(set_field, rules, column), maxlen=0)
    return tuple(rules)


class Written(Sequence[IRRule]):
    """The rules of a bundle as written, each decoded when it is first read: the error path
    explains a rule's failure with its conditions as written, and `Engine.policy` lists them."""

    def __init__(self, text: bytes, count: int, sources: list[Source], name: str):
        self._text = text
        self._count = count
        self._sources = sources
        self._name = name
        self._lines: list[bytes] | None = None
        self._rules: dict[int, IRRule] = {}

    def __len__(self) -> int:
        return self._count

    @typing.overload
    def __getitem__(self, i: int) -> IRRule: ...

    @typing.overload
    def __getitem__(self, i: slice) -> Sequence[IRRule]: ...

    def __getitem__(self, i: int | slice) -> IRRule | Sequence[IRRule]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._count))]
        if not -self._count <= i < self._count:
            raise IndexError(i)
        i %= self._count
        rule = self._rules.get(i)
        if rule is None:
            rule = self._rules[i] = self._decode(i)
        return rule

    def __iter__(self) -> Iterator[IRRule]:
        return (self[i] for i in range(self._count))

    def _decode(self, i: int) -> IRRule:
        lines = self._lines
        if lines is None:  # as many as rules (`loads` counted them)
            lines = self._lines = self._text.split(b"\n")
        try:
            rule: IRRule = decode(_parse(lines[i]), IRRule, self._sources)
            if rule.index != i or rule.form is not None or rule.effect not in EFFECTS:
                raise _bad(f"rule {i}", rule.name)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleError(f"{self._name}: malformed bundle ({exc})") from None
        return rule


def write_bundle(program: Program, path: str | Path) -> None:
    data = dumps(program)
    header = {"format": MAGIC, "version": FORMAT_VERSION, "agp": __version__,
              "sha256": hashlib.sha256(data).hexdigest(), "policy": program.hash}
    Path(path).write_bytes(json.dumps(header).encode() + b"\n" + data)


def read_bundle(path: str | Path) -> Program:
    name = str(path)
    policy, body = _checked_body(path, name)
    return loads(body, policy, name)


def _checked_body(path: str | Path, name: str) -> tuple[object, bytes]:
    """The policy hash and the body of the bundle at `path`, once its header (format, version)
    and the body's SHA-256 are checked."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {name}: {exc.strerror or exc}") from None
    head, sep, body = raw.partition(b"\n")
    try:
        header = json.loads(head) if sep else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != MAGIC:
        raise BundleError(f"{name} is not an agp bundle (write one with `agp compile -o`)")
    if header.get("version") != FORMAT_VERSION or header.get("agp") != __version__:
        raise BundleError(
            f"{name} is a bundle of format {header.get('version')!r} written by agp "
            f"{header.get('agp')!r}; this is agp {__version__} (format {FORMAT_VERSION}): "
            "compile the policy again")
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise BundleError(f"{name} has been modified or corrupted since it was written "
                          "(its content does not match its SHA-256)")
    return header.get("policy"), body
