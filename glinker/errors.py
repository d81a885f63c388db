"""The exceptions glinker raises. All are ``ValueError``s, so callers of the 0.1.x API keep working.

A :class:`Reject` is the record of a bad input row or line skipped instead of raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


class GlinkerError(ValueError):
    """Base class of every error glinker raises on purpose."""


class ConfigError(GlinkerError):
    """A pipeline config is invalid: the message names the node and the key."""


class KnowledgeBaseError(GlinkerError):
    """An entity row, file or index directory is invalid: the message names the file, line and field."""


class InputError(GlinkerError):
    """The input given to ``execute`` (or a bulk job) is invalid: the message names the index and field."""


class ModelNotFoundError(GlinkerError):
    """A model name cannot be resolved offline and the hub is not reachable: the message says what to install."""


class LimitError(GlinkerError):
    """An input exceeds a documented limit (text length, candidates, labels)."""


@dataclass(slots=True)
class Reject:
    """A bad input record skipped instead of raised: where it was (``source``, ``line``, ``field``),
    why, and the start of the ``raw`` line where there is one. Fields left None are not written."""

    line: int
    reason: str
    raw: str | None = None
    source: str | None = None
    field: str | None = None

    def message(self) -> str:
        where = f"{self.source}, line {self.line}" if self.line else str(self.source)
        return f"{where}: field {self.field!r}: {self.reason}" if self.field is not None else f"{where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        fields = {"source": self.source, "line": self.line, "field": self.field, "reason": self.reason, "raw": self.raw}
        return {key: value for key, value in fields.items() if value is not None}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict()) + b"\n"
