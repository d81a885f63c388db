"""``glinker train`` task ``priors``: L3's mention priors counted from annotated documents.

Every linked mention of ``data.train_data`` (``train_split``) counts once for its normalised surface and
its entity; with ``data.kb`` (the KB's entity JSONL) a mention linked to an id the KB lacks goes to the
rejects file instead. ``OUT/model/priors.json`` is what L3's ``priors`` reads (glinker/linking/priors.py).
"""

from __future__ import annotations

from typing import Any

from ..linking.priors import PRIORS_FILE, MentionPriors
from .data import read_docs, read_kb


def count_priors(run) -> dict[str, Any]:
    data = run.config.data
    docs = read_docs(data.train_data, data.train_split, data, run.rejects, data.max_docs)
    known = {e.entity_id for e in read_kb(data.kb, "{label}", run.rejects)} if data.kb else None
    pairs = []
    for doc in docs:
        for span in doc.spans:
            if span.entity_id is None:
                continue
            if known is not None and span.entity_id not in known:
                run.rejects.add(doc.source, doc.line, data.fields.entity_id,
                                f"entity {span.entity_id!r} is not in the KB {data.kb}")
                continue
            pairs.append((doc.text[span.start : span.end], span.entity_id))
    priors = MentionPriors.count(pairs)
    run.rejects.flush()
    counts = {"docs": len(docs), "mentions": len(pairs), "surfaces": len(priors.surfaces)}
    run.describe(f"priors: {counts['mentions']} linked mentions of {counts['docs']} documents, "
                 f"{counts['surfaces']} surfaces; {len(run.rejects.rows)} rejected")

    def save(folder):
        folder.mkdir(parents=True, exist_ok=True)
        priors.save(folder / PRIORS_FILE)

    return run.finish(None, [counts], save, [])
