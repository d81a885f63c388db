"""Precomputing GLiNER bi-encoder label embeddings for the MEDIC KB: our way against GLiNER's default.

The model is a GLiNER bi-encoder built locally (no trained GLiNER weights can be downloaded here):
all-MiniLM-L6-v2 as text and label encoder, random span/label heads (cached under
benchmarks/cache). Ours embeds every MEDIC entity through ``KnowledgeBase.vectors`` (labels
tokenised with dynamic padding, sorted by length). GLiNER's ``encode_labels`` pads every label to
512 tokens, which took 1,391 s for all 11,865 labels here, so it runs on a random sample and its
time is extrapolated linearly (said so in the output). Prints a table, then one JSON line.

    python benchmarks/precompute.py [--sample 500] [--batch 128] [--template "{label}"]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import orjson
from common import CACHE, MEDIC, ROOT

PADDED_BATCH = 32  # what glinker 0.1.1's precompute_embeddings passes to encode_labels


def minilm_bi_encoder() -> str:
    """A GLiNER bi-encoder over all-MiniLM-L6-v2 (text and labels), built once and cached."""
    sys.path.insert(0, str(ROOT))
    from tests.tiny_models import minilm_path, tiny_gliner

    out = CACHE / "gliner-bi-minilm"
    if not (out / "gliner_config.json").exists():
        print(f"building {out}", file=sys.stderr)
        tiny_gliner(out, minilm_path(), bi_encoder=True, max_width=12)
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=500, help="labels embedded GLiNER's padded way")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--template", default="{label}")
    args = parser.parse_args()
    if not MEDIC.exists():
        print(f"skipped: {MEDIC} not found", file=sys.stderr)
        return

    from glinker.kb import KnowledgeBase
    from glinker.models.gliner import get_gliner, label_encoder

    gliner = get_gliner(minilm_bi_encoder())
    kb = KnowledgeBase()
    kb.load(MEDIC)
    total = len(kb)
    encoder = label_encoder(gliner)
    started = time.perf_counter()
    ours = kb.vectors(encoder, "entities", args.template, batch_size=args.batch).matrix
    ours_seconds = time.perf_counter() - started

    sample = np.sort(np.random.default_rng(0).choice(total, size=min(args.sample, total), replace=False))
    texts = kb.store.render(sample, args.template)
    started = time.perf_counter()
    padded = gliner.model.encode_labels(texts, batch_size=PADDED_BATCH).float().numpy()
    sample_seconds = time.perf_counter() - started
    padded_seconds = sample_seconds * total / len(sample)
    diff = float(np.abs(np.asarray(ours)[sample] - padded).max())

    print(f"{'method':40s} {'seconds':>9s} {'labels':>7s}  note")
    print(f"{'ours: dynamic padding':40s} {ours_seconds:9.1f} {total:7d}  measured")
    print(f"{'GLiNER encode_labels: padded to 512':40s} {padded_seconds:9.1f} {total:7d}  "
          f"extrapolated from {len(sample)} labels in {sample_seconds:.1f} s")
    print(f"ratio padded / ours: {padded_seconds / ours_seconds:.1f}x; max abs diff on the sample: {diff:.2e}; "
          f"template {args.template!r}, batch {args.batch}")
    print(orjson.dumps({
        "benchmark": "precompute", "labels": total, "template": args.template, "ours_seconds": round(ours_seconds, 2),
        "padded_seconds_extrapolated": round(padded_seconds, 1), "padded_sample": len(sample),
        "padded_sample_seconds": round(sample_seconds, 2), "ratio": round(padded_seconds / ours_seconds, 1),
        "max_abs_diff": diff, "target_seconds": 60, "target_met": ours_seconds <= 60 and diff <= 1e-5,
    }).decode())


if __name__ == "__main__":
    main()
