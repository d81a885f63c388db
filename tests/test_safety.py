"""Nothing a user supplies is executed: a scan of the source for calls that could run or unpickle data,
and the model-name paths that could import a package."""

import ast
import sys
from pathlib import Path

import pytest

from glinker import ModelNotFoundError
from tests.conftest import ROOT

SOURCES = sorted([*(ROOT / "glinker").rglob("*.py"), *(ROOT / "layers").rglob("*.py")])
BANNED_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib", "subprocess"}
BANNED_CALLS = {"eval", "exec", "compile", "__import__"}
BANNED_ATTRS = {("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"), ("yaml", "load_all"),
                ("os", "system"), ("os", "popen")}
# the only dynamic imports: modules named in fixed tables (registry.PROCESSORS, resolve.PACKAGED_ENCODERS)
IMPORT_MODULE_ALLOWED = {"glinker/registry.py", "glinker/models/resolve.py"}


def keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def problems(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where}: imports {n}" for n in names if n.split(".")[0] in BANNED_MODULES]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in BANNED_CALLS:
            found.append(f"{where}: calls {func.id}()")
        if is_true(keyword(node, "trust_remote_code")):
            found.append(f"{where}: trust_remote_code=True")
        if not isinstance(func, ast.Attribute):
            continue
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        if (owner, func.attr) in BANNED_ATTRS:
            found.append(f"{where}: calls {owner}.{func.attr}()")
        if owner in ("np", "numpy") and func.attr == "load" and not (
                isinstance(keyword(node, "allow_pickle"), ast.Constant) and keyword(node, "allow_pickle").value is False):
            found.append(f"{where}: np.load without allow_pickle=False")
        if owner == "torch" and func.attr == "load" and not is_true(keyword(node, "weights_only")):
            found.append(f"{where}: torch.load without weights_only=True")
        if func.attr == "import_module" and rel not in IMPORT_MODULE_ALLOWED:
            found.append(f"{where}: importlib.import_module outside the registry")
        if func.attr == "format_map" or (func.attr == "format" and not isinstance(func.value, ast.Constant)):
            found.append(f"{where}: str.format on a non-literal (templates go through glinker/templates.py)")
        if func.attr == "Formatter" and rel != "glinker/templates.py":
            found.append(f"{where}: string.Formatter outside glinker/templates.py")
    return found


def test_source_has_no_call_that_could_execute_or_unpickle_data():
    assert len(SOURCES) > 30
    found = [p for path in SOURCES for p in problems(path)]
    assert found == []


def test_the_scan_catches_each_banned_call(tmp_path, monkeypatch):
    bad = tmp_path / "glinker" / "bad.py"
    bad.parent.mkdir()
    bad.write_text(
        "import pickle\nimport numpy as np, torch, yaml, importlib\n"
        "eval('1')\nexec('x = 1')\nnp.load('a.npy')\nnp.load('a.npy', allow_pickle=True)\ntorch.load('m.bin')\n"
        "yaml.load(s)\nimportlib.import_module(name)\ntemplate.format(**row)\nf(trust_remote_code=True)\n"
        "np.load('a.npy', allow_pickle=False)\ntorch.load('m.bin', weights_only=True)\nyaml.safe_load(s)\n"
        "'{}'.format(1)\nmodel.eval()\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    lines = sorted(int(p.split(":")[1]) for p in problems(bad))
    assert lines == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11]


def test_a_spacy_model_name_never_imports_another_installed_package():
    """Regression: l1_spacy `model: requests` imported the installed package `requests` (spacy.load
    imports any installed distribution by name) and then crashed with AttributeError."""
    from glinker.models.resolve import load_spacy

    if "ruff" in sys.modules:
        pytest.skip("ruff is already imported in this process")
    with pytest.raises(ModelNotFoundError, match="spaCy pipeline 'ruff' is not installed"):
        load_spacy("ruff")
    assert "ruff" not in sys.modules
    with pytest.raises(ModelNotFoundError):
        load_spacy("os.path")
