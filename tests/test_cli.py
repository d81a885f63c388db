import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_demo_prints_linked_entities():
    out = subprocess.run([sys.executable, "-m", "glinker.cli", "demo"], capture_output=True, text=True, cwd=ROOT,
                         check=True, timeout=600)
    assert "loaded 49 entities" in out.stderr
    lines = out.stdout.splitlines()
    paris_texas = lines.index(next(line for line in lines if line.startswith("[paris-texas]")))
    assert "-> Paris, Texas (Q830149)" in lines[paris_texas + 1]
    assert "-> Amazon River (Q3783)" in out.stdout and "-> Amazon (company) (Q3884)" in out.stdout


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [{id: x, processor: nope, output: {key: y}}]\n")
    out = subprocess.run([sys.executable, "-m", "glinker.cli", "demo", "--config", str(bad)], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 2
    assert out.stderr.startswith("glinker: error:") and "unknown processor 'nope'" in out.stderr
