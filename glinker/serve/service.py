"""What a ``/link`` request asks for, checked per request, and the pipeline that answers it.

:class:`RequestChecker` needs only the pipeline's config (no models), so the HTTP front can check
requests before they join a batch; :class:`LinkService` holds the loaded pipeline and links a batch
of documents from many requests in one executor call, with :class:`glinker.jobs.pipeline.Linker`,
so each result is exactly a ``glinker link`` output line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..errors import GlinkerError
from ..inputs import validate_mentions, validate_texts
from ..jobs.pipeline import Linker, linking_only, load_pipeline, output_key, output_record
from ..types import L1Output, L2Output

FIELDS = ("texts", "ids", "entities", "candidates")


class RequestError(Exception):
    """A request refused before batching: HTTP ``status``, a short ``error`` and a ``detail`` naming the field."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(f"{error}: {detail}")
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}


@dataclass(frozen=True)
class Limits:
    max_request_docs: int = 256
    max_text_chars: int = 1_000_000
    max_body_bytes: int = 32 * 1024 * 1024


@dataclass(slots=True)
class Document:
    """One text of a request, as it travels through a batch."""

    id: Any
    text: str
    mentions: list[dict] | None = None
    candidates: int = 0


def _invalid(detail: str) -> RequestError:
    return RequestError(422, "invalid request", detail)


class RequestChecker:
    """Turns a ``/link`` body into documents, or refuses it with a :class:`RequestError`."""

    def __init__(self, config: str | Path | dict, limits: Limits, device: str | None = None):
        pipeline = load_pipeline(config, device)
        self.limits = limits
        self.finds_mentions = bool(pipeline.nodes_with_output(L1Output))
        self.has_candidates = output_key(pipeline, L2Output) is not None

    def documents(self, body: bytes) -> list[Document]:
        if len(body) > self.limits.max_body_bytes:
            raise RequestError(413, "body too large", f"{len(body)} bytes, more than {self.limits.max_body_bytes}")
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _invalid(f"malformed JSON: {exc}") from None
        if not isinstance(request, dict):
            raise _invalid(f"the body must be a JSON object, got {type(request).__name__}")
        unknown = sorted(set(request) - set(FIELDS))
        if unknown:
            raise _invalid(f"unknown field {unknown[0]!r}; expected {', '.join(FIELDS)}")
        texts = self._texts(request.get("texts"))
        ids = self._ids(request.get("ids"), len(texts))
        mentions = self._mentions(request.get("entities"), texts)
        k = self._candidates(request.get("candidates", 0))
        return [Document(ids[i], text, None if mentions is None else mentions[i], k) for i, text in enumerate(texts)]

    def _texts(self, texts: Any) -> list[str]:
        if texts is None:
            raise _invalid("texts: required (a list of strings)")
        if isinstance(texts, list) and len(texts) > self.limits.max_request_docs:
            raise RequestError(413, "too many documents",
                               f"texts: {len(texts)} documents, more than {self.limits.max_request_docs}")
        if isinstance(texts, list):
            for i, text in enumerate(texts):
                if isinstance(text, str) and len(text) > self.limits.max_text_chars:
                    raise RequestError(413, "text too long", f"texts[{i}]: {len(text)} characters, more than "
                                       f"{self.limits.max_text_chars}")
        try:
            return validate_texts(texts, self.limits.max_text_chars)
        except GlinkerError as exc:
            raise _invalid(str(exc)) from None

    @staticmethod
    def _ids(ids: Any, count: int) -> list[Any]:
        if ids is None:
            return list(range(count))
        if not isinstance(ids, list) or len(ids) != count:
            raise _invalid(f"ids: must be a list of {count} strings or integers, one per text")
        for i, doc_id in enumerate(ids):
            if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
                raise _invalid(f"ids[{i}] must be a string or an integer, got {type(doc_id).__name__}")
        return ids

    def _mentions(self, entities: Any, texts: list[str]) -> list[list[dict]] | None:
        if entities is None:
            if not self.finds_mentions:
                raise _invalid("entities: required, this pipeline has no mention extraction (L1) node")
            return None
        try:
            validate_mentions(entities, texts)
        except GlinkerError as exc:
            raise _invalid(str(exc)) from None
        return entities

    def _candidates(self, k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise _invalid(f"candidates: must be an integer >= 0, got {k!r}")
        if k and not self.has_candidates:
            raise _invalid("candidates: this pipeline has no candidate retrieval (L2) node")
        return k


class LinkService:
    """The pipeline loaded once (and its linking-only variant, for given mentions, when it finds its own)."""

    def __init__(self, config: str | Path | dict, kb: str | Path, device: str | None = None,
                 max_text_chars: int = Limits.max_text_chars):
        self.linker = Linker(config, kb, device=device, max_text_chars=max_text_chars)
        given = linking_only(self.linker.pipeline)
        self.given = self.linker if given is self.linker.pipeline else Linker(
            given, kb, max_text_chars=max_text_chars)

    def run(self, docs: list[Document]) -> list[dict]:
        """The output record of each document, in order; found and given mentions run as two calls."""
        results: list[dict | None] = [None] * len(docs)
        for linker, given in ((self.linker, False), (self.given, True)):
            part = [i for i, doc in enumerate(docs) if (doc.mentions is not None) == given]
            if not part:
                continue
            entities = [docs[i].mentions for i in part] if given else None
            per_text, relations, _ = linker.outputs([docs[i].text for i in part], entities,
                                                    [docs[i].candidates for i in part])
            for i, ents, rels in zip(part, per_text, relations, strict=True):
                results[i] = output_record(docs[i].id, ents, rels)
        return results
