"""Building frozen, slotted dataclasses without their `__init__`, where a load makes hundreds of
thousands of them (the parser's AST nodes and spans, a bundle's rules).

A frozen dataclass's `__init__` sets each field with `object.__setattr__`, which looks the field
up by its name to get past the frozen check; setting each slot through its own descriptor makes
the same object in about half the time. Only for classes whose `__init__` does nothing else: no
`__post_init__`, no default factory, every field a slot (checked here, once per class).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")


def slot_setters(cls: type) -> list[Callable[[object, Any], None]]:
    """The setters of the fields of `cls`, in their order (an instance is `object.__new__(cls)`
    with each field set). Raises TypeError for a class whose `__init__` does more."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls!r}: not a dataclass, or one with a __post_init__ (its __init__ "
                        "does more than set its fields)")
    fields = dataclasses.fields(cls)
    slots = [cls.__dict__.get(f.name) for f in fields]
    if any(f.default_factory is not dataclasses.MISSING for f in fields) or \
            not all(isinstance(s, types.MemberDescriptorType) for s in slots):
        raise TypeError(f"{cls!r} is not a slotted dataclass without default factories")
    return [s.__set__ for s in slots]  # type: ignore[union-attr]  # all descriptors: checked


def maker(cls: Callable[_P, _T]) -> Callable[_P, _T]:
    """A function that makes an instance of `cls` from the arguments of its `__init__` (defaults
    included), as the `__init__` does. Generated once per class, as dataclasses generates
    `__init__`."""
    assert isinstance(cls, type)
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    params, sets = [], []
    for f, setter in zip(dataclasses.fields(cls), slot_setters(cls), strict=True):
        namespace[f"set_{f.name}"] = setter
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            namespace[f"default_{f.name}"] = f.default
            params.append(f"{f.name}=default_{f.name}")
        sets.append(f"    set_{f.name}(made, {f.name})")
    exec("\n".join([f"def make({', '.join(params)}):", "    made = new(cls)", *sets,
                    "    return made"]), namespace)
    make: Callable[_P, _T] = namespace["make"]
    return make
