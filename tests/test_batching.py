"""Length batches and the threads that run model batches: order, errors, progress, settings."""

import threading
import time

import numpy as np
import pytest

from glinker import ConfigError
from glinker.models.batching import WORKERS_ENV, length_batches, model_workers, run_batches


def test_length_batches_cover_every_index_once_longest_first():
    lengths = [3, 9, 1, 9, 4, 7, 2]
    batches = length_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)
    assert np.concatenate(batches)[:2].tolist() == [1, 3]  # ties keep input order
    assert length_batches([], 4) == []


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_run_batches_yields_results_in_batch_order(workers):
    batches = length_batches([5, 1, 4, 2, 3, 6, 8, 7], 2)
    threads = set()

    def fn(idx):
        time.sleep(0.1 if idx is batches[0] else 0.0)  # the first batch finishes last
        threads.add(threading.get_ident())
        return idx * 10

    out = list(run_batches(fn, batches, workers))
    assert [b.tolist() for b, _ in out] == [b.tolist() for b in batches]
    assert all((r == b * 10).all() for b, r in out)
    assert len(threads) <= workers


def test_run_batches_raises_the_first_error_and_starts_no_more_batches():
    started = []

    def fn(idx):
        started.append(int(idx[0]))
        if idx[0] == 0:
            raise ValueError("bad batch")
        time.sleep(0.05)
        return idx

    batches = [np.array([i]) for i in range(40)]
    with pytest.raises(ValueError, match="bad batch"):
        list(run_batches(fn, batches, workers=2))
    assert len(started) < len(batches)


def test_run_batches_progress_counts_items(capsys):
    batches = length_batches(list(range(10)), 4)
    assert len(list(run_batches(len, batches, 2, progress=True, desc="items", unit="item"))) == 3
    assert "10/10" in capsys.readouterr().err


def test_model_workers_default_and_environment(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert model_workers("cuda:0") == 1
    assert 1 <= model_workers("cpu") <= 2
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert model_workers("cpu") == model_workers("cuda") == 3
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(ConfigError, match=WORKERS_ENV):
            model_workers("cpu")
