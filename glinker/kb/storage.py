"""A knowledge base on disk (a "kb_dir"): its manifest, checksums and atomic replacement.

Layout (each store reads, writes and checks its own files)::

    kb_dir/manifest.json    format version, counts, the parameters of every file, sizes and checksums
    kb_dir/entities.*.npy   the entity table (EntityStore, store.py)
    kb_dir/names.*.npy      the name index, exact + canonical + n-gram (NameIndex, names.py)
    kb_dir/vectors.*.npy    vectors of one encoder, and index.names.faiss (VectorStore, vectors.py)

A build or update writes into a temporary sibling directory and swaps it into place at the end with
one atomic exchange of the two directories (Linux ``renameat2(RENAME_EXCHANGE)``; two renames where the
system has no such call), so a killed build or update leaves the previous kb_dir whole. A process that
has the previous kb_dir open keeps reading it: its files are memory-mapped, and deleting them later
does not unmap them. Loading verifies the manifest's checksums (``verify="full"``) or sizes
(``verify="size"``) before anything is read.

Generations: ``glinker kb update`` and ``kb compact`` write the next generation of a kb_dir; its manifest
records ``generation`` (a build is generation 0), ``parent_sha256`` (the checksum of the manifest it
replaced) and what the update changed (see update.py).

Format versions: 1 recorded no name index parameters (it always used n-grams of 3); 2 records them
(``name_index``) and, for each kind of vectors, whether they are unit length and the encoder's
``max_length``. 3 has IVF lists memory-mapped from the index file, 4 an ivf index with refine sq8 (its
codes in ``index.names.refine.faiss``), 5 those codes in the order of the IVF lists (the row of each in
``index.names.refine.order.npy``). Earlier versions open as they are.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import KnowledgeBaseError
from .checks import check_size, is_count, manifest_error

FORMAT_VERSION = 5  # the newest this glinker reads; it writes 3, 4 and 5 only where needed (see write_manifest)
VERIFY = ("full", "size", "none")


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


# ------------------------------------------------------------------ writing


def write_atomically(out_dir: Path, fill: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fill`` on a new temporary directory next to ``out_dir``, then put it in the place of
    ``out_dir``; returns what ``fill`` returned (the manifest)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        manifest = fill(tmp)
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    if out_dir.exists():
        if not (out_dir / "manifest.json").exists():
            raise KnowledgeBaseError(f"{out_dir} exists and is not a kb_dir (no manifest.json); refusing to replace it")
        if _exchange(tmp, out_dir):  # one step: out_dir is now the new kb_dir, tmp the previous one
            shutil.rmtree(tmp, ignore_errors=True)
            return
        old = out_dir.parent / f".{out_dir.name}.old-{time.time_ns()}"
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)


def remove_stale_builds(out: Path) -> None:
    """Delete the folders killed builds of ``out`` left (``.OUT.building-PID-*`` of a process that is
    gone, ``.OUT.old-*``); the caller holds the lock of ``out``."""
    name = glob.escape(out.name)
    for leftover in out.parent.glob(f".{name}.building-*"):
        pid = leftover.name.rsplit(".building-", 1)[1].split("-")[0]
        if leftover.is_dir() and not (pid.isdigit() and _process_alive(int(pid))):
            shutil.rmtree(leftover, ignore_errors=True)
    for leftover in out.parent.glob(f".{name}.old-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


RENAME_EXCHANGE = 2
AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the directories ``a`` and ``b``; False where the system or file system cannot."""
    rename = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if rename is None:
        return False
    if rename(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def write_manifest(directory: Path, fields: dict[str, Any], files: list[Path]) -> dict[str, Any]:
    """The manifest of ``files`` (sizes and checksums) with the stores' ``fields``, written to ``directory``."""
    from .. import __version__

    params = (fields.get("index") or {}).get("params") or {}
    # only where needed: glinker before 3 cannot read mapped IVF lists, before 4 refine sq8, before 5 its codes
    # in list order; they open the rest
    version = (5 if params.get("codes_order") == "lists" else 4 if params.get("refine") == "sq8"
               else 3 if params.get("lists") == "mapped" else 2)
    manifest = {
        "format_version": version,
        "glinker_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **fields,
        "files": {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


# ------------------------------------------------------------------ reading


def manifest_sha256(kb_dir: Path) -> str | None:
    """The checksum of ``kb_dir``'s manifest (what names its generation), None if it has none."""
    path = kb_dir / "manifest.json"
    return sha256_file(path) if path.is_file() else None


def read_manifest(kb_dir: Path) -> dict[str, Any]:
    """The manifest of ``kb_dir``, its format version and common keys checked (each store checks its own)."""
    path = kb_dir / "manifest.json"
    if not path.exists():
        raise KnowledgeBaseError(f"{kb_dir}: not a kb_dir (no manifest.json); build one with `glinker kb build`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KnowledgeBaseError(f"{path}: unreadable manifest: {exc}") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise KnowledgeBaseError(f"{path}: manifest has no integer format_version (1 or more)")
    if version > FORMAT_VERSION:
        raise KnowledgeBaseError(
            f"{kb_dir}: written in kb format version {version}, but this glinker reads versions up to "
            f"{FORMAT_VERSION}; upgrade glinker or rebuild the kb_dir"
        )
    _check_common_keys(path, manifest)
    return manifest


def _check_common_keys(path: Path, m: dict[str, Any]) -> None:
    """Refuse a manifest whose file list or counts have the wrong shape, or that names files outside the kb_dir."""
    files = m.get("files")
    if not isinstance(files, dict):
        raise manifest_error(path, "files", "a mapping of file name to {bytes, sha256}")
    for name, info in files.items():
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise manifest_error(path, "files", f"names of files inside the kb_dir, not {name!r}")
        if not isinstance(info, dict) or not is_count(info.get("bytes")) or not isinstance(info.get("sha256"), str):
            raise manifest_error(path, f"files.{name}", "{bytes: int, sha256: str}")
    for key in ("count", "names"):
        if not is_count(m.get(key)):
            raise manifest_error(path, key, "a non-negative integer")


def verify_files(kb_dir: Path, manifest: dict[str, Any], read: list[str], verify: str) -> None:
    """Every file in ``read`` is listed in the manifest, and every listed file has its size (``verify="size"``)
    or also its checksum (``"full"``); ``"none"`` checks nothing."""
    if verify not in VERIFY:
        raise KnowledgeBaseError(f"verify must be 'full', 'size' or 'none', got {verify!r}")
    if verify == "none":
        return
    unlisted = [name for name in read if name not in manifest["files"]]
    if unlisted:
        raise KnowledgeBaseError(f"{kb_dir / unlisted[0]}: not listed in the manifest, so it cannot be verified")
    for name, info in manifest["files"].items():
        path = kb_dir / name
        check_size(path, info["bytes"])
        if verify == "full" and sha256_file(path) != info["sha256"]:
            raise KnowledgeBaseError(f"{path}: checksum mismatch (the file is corrupted or was changed after the build)")
