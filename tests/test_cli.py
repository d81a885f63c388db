import argparse
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest
import yaml

from glinker import __version__
from glinker.cli import build_parser
from tests.conftest import DATA, ROOT, model_free_config

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "PYTHONPATH": str(ROOT)}


def glinker(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "glinker.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=600)


def one_line_error(out: subprocess.CompletedProcess, code: int = 2) -> str:
    """The stderr of a refused command: exactly one line, no traceback."""
    assert out.returncode == code, out.stderr
    assert out.stderr.startswith("glinker: error: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


def test_demo_prints_linked_entities(tmp_path):
    out = subprocess.run([sys.executable, "-m", "glinker.cli", "demo"], capture_output=True, text=True, cwd=tmp_path,
                         env=ENV, check=True, timeout=600)
    assert "loaded 49 entities" in out.stderr
    lines = out.stdout.splitlines()
    paris_texas = lines.index(next(line for line in lines if line.startswith("[paris-texas]")))
    assert "-> Paris, Texas (Q830149)" in lines[paris_texas + 1]
    assert "-> Amazon River (Q3783)" in out.stdout and "-> Amazon (company) (Q3884)" in out.stdout


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [{id: x, processor: nope, output: {key: y}}]\n")
    assert "unknown processor 'nope'" in one_line_error(glinker("demo", "--config", bad))


def test_version_bundled_configs_and_a_help_text_for_every_option():
    assert glinker("--version").stdout == f"glinker {__version__}\n"
    listed = glinker("--list-configs").stdout.split()
    assert "glinker:configs/default.yaml" in listed and "glinker:configs/linking_only.yaml" in listed
    parsers = [build_parser()]
    undocumented = []
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif not action.help:
                undocumented.append(f"{parser.prog} {'/'.join(action.option_strings)}")
    assert undocumented == []


def test_relative_paths_mean_the_current_folder_only(tmp_path):
    """Regression (issue 17.7): in an empty folder these linked against the checkout's example KB."""
    (tmp_path / "in.jsonl").write_text('{"text": "Paris"}\n')
    link = ["link", "--input", "in.jsonl", "--output", "out.jsonl", "--quiet"]
    refused = glinker(*link, "--config", "configs/linking_only.yaml", "--kb", DATA / "entities.jsonl", cwd=tmp_path)
    assert one_line_error(refused) == "glinker: error: pipeline config not found: configs/linking_only.yaml\n"
    refused = glinker(*link, "--config", "glinker:configs/linking_only.yaml", "--kb", "data/entities.jsonl",
                      cwd=tmp_path)
    assert "KB not found: data/entities.jsonl " in one_line_error(refused)
    assert "no such file bundled with glinker" in one_line_error(glinker(*link, "--config", "glinker:nope.yaml",
                                                                         "--kb", "x", cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_refused_link_jobs_name_the_path_and_leave_nothing(tmp_path):
    """Regression (issue 17.8): these were tracebacks (IsADirectoryError, FileNotFoundError), one with a stray .ckpt."""
    (tmp_path / "in.jsonl").write_text('{"text": "Paris"}\n')
    (tmp_path / "folder").mkdir()
    base = ["link", "--config", "glinker:configs/default.yaml", "--kb", DATA / "entities.jsonl", "--quiet"]
    cases = [
        (["--input", "in.jsonl", "--output", "folder", "--overwrite"], "--output folder is a folder; give a file name"),
        (["--input", "in.jsonl", "--output", "no/such/out.jsonl"], "--output no/such/out.jsonl: the folder no/such does not exist"),
        (["--input", "missing.jsonl", "--output", "out.jsonl"], "--input missing.jsonl: not found or not a file"),
        (["--input", "in.jsonl", "--output", "out.jsonl", "--rejects", "folder"], "--rejects folder is a folder"),
    ]
    for extra, message in cases:
        assert message in one_line_error(glinker(*base, *extra, cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "in.jsonl"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_refused_kb_builds_fail_before_embedding(tmp_path):
    """Regression (issue 17.8): --vectors bogus was a ValueError naming 'labels'; an --out that is not a kb_dir
    was refused only after embedding."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    build = ["kb", "build", "--entities", DATA / "entities.jsonl", "--quiet"]
    assert "--vectors 'names,bogus': expected names, entities or names,entities" in one_line_error(
        glinker(*build, "--out", "kb", "--vectors", "names,bogus", cwd=tmp_path))
    started = time.perf_counter()
    assert "--out notes exists and is not a kb_dir" in one_line_error(glinker(*build, "--out", "notes", cwd=tmp_path))
    assert time.perf_counter() - started < 30
    assert "the folder no does not exist" in one_line_error(glinker(*build, "--out", "no/kb", cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_kb_build_cleans_stale_build_folders_and_ctrl_c_is_one_line(tmp_path):
    """Regression (issue 17.8): a build killed in its write phase left .kb.building-* forever; Ctrl-C printed a
    KeyboardInterrupt traceback."""
    for stale in (tmp_path / ".kb.building-999999999-1", tmp_path / ".kb.old-1"):
        stale.mkdir()
        (stale / "vectors.names.npy").write_bytes(b"half written")
    many = tmp_path.parent / f"{tmp_path.name}-many.jsonl"  # enough to embed for a while
    many.write_text("".join(f'{{"entity_id": "E{i}", "label": "name {i}", "description": "entity number {i}"}}\n'
                            for i in range(5_000)))
    # as from a terminal: Ctrl-C raises KeyboardInterrupt (a test runner in the background may ignore SIGINT)
    with_ctrl_c = "import runpy, signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n" \
                  "sys.argv[0] = 'glinker'\nrunpy.run_module('glinker.cli', run_name='__main__')"
    proc = subprocess.Popen([sys.executable, "-c", with_ctrl_c, "kb", "build", "--out", "kb", "--quiet", "--entities",
                             str(many)], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "kb.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert (proc.returncode, stderr) == (130, "glinker: interrupted\n")
    assert list(tmp_path.iterdir()) == []  # the stale folders went first; the interrupted build left nothing


def test_link_reads_stdin_and_writes_stdout(tmp_path):
    """Issue 17.10: `--input -` and `--output -` for pipes; no checkpoint or lock file; summary on stderr."""
    rows = [orjson.loads(line) for line in (DATA / "texts.jsonl").read_bytes().splitlines() if line.strip()]
    data = b"".join(orjson.dumps({"id": i, "text": r["text"]}) + b"\n" for i, r in enumerate(rows * 3))
    (tmp_path / "in.jsonl").write_bytes(data)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(model_free_config()))
    link = ["link", "--config", "config.yaml", "--kb", DATA / "entities.jsonl", "--batch-size", 4, "--quiet"]
    assert glinker(*link, "--input", "in.jsonl", "--output", "file.jsonl", cwd=tmp_path).returncode == 0
    piped = subprocess.run([sys.executable, "-m", "glinker.cli", *map(str, link), "--input", "-", "--output", "-"],
                           input=data, capture_output=True, cwd=tmp_path, env=ENV, timeout=600)
    assert piped.returncode == 0, piped.stderr.decode()
    assert piped.stdout == (tmp_path / "file.jsonl").read_bytes()
    assert piped.stderr.decode().startswith("job total: 30 docs, ") and piped.stderr.count(b"\n") == 1
    assert "glinker: error: --resume needs files" in one_line_error(
        glinker(*link, "--input", "-", "--output", "x.jsonl", "--resume", cwd=tmp_path))
    assert "--engine ray needs files" in one_line_error(
        glinker(*link, "--input", "in.jsonl", "--output", "-", "--engine", "ray", cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "file.jsonl", "file.jsonl.ckpt", "in.jsonl"]
