"""The layer contract: what a processor module declares about itself, and nothing else.

Each module of ``layers/`` holds one ``CONTRACT`` and a ``build(config, setup)`` function. The engine
reads only the contract: the config model of the node's ``config``, the inputs (sockets) the layer
takes and what each holds, the output type, and whether the layer precomputes KB vectors. A
pipeline's wiring is checked against the contracts once, when it is validated: an input reads a
field of another node's output type (or of :class:`~glinker.inputs.ExecuteInput`), so its type is
known before anything runs.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .kb import KnowledgeBase


@dataclass(frozen=True)
class Socket:
    """A layer input: per text a string (``item`` None) or a list of ``item``."""

    item: type | None = None
    required: bool = True

    def describe(self) -> str:
        if self.item is None:
            return "a list of strings"
        return f"a list (one per text) of lists of {self.item.__name__}"

    def accepts(self, value_type: Any) -> bool:
        """Whether values of ``value_type`` (a type such as ``list[list[Mention]]``) fit this socket."""
        per_text = _element(value_type)
        if per_text is None:
            return False
        if self.item is None:
            return per_text is str
        item = _element(per_text)
        return isinstance(item, type) and issubclass(item, self.item)


@dataclass(frozen=True)
class LayerContract:
    """One processor's declaration (see the module docstring)."""

    config: type[BaseModel]
    inputs: Mapping[str, Socket]
    output: type
    # the built processor has ``precompute(batch_size, progress) -> int`` (KB vectors made ahead of time)
    precompute: bool = False
    # from the node's config: whether loading entities precomputes at once
    precompute_on_load: Callable[[Any], bool] | None = None
    # the names under which the layer reads the KB (``count_entities`` reports one count per name)
    kb_layers: Callable[[Any], list[str]] | None = None

    @property
    def required_inputs(self) -> list[str]:
        return [name for name, socket in self.inputs.items() if socket.required]


@dataclass(frozen=True)
class LayerSetup:
    """What a layer is built with: the KB every layer shares and the node's entity template."""

    kb: KnowledgeBase
    template: str = "{label}"


# --------------------------------------------------------------------------- types of wired values


def field_type(root: type, fields: str | None, reduce: str) -> Any:
    """The type an input receives: ``fields`` (a path such as ``entities`` or ``mentions[*].text``) of a
    value of type ``root``, then ``reduce``; it mirrors how the executor resolves the value."""
    value_type: Any = root
    for part in fields.split(".") if fields else ():
        mapped = part.endswith("[*]")
        name = part[:-3] if mapped else part
        if not name:
            continue
        inner = _element(value_type)
        if inner is not None and not mapped:
            value_type = list[_attribute(inner, name)]
        else:
            value_type = _attribute(value_type, name)
        if value_type is type(None):
            return value_type
    return _reduced(value_type, reduce)


def describe_type(value_type: Any) -> str:
    inner = _element(value_type)
    if inner is not None:
        return f"list[{describe_type(inner)}]"
    if value_type is Any:
        return "any value"
    return getattr(value_type, "__name__", str(value_type))


def optional(value_type: Any) -> bool:
    """Whether a value of this type may be None (an input the caller need not give)."""
    return type(None) in typing.get_args(value_type)


def _attribute(owner: Any, name: str) -> Any:
    owner = _without_none(owner)
    if not (dataclasses.is_dataclass(owner) and isinstance(owner, type)):
        return Any if owner is Any or typing.get_origin(owner) is dict or owner is dict else type(None)
    return typing.get_type_hints(owner).get(name, type(None))


def _reduced(value_type: Any, reduce: str) -> Any:
    inner = _element(value_type)
    if reduce == "all" or inner is None:
        return value_type
    if reduce in ("first", "last"):
        return inner | None
    while _element(inner) is not None:
        inner = _element(inner)
    return list[inner]


def _element(value_type: Any) -> Any:
    """The item type of a list type (None if ``value_type`` is not one)."""
    value_type = _without_none(value_type)
    if typing.get_origin(value_type) is list:
        (inner,) = typing.get_args(value_type)
        return inner
    return None


def _without_none(value_type: Any) -> Any:
    args = typing.get_args(value_type)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else value_type
    return value_type
