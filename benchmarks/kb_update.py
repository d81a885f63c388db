"""``glinker kb update`` on MEDIC: change 1,000 entities (new description; half of them also get a new alias)
and delete 100, on a copy of the cached MEDIC kb_dir; prints the time and how many texts were embedded
(only the changed ones: 1,000 entity texts and 500 names, of ~90k texts in the kb_dir).

    python benchmarks/kb_update.py [--changed 1000] [--deleted 100]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import MEDIC, medic_kb_dir, peak_rss_mib, require_shared_data  # noqa: E402


def changes(changed: int, deleted: int, folder: Path) -> tuple[Path, Path]:
    """An upsert file of ``changed`` MEDIC rows with new descriptions (every other one with a new alias) and a
    file of ``deleted`` other ids."""
    with gzip.open(MEDIC, "rb") as handle:
        rows = [orjson.loads(line) for line in handle if line.strip()]
    step = max(1, len(rows) // (changed + deleted))
    picked = rows[::step][: changed + deleted]
    upsert, ids = folder / "upsert.jsonl", folder / "delete.txt"
    with open(upsert, "wb") as out:
        for i, row in enumerate(picked[:changed]):
            row = {**row, "description": f"{row.get('description', '')} (revised)".strip()}
            if i % 2 == 0:
                row["aliases"] = [*row.get("aliases", []), f"{row['label']} (revised name)"]
            out.write(orjson.dumps(row) + b"\n")
    ids.write_text("".join(f"{row['entity_id']}\n" for row in picked[changed:]))
    return upsert, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changed", type=int, default=1000)
    parser.add_argument("--deleted", type=int, default=100)
    args = parser.parse_args()
    require_shared_data()
    from glinker.kb.update import kb_info, update_kb_dir

    source = medic_kb_dir()
    with tempfile.TemporaryDirectory(dir=source.parent) as tmp:
        kb_dir = Path(tmp) / "medic"
        shutil.copytree(source, kb_dir)
        before = kb_info(kb_dir)
        upsert, ids = changes(args.changed, args.deleted, Path(tmp))
        started, cpu = time.perf_counter(), time.process_time()
        manifest = update_kb_dir(kb_dir, upsert=upsert, delete=ids, progress=False)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = kb_info(kb_dir)
    texts = before["vectors"]["names"] + before["vectors"]["entities"]
    print(f"MEDIC kb_dir: {before['live']} entities, {before['names']} names ({texts} texts with vectors)")
    print(f"update: {args.changed} changed, {args.deleted} deleted -> generation {after['generation']}, "
          f"{after['live']} entities, {after['names']} names")
    record = manifest["update"]
    embedded = sum(record["embedded"].values())
    print(f"embedded {record['embedded']} = {embedded} of {texts} texts in {record['embed_seconds']:.1f} s; "
          f"whole update {seconds:.1f} s wall, {cpu:.1f} s CPU (open, verify, load the encoder, embed, write, checksums); peak RSS {peak_rss_mib():.0f} MiB")
    print(f"a rebuild would embed all {texts} texts: about {record['embed_seconds'] * texts / embedded:.0f} s "
          f"at this update's rate")


if __name__ == "__main__":
    main()
