"""One writer per output (issue 17.2): glinker.locks.exclusive, and the jobs that hold it.

Two `glinker link` jobs on one output corrupted it silently (torn lines, missing ids, both "done");
now the second fails at once naming the first one's pid. Same for `glinker kb build` on one kb_dir.
"""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
import yaml

from glinker.errors import InputError
from glinker.locks import LockedError, exclusive, lock_path
from tests.conftest import DATA, ROOT, model_free_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
HOLD = "import sys, time\nfrom glinker.locks import exclusive\nwith exclusive(sys.argv[1], 'test holder'):\n" \
       "    print('held', flush=True)\n    time.sleep(120)\n"


def glinker(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "glinker.cli", *map(str, args)], capture_output=True, cwd=cwd,
                          env={**ENV, "PYTHONPATH": str(ROOT)}, timeout=600)


@contextmanager
def held_by_another_process(path: Path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"held\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_holder_fails_at_once_naming_the_pid(tmp_path):
    target = tmp_path / "out.jsonl"
    with held_by_another_process(target) as holder:
        started = time.perf_counter()
        message = rf"^{target} is in use by test holder \(pid {holder.pid}\), which holds {target}.lock; wait for it " \
                  "to finish or stop it$"
        with pytest.raises(LockedError, match=message), exclusive(target, "glinker link"):
            pass
        assert time.perf_counter() - started < 1
    assert lock_path(target).exists()  # the holder was killed: its lock file stays, but is free
    with exclusive(target, "glinker link") as lock:
        assert lock.read_text() == f"{os.getpid()} glinker link\n"
    assert not lock.exists()


def test_a_killed_holder_leaves_a_free_lock(tmp_path):
    target = tmp_path / "kb_dir"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, f"{target}/"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"held\n"
    assert (tmp_path / "kb_dir.lock").read_text().startswith(f"{proc.pid} ")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "kb_dir.lock").exists()
    with exclusive(target):
        pass
    assert not (tmp_path / "kb_dir.lock").exists()


def test_one_process_cannot_hold_one_lock_twice_and_unusable_folders_are_named(tmp_path):
    with exclusive(tmp_path / "a"):
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"), exclusive(tmp_path / "a"):
            pass
        with exclusive(tmp_path / "b"):
            pass
    with pytest.raises(InputError, match=f"cannot create the lock file {tmp_path}/missing/a.lock"), \
            exclusive(tmp_path / "missing" / "a"):
        pass


@pytest.mark.slow
def test_two_link_jobs_on_one_output(tmp_path):
    rows = [orjson.loads(line) for line in (DATA / "texts.jsonl").read_bytes().splitlines() if line.strip()]
    docs = [{"id": f"{r['id']}-{i}", "text": r["text"]} for i in range(100) for r in rows]
    (tmp_path / "in.jsonl").write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(model_free_config()))
    out = tmp_path / "out.jsonl"
    args = ["link", "--config", tmp_path / "config.yaml", "--kb", DATA / "entities.jsonl", "--input",
            tmp_path / "in.jsonl", "--output", out, "--batch-size", 1, "--quiet"]
    first = subprocess.Popen([sys.executable, "-m", "glinker.cli", *map(str, args)], cwd=ROOT, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not Path(f"{out}.ckpt").exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.02)
        second = glinker(*args, "--overwrite")
        assert first.poll() is None, "the first job ended before the second started"
    finally:
        stdout, stderr = first.communicate(timeout=600)
    assert second.returncode == 2
    assert second.stderr.decode() == (f"glinker: error: {out} is in use by glinker link (pid {first.pid}), which holds "
                                      f"{out}.lock; wait for it to finish or stop it\n")
    assert first.returncode == 0, stderr.decode()
    assert orjson.loads(stdout)["done"]
    assert [orjson.loads(line)["id"] for line in out.read_bytes().splitlines()] == [d["id"] for d in docs]
    assert not lock_path(out).exists()


def test_kb_build_on_a_locked_kb_dir_fails_before_embedding(tmp_path):
    kb_dir = tmp_path / "kb"
    with held_by_another_process(kb_dir) as holder:
        refused = glinker("kb", "build", "--entities", DATA / "entities.jsonl", "--out", f"{kb_dir}/", "--quiet")
    assert refused.returncode == 2
    assert refused.stderr.decode().startswith(f"glinker: error: {kb_dir} is in use by test holder (pid {holder.pid})")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb.lock"]  # the killed holder's, free now
