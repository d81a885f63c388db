"""NameIndex: every KB name (labels and aliases), normalised, with three vectorised lookups.

- ``exact``: normalised name -> entity rows (sorted 64-bit hashes + ``searchsorted``).
- ``canonical``: the same over word-order free, stemmed names ("breast neoplasms" ~ "Neoplasms, Breast").
- ``similar``: character n-gram TF-IDF cosine against every distinct name (an inverted index in CSR
  arrays; scores accumulated with numpy, no per-name Python loop).
- ``scan``: every KB name occurring in a text, longest match first (a gazetteer): all token windows
  of the text are hashed at once and looked up in the same sorted hash array.

In a kb_dir the index is the ``names.*`` files: one ``.npy`` per array of ``ARRAYS`` and the column of
normalised keys (``names.keys.data``/``.offsets``); the manifest's ``name_index`` records the parameters
they were built with (``ngram``). Normalisation and hashing are fixed by the kb format version.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .checks import check_offsets, check_rows, corrupted, is_count, manifest_error, read_file
from .columns import StringColumn, fixed_span_hashes, load_array, release_pages, span_hashes, string_hash
from .normalize import canonical_name, normalize_name, stem, tokens_with_offsets

NGRAM = 3  # characters per n-gram of the fuzzy lookup
FORMAT1_PARAMS = {"ngram": 3}  # what kb format 1 (which recorded no parameters) was built with
# similar() sums postings into one array over all keys when they number at least 1/DENSE_POSTINGS of the keys
DENSE_POSTINGS = 16
SIMILAR_CHUNK = 64  # texts whose postings similar_many sums together
BUILD_CHUNK = 1 << 16  # names (and keys) handled at once while the index is built
MAX_NAME_TOKENS = 10  # longest names (in tokens) that scan looks for by default
ARRAYS = (
    "key_hash",
    "key_name_offsets",
    "key_names",
    "name_entity",
    "key_tokens",
    "gram_hash",
    "gram_offsets",
    "post_keys",
    "post_weights",
    "gram_idf",
    "canon_hash",
    "canon_name_offsets",
    "canon_names",
)


@dataclass(slots=True)
class NameMatch:
    """KB names found in a text: characters ``start:end`` match the names ``name_rows`` exactly
    (after normalisation) or, when ``exact`` is False, in canonical form."""

    start: int
    end: int
    name_rows: np.ndarray
    exact: bool = True


class NameIndex:
    def __init__(self, arrays: dict[str, np.ndarray], keys: StringColumn, ngram: int):
        self._arrays = arrays
        self.keys = keys  # the normalised name of every key
        self.ngram = ngram
        self.num_keys = len(keys)
        self.max_tokens = int(arrays["key_tokens"].max()) if self.num_keys else 0

    @property
    def params(self) -> dict[str, Any]:
        """What the arrays depend on besides the names (recorded in the manifest)."""
        return {"ngram": self.ngram}

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, names: StringColumn, name_entity: np.ndarray, ngram: int = NGRAM) -> NameIndex:
        """The index of ``names`` (name row -> entity row in ``name_entity``), BUILD_CHUNK names at a
        time: no list of every name is held, only columns and arrays."""
        normalized = _mapped(names, normalize_name)
        key_hash, first, inverse = np.unique(normalized.hashes(), return_index=True, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        key_name_offsets = np.zeros(len(key_hash) + 1, dtype=np.int64)
        np.cumsum(np.bincount(inverse, minlength=len(key_hash)), out=key_name_offsets[1:])
        key_columns, key_tokens, postings = [], [], []
        for lo in range(0, len(first), BUILD_CHUNK):
            texts = normalized.take(first[lo : lo + BUILD_CHUNK])
            key_columns.append(StringColumn.from_strings(texts))
            key_tokens += [k.count(" ") + 1 if k else 0 for k in texts]
            postings.append(_Postings.of(texts, ngram))
        keys = StringColumn.concat_all(key_columns)
        arrays = {
            "key_hash": key_hash,
            "key_name_offsets": key_name_offsets,
            "key_names": order.astype(np.int64),
            "name_entity": np.asarray(name_entity, dtype=np.int64),
            "key_tokens": np.array(key_tokens, dtype=np.int32),
        }
        arrays.update(_ngram_arrays(postings, len(keys)))
        canon_hash, canon_inverse = np.unique(_mapped(normalized, canonical_name).hashes(), return_inverse=True)
        arrays["canon_hash"] = canon_hash
        arrays["canon_name_offsets"] = np.concatenate(
            [[0], np.cumsum(np.bincount(canon_inverse, minlength=len(canon_hash)))]
        ).astype(np.int64)
        arrays["canon_names"] = np.argsort(canon_inverse, kind="stable").astype(np.int64)
        return cls(arrays, keys, ngram)

    # ------------------------------------------------------------------ kb_dir files

    @staticmethod
    def files() -> list[str]:
        """The files :meth:`save` writes."""
        return [f"names.{name}.npy" for name in ARRAYS] + StringColumn.files("names.keys")

    def save(self, directory: Path) -> list[Path]:
        paths = []
        for name in ARRAYS:
            paths.append(directory / f"names.{name}.npy")
            np.save(paths[-1], self._arrays[name])
        return paths + self.keys.save(directory, "names.keys")

    @staticmethod
    def params_of(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
        """The ``name_index`` parameters of a manifest (format 1 recorded none: see FORMAT1_PARAMS)."""
        params = manifest.get("name_index", FORMAT1_PARAMS if manifest["format_version"] == 1 else None)
        if not isinstance(params, dict) or not is_count(params.get("ngram")) or not params["ngram"]:
            raise manifest_error(path, "name_index", "{ngram: a positive integer}")
        return params

    @classmethod
    def open(cls, directory: Path, params: dict[str, Any], num_names: int, num_rows: int, deep: bool) -> NameIndex:
        """The index saved in ``directory``, memory-mapped and checked against the number of names and entity
        rows; ``deep``: also scan the n-gram postings and decode the keys (their checksums were not checked)."""
        arrays = {name: read_file(directory / f"names.{name}.npy", load_array) for name in ARRAYS}
        _check_arrays(directory, arrays, num_names, num_rows, deep)
        for array in arrays.values():  # the checks read them: let lookups fault back only what they read
            release_pages(array)
        keys = StringColumn.open(directory, "names.keys", utf8=deep)
        if len(keys) != len(arrays["key_hash"]):
            raise corrupted(directory / "names.keys.offsets.npy", f"expected {len(arrays['key_hash'])} keys, "
                            f"found {len(keys)}", directory / "names.key_hash.npy")
        return cls(arrays, keys, params["ngram"])

    # ------------------------------------------------------------------ lookups

    def key_of(self, normalized: str) -> int | None:
        h = np.uint64(string_hash(normalized))
        i = int(np.searchsorted(self._arrays["key_hash"], h))
        if i < self.num_keys and self._arrays["key_hash"][i] == h and self.keys[i] == normalized:
            return i
        return None

    def name_rows(self, key: int) -> np.ndarray:
        lo, hi = self._arrays["key_name_offsets"][key], self._arrays["key_name_offsets"][key + 1]
        return self._arrays["key_names"][lo:hi]

    def entity_rows(self, key: int) -> np.ndarray:
        return self.entities_of(self.name_rows(key))

    def entities_of(self, name_rows: np.ndarray) -> np.ndarray:
        """The entity row of each name row."""
        return self._arrays["name_entity"][name_rows]

    def exact(self, text: str) -> int | None:
        """Key of the KB name equal to ``text`` after normalisation."""
        normalized = normalize_name(text)
        return self.key_of(normalized) if normalized else None

    def canonical(self, text: str) -> np.ndarray:
        """Name rows whose canonical form equals that of ``text`` (a 64-bit hash match)."""
        return self.canonical_many([text])[0]

    def canonical_many(self, texts: list[str]) -> list[np.ndarray]:
        """``canonical`` of each text, hashed and looked up at once."""
        return self.canonical_rows([canonical_name(normalize_name(t)) for t in texts])

    def similar(self, text: str, k: int, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
        """Keys most similar to ``text`` by n-gram TF-IDF cosine, best first, and their scores."""
        return self.similar_many([text], k, min_similarity)[0]

    def similar_many(self, texts: list[str], k: int, min_similarity: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """``similar`` of each text, the postings of ``SIMILAR_CHUNK`` texts summed at once; ties by key."""
        grams = [_grams(normalize_name(t), self.ngram) for t in texts]
        out = []
        for lo in range(0, len(texts), SIMILAR_CHUNK):
            out += self._similar_chunk(grams[lo : lo + SIMILAR_CHUNK], k, min_similarity)
        return out

    def _similar_chunk(self, grams: list[np.ndarray], k: int, min_similarity: float):
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        if self.num_keys == 0 or not any(len(g) for g in grams):
            return [empty] * len(grams)
        query, hashes, counts = [], [], []
        for q, g in enumerate(grams):
            if len(g):
                h, c = np.unique(g, return_counts=True)
                query.append(np.full(len(h), q))
                hashes.append(h)
                counts.append(c)
        query, hashes, counts = np.concatenate(query), np.concatenate(hashes), np.concatenate(counts)
        gram_hash = self._arrays["gram_hash"]
        pos = np.clip(np.searchsorted(gram_hash, hashes), 0, max(len(gram_hash) - 1, 0))
        known = gram_hash[pos] == hashes if len(gram_hash) else np.zeros(len(hashes), bool)
        unknown_idf = math.log(self.num_keys + 1) + 1.0
        weights = (1.0 + np.log(counts)) * np.where(known, self._arrays["gram_idf"][pos], unknown_idf)
        weights /= np.sqrt(np.bincount(query, weights=weights**2, minlength=len(grams)))[query]
        query, pos, weights = query[known], pos[known], weights[known]
        offsets = self._arrays["gram_offsets"]
        starts, lengths = offsets[pos], offsets[pos + 1] - offsets[pos]
        total = int(lengths.sum())
        post = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        owner = np.repeat(query, lengths)
        post_w = self._arrays["post_weights"][post] * np.repeat(weights, lengths)
        cell = owner * self.num_keys + self._arrays["post_keys"][post]
        if total * DENSE_POSTINGS >= len(grams) * self.num_keys:  # long postings: one pass beats a sort
            totals = np.bincount(cell, weights=post_w, minlength=len(grams) * self.num_keys).astype(np.float32)
            cells = np.flatnonzero(totals >= min_similarity)
            scores = totals[cells]
        else:
            cells, inverse = np.unique(cell, return_inverse=True)
            scores = np.bincount(inverse, weights=post_w).astype(np.float32)
            keep = scores >= min_similarity
            cells, scores = cells[keep], scores[keep]
        owners, keys = np.divmod(cells, self.num_keys)
        order = np.lexsort((keys, -scores, owners))  # per query: best first, ties by key
        owners, keys, scores = owners[order], keys[order], scores[order]
        bounds = np.searchsorted(owners, np.arange(len(grams) + 1))
        return [(keys[a : min(b, a + k)].astype(np.int64), scores[a : min(b, a + k)])
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def canonical_rows(self, keys: list[str]) -> list[np.ndarray]:
        """Name rows of each canonical key (an empty key or an unknown one gives no rows)."""
        hashes = StringColumn.from_strings(keys).hashes()
        canon = self._arrays["canon_hash"]
        if not len(canon):
            return [np.zeros(0, np.int64) for _ in keys]
        pos = np.clip(np.searchsorted(canon, hashes), 0, len(canon) - 1)
        offsets, rows = self._arrays["canon_name_offsets"], self._arrays["canon_names"]
        return [rows[offsets[p] : offsets[p + 1]] if k and canon[p] == h else np.zeros(0, np.int64)
                for k, h, p in zip(keys, hashes, pos, strict=True)]

    def scan(self, text: str, min_chars: int = 1, max_tokens: int = MAX_NAME_TOKENS, canonical_tokens: int = 0) -> list[NameMatch]:
        """KB names in ``text``: longest first (exact before canonical at equal length), no overlaps,
        in text order. Windows of up to ``canonical_tokens`` tokens are also matched in canonical form."""
        tokens = list(tokens_with_offsets(text))
        if not tokens or self.num_keys == 0:
            return []
        words = [t[0] for t in tokens]
        encoded = [w.encode("utf-8") for w in words]
        lengths = np.array([len(b) for b in encoded], dtype=np.int64)
        byte_start = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
        byte_end = byte_start + lengths
        codes = np.frombuffer(b" ".join(encoded), dtype=np.uint8)
        n_tok, width = len(tokens), max(1, min(self.max_tokens, max_tokens))
        first = np.repeat(np.arange(n_tok), width)
        last = first + np.tile(np.arange(width), n_tok)
        valid = last < n_tok
        first, last = first[valid], last[valid]
        hashes = span_hashes(codes, byte_start[first], byte_end[last])
        key_hash = self._arrays["key_hash"]
        pos = np.clip(np.searchsorted(key_hash, hashes), 0, self.num_keys - 1)
        found = []
        for i in np.flatnonzero(key_hash[pos] == hashes):
            f, g, key = int(first[i]), int(last[i]), int(pos[i])
            if self.keys[key] == codes[byte_start[f] : byte_end[g]].tobytes().decode():
                found.append((g - f, 1, f, g, self.name_rows(key)))
        if canonical_tokens:
            stems = [stem(w) if len(w) > 1 else "" for w in words]
            spans = [(f, g) for f in range(n_tok) for g in range(f, min(n_tok, f + canonical_tokens))]
            keys = [" ".join(sorted(s for s in stems[f : g + 1] if s)) for f, g in spans]
            for (f, g), rows in zip(spans, self.canonical_rows(keys), strict=True):
                if len(rows):
                    found.append((g - f, 0, f, g, rows))
        found.sort(key=lambda m: (-m[0], -m[1], m[2]))
        taken = np.zeros(n_tok, dtype=bool)
        matches = []
        for _, exact, f, g, rows in found:
            start, end = tokens[f][1], tokens[g][2]
            if end - start >= min_chars and not taken[f : g + 1].any():
                taken[f : g + 1] = True
                matches.append(NameMatch(start, end, rows, bool(exact)))
        matches.sort(key=lambda m: m.start)
        return matches


def _check_arrays(kb_dir: Path, a: dict[str, np.ndarray], num_names: int, num_rows: int, deep: bool) -> None:
    """The name index arrays point inside one another, the names and the entity rows. The n-gram postings
    (memory-mapped, the largest arrays) are scanned only when ``deep`` (their checksums were not checked)."""
    num_keys = len(a["key_hash"])

    def path(name: str) -> Path:
        return kb_dir / f"names.{name}.npy"

    names = kb_dir / "entities.names.offsets.npy"
    check_rows(path("name_entity"), a["name_entity"], num_names, max(num_rows, 1),
               f"{names} and {kb_dir / 'entities.ids.offsets.npy'}")
    check_offsets(path("key_name_offsets"), a["key_name_offsets"], len(a["key_names"]), path("key_names"))
    check_rows(path("key_names"), a["key_names"], num_names, max(num_names, 1), names)
    check_offsets(path("canon_name_offsets"), a["canon_name_offsets"], len(a["canon_names"]), path("canon_names"))
    check_rows(path("canon_names"), a["canon_names"], len(a["canon_names"]), max(num_names, 1), names)
    if deep:
        check_offsets(path("gram_offsets"), a["gram_offsets"], len(a["post_keys"]), path("post_keys"))
        check_rows(path("post_keys"), a["post_keys"], len(a["post_keys"]), max(num_keys, 1), path("key_hash"))
    for name, length, source in (("key_name_offsets", num_keys + 1, "key_hash"), ("key_tokens", num_keys, "key_hash"),
                                 ("canon_name_offsets", len(a["canon_hash"]) + 1, "canon_hash"),
                                 ("gram_offsets", len(a["gram_hash"]) + 1, "gram_hash"),
                                 ("gram_idf", len(a["gram_hash"]), "gram_hash"),
                                 ("post_weights", len(a["post_keys"]), "post_keys")):
        if a[name].ndim != 1 or len(a[name]) != length:
            raise corrupted(path(name), f"expected {length} values, found {a[name].shape}", path(source))


def _grams(normalized: str, n: int) -> np.ndarray:
    if not normalized:
        return np.zeros(0, np.uint64)
    codes = np.frombuffer(f" {normalized} ".encode("utf-32-le"), dtype=np.uint32)
    count = len(codes) - n + 1
    if count <= 0:
        return np.zeros(0, np.uint64)
    return fixed_span_hashes(codes, np.arange(count), n)


def _mapped(column: StringColumn, fn: Callable[[str], str]) -> StringColumn:
    """``fn`` of every string of ``column``, BUILD_CHUNK strings at a time."""
    parts = [StringColumn.from_strings(map(fn, column.slice(lo, min(lo + BUILD_CHUNK, len(column))).tolist()))
             for lo in range(0, len(column), BUILD_CHUNK)]
    return StringColumn.concat_all(parts)


def _ngram_arrays(parts: list[_Postings], num_keys: int) -> dict[str, np.ndarray]:
    """Inverted index gram -> (key, L2-normalised TF-IDF weight), as CSR arrays (postings of a gram in
    key order), from the postings of consecutive blocks of keys: memory grows with the postings (12
    bytes each), not with the temporaries of hashing every n-gram of the KB at once."""
    gram_hash = np.unique(np.concatenate([p.vocab for p in parts])) if parts else np.zeros(0, np.uint64)
    df = np.zeros(len(gram_hash), dtype=np.int64)
    for p in parts:
        p.gram = np.searchsorted(gram_hash, p.vocab).astype(np.int32)[p.gram]  # ranks kept: hashes sorted
        df += np.bincount(p.gram, minlength=len(gram_hash))
    idf = np.log((num_keys + 1) / (df + 1)) + 1.0
    offsets = np.zeros(len(gram_hash) + 1, dtype=np.int64)
    np.cumsum(df, out=offsets[1:])
    post_keys, post_weights = np.empty(offsets[-1], np.int32), np.empty(offsets[-1], np.float32)
    filled = offsets[:-1].copy()  # where the next posting of each gram goes
    sizes = np.array([p.size for p in parts], dtype=np.int64)
    for first_key, p in zip((np.cumsum(sizes) - sizes).tolist(), parts, strict=True):
        if not len(p.gram):
            continue
        weights = (1.0 + np.log(p.tf)) * idf[p.gram]
        norms = np.sqrt(np.bincount(p.key, weights=weights**2, minlength=p.size))
        run_start = np.flatnonzero(np.r_[True, p.gram[1:] != p.gram[:-1]])  # p is sorted by (gram, key)
        run_length = np.diff(np.r_[run_start, len(p.gram)])
        where = filled[p.gram] + np.arange(len(p.gram)) - np.repeat(run_start, run_length)
        post_keys[where] = p.key + first_key
        post_weights[where] = weights / np.maximum(norms[p.key], 1e-12)
        filled[p.gram[run_start]] += run_length
        p.gram = p.key = p.tf = None  # freed as the output fills
    return {"gram_hash": gram_hash, "gram_offsets": offsets, "post_keys": post_keys, "post_weights": post_weights,
            "gram_idf": idf.astype(np.float32)}


@dataclass(slots=True)
class _Postings:
    """The distinct (gram, key) pairs of some keys, sorted, with counts: gram indexes ``vocab`` (the
    chunk's sorted gram hashes), key counts from the chunk's first key."""

    vocab: np.ndarray
    gram: np.ndarray
    key: np.ndarray
    tf: np.ndarray
    size: int

    @classmethod
    def of(cls, keys: list[str], n: int) -> _Postings:
        padded = [f" {k} " for k in keys]
        lengths = np.array([len(p) for p in padded], dtype=np.int64)
        codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        per_key = np.maximum(lengths - n + 1, 0)
        key_of = np.repeat(np.arange(len(keys), dtype=np.int64), per_key)
        within = np.arange(int(per_key.sum()), dtype=np.int64) - np.repeat(np.cumsum(per_key) - per_key, per_key)
        vocab, gram = np.unique(fixed_span_hashes(codes, np.repeat(starts, per_key) + within, n), return_inverse=True)
        pairs, tf = np.unique((gram.astype(np.int64) << 32) | key_of, return_counts=True)
        return cls(vocab, (pairs >> 32).astype(np.int32), (pairs & 0xFFFFFFFF).astype(np.int32),
                   tf.astype(np.int32), len(keys))
