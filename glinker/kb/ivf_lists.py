"""IVF fast-scan inverted lists stored memory-mapped at the end of the index file.

FAISS reads the lists of a fast-scan index (``BlockInvertedLists``) into memory whole, flags or not
(0.5 GiB at 10M vectors, and as much read from disk on every open). Its ``OnDiskInvertedLists``, which
are memory-mapped, search fast-scan lists just as well (the scan only reads a list's packed codes and
ids), so :func:`write_mapped` stores each list's packed blocks in that layout (codes, then ids, the
capacity rounded up to whole blocks) after the index header, in the same file, and :func:`read_mapped`
maps them. Results are the same to the bit. The mapped lists are read-only: :func:`lists_in_memory`
copies them back into ``BlockInvertedLists`` before vectors are added (a KB update).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

ALIGN = 4096  # the lists start on a page


def is_fast_scan(index) -> bool:
    import faiss

    return isinstance(faiss.downcast_index(index), faiss.IndexIVFFastScan)


def write_mapped(index, path: Path, name: str | None = None) -> None:
    """Write ``index`` (IVF fast-scan, lists in memory or mapped) to ``path`` with its lists in the mapped
    layout; ``name``: the file name recorded for them (``path``'s when None; :func:`read_mapped` maps
    the file it reads whatever the name)."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    source = ivf.invlists
    sizes = [source.list_size(i) for i in range(ivf.nlist)]
    per_block, block_bytes = _block_shape(index)
    name = name or path.name
    header = len(_header(index, sizes, per_block, 0, name))  # offsets do not change the header's length
    start = -(-header // ALIGN) * ALIGN
    with open(path, "wb") as handle:
        handle.write(_header(index, sizes, per_block, start, name).ljust(start, b"\0"))
        for i, size in enumerate(sizes):
            if size:
                codes, ids = _views(source, i, per_block, block_bytes)
                padded = np.full(len(codes) // block_bytes * per_block, -1, np.int64)  # ids of whole blocks
                padded[:size] = ids
                handle.write(codes.tobytes())
                handle.write(padded.tobytes())


def list_ids(index) -> Iterator[np.ndarray]:
    """The ids of each non-empty inverted list of ``index`` (lists in memory), in list order, as int64 views
    that can be written to."""
    import faiss

    lists = faiss.extract_index_ivf(index).invlists
    for i in range(lists.nlist):
        if size := lists.list_size(i):
            pointer = lists.get_ids(i)
            yield faiss.rev_swig_ptr(pointer, size)
            lists.release_ids(i, pointer)


def renumber_in_list_order(index) -> np.ndarray:
    """Renumber the ids held by ``index``'s inverted lists (in memory) 0..n-1, list after list; returns the
    id each number replaces. What is stored per id beside the index (refine sq8's codes) can then be laid out
    in list order, so that a query's hits, from a few lists, lie in a few runs rather than all over it."""
    order = np.empty(index.ntotal, np.int64)
    start = 0
    for ids in list_ids(index):
        order[start : start + len(ids)] = ids
        ids[:] = np.arange(start, start + len(ids))
        start += len(ids)
    return order


def read_mapped(path: Path):
    """The index written by :func:`write_mapped`, its lists memory-mapped from ``path``."""
    import faiss

    index = faiss.read_index(str(path), faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_SKIP_IVF_DATA)
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    lists.filename = str(path)
    lists.do_mmap()
    lists.prefetch_nthread = 0  # FAISS's prefetch threads cost a third of the speed here
    return index


def lists_in_memory(index) -> None:
    """Replace mapped lists by ``BlockInvertedLists`` holding the same blocks (what ``add`` needs)."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    mapped = faiss.downcast_InvertedLists(ivf.invlists)
    if not isinstance(mapped, faiss.OnDiskInvertedLists):
        return
    per_block, block_bytes = _block_shape(index)
    packer = index.get_CodePacker()
    packer.this.disown()  # the lists delete their packer
    lists = faiss.BlockInvertedLists(ivf.nlist, packer)
    for i in range(ivf.nlist):
        size = mapped.list_size(i)
        if size:
            lists.resize(i, size)
            for copy, original in zip(_views(lists, i, per_block, block_bytes),
                                      _views(mapped, i, per_block, block_bytes), strict=True):
                copy[:] = original
    ivf.replace_invlists(lists, True)
    lists.this.disown()  # the index owns it now


def _views(lists, i: int, per_block: int, block_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Numpy views of non-empty list ``i`` of ``lists``: its packed codes (whole blocks) and its ids."""
    import faiss

    size = lists.list_size(i)
    blocks = -(-size // per_block)
    return faiss.rev_swig_ptr(lists.get_codes(i), blocks * block_bytes), faiss.rev_swig_ptr(lists.get_ids(i), size)


def _block_shape(index) -> tuple[int, int]:
    """(vectors per block, bytes per block) of a fast-scan index's lists."""
    import faiss

    per_block, block_bytes = int(index.bbs), int(index.bbs * index.M2 // 2)
    code_size = int(faiss.extract_index_ivf(index).code_size)
    if block_bytes != per_block * code_size:  # the mapped layout stores blocks as codes of code_size bytes
        raise ValueError(f"fast-scan blocks of {block_bytes} bytes are not {per_block} codes of {code_size} bytes")
    return per_block, block_bytes


def _header(index, sizes: list[int], per_block: int, start: int, name: str) -> bytes:
    """``index`` serialised with ``OnDiskInvertedLists`` whose lists lie from ``start`` in file ``name``."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    code_size = int(ivf.code_size)
    mapped = faiss.OnDiskInvertedLists(ivf.nlist, code_size, name)
    table = faiss.OnDiskOneListVector()
    offset = start
    for size in sizes:
        entry = faiss.OnDiskOneList()
        if size:
            capacity = -(-size // per_block) * per_block
            entry.size, entry.capacity, entry.offset = size, capacity, offset
            offset += capacity * (code_size + 8)
        table.push_back(entry)
    mapped.lists.swap(table)
    mapped.totsize = offset
    own, lists = ivf.own_invlists, ivf.invlists
    ivf.own_invlists = False
    ivf.replace_invlists(mapped, False)
    try:
        return faiss.serialize_index(index).tobytes()
    finally:
        ivf.replace_invlists(lists, own)
