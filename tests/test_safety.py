"""Nothing a user supplies is executed: a scan of the source for calls that could run or unpickle data,
and the model-name paths that could import a package."""

import ast
import json
import os
import re
import subprocess
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


def evil_gliner(root: Path) -> tuple[Path, Path]:
    """A tiny GLiNER whose encoder_config.auto_map points at modeling_evil.py, which writes a marker file."""
    from tests.tiny_models import tiny_bert, tiny_gliner

    folder = Path(tiny_gliner(root / "evil", tiny_bert(root / "bert"), bi_encoder=False))
    marker = root / "MARKER"
    (folder / "modeling_evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertConfig, BertModel\n"
        "class EvilConfig(BertConfig):\n    pass\n"
        "class EvilModel(BertModel):\n    config_class = EvilConfig\n")
    config_path = folder / "gliner_config.json"
    config = json.loads(config_path.read_text())
    config["encoder_config"]["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig",
                                            "AutoModel": "modeling_evil.EvilModel"}
    config["encoder_config"]["_name_or_path"] = str(folder)
    config_path.write_text(json.dumps(config))
    return folder, marker


@pytest.mark.slow
def test_a_gliner_folder_never_runs_its_own_python(tmp_path):
    """Regression (issue 17.1): gliner builds its encoder with trust_remote_code=True, so a folder whose
    gliner_config.json carries encoder_config.auto_map ran the folder's modeling_evil.py on load."""
    from glinker import ConfigBuilder, ConfigError, DAGExecutor, ProcessorFactory

    folder, marker = evil_gliner(tmp_path)
    control = subprocess.run(  # the folder really would run its code: gliner itself loads it
        [sys.executable, "-c", f"from gliner import GLiNER\ntry: GLiNER.from_pretrained({str(folder)!r}, "
         "local_files_only=True)\nexcept Exception: pass"],
        env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}, capture_output=True, timeout=300)
    assert marker.exists(), control.stderr.decode()[-2000:]
    marker.unlink()

    expected = f"{folder / 'gliner_config.json'} has key 'encoder_config.auto_map'"
    builder = ConfigBuilder()
    builder.l1.gliner(model=str(folder), labels=["city"])
    builder.l3.configure(model=str(folder), backend="gliner")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        DAGExecutor(builder.build())
    with pytest.raises(ConfigError, match=re.escape(expected)):
        ProcessorFactory.create_simple(model_name=str(folder))
    assert not marker.exists()


@pytest.mark.parametrize(("file", "config", "key"), [
    ("gliner_config.json", {"labels_encoder_config": {"auto_map": {"AutoModel": "m.M"}}},
     "labels_encoder_config.auto_map"),
    ("config.json", {"encoder_config": {"auto_map": {"AutoModel": "m.M"}}}, "encoder_config.auto_map"),
    ("config.json", {"model_type": "bert", "auto_map": {"AutoModel": "m.M"}}, "auto_map"),
    ("tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["t.T", None]}}, "auto_map"),
    ("1_Pooling/config.json", {"layers": [{}, {"auto_map": {}}]}, "layers.1.auto_map"),
])
def test_model_folders_naming_their_own_code_are_refused(tmp_path, file, config, key):
    """GLiClass and relex keep their encoder configs in config.json / gliner_config.json: same refusal."""
    from glinker import ConfigError
    from glinker.models.resolve import resolve_model

    path = tmp_path / "model" / file
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=re.escape(f"{path} has key {key!r}")):
        resolve_model(str(tmp_path / "model"))


def test_model_folders_without_code_keys_resolve(tmp_path):
    from glinker.models.resolve import resolve_model

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "note": "auto_map"}))
    (tmp_path / "broken_config.json").write_text("{not json")
    assert resolve_model(str(tmp_path)).path == tmp_path.resolve()
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2").path is not None


def test_a_hub_model_naming_its_own_code_is_refused_before_download(tmp_path, monkeypatch):
    """With the hub online, the config files are fetched and checked before the model library loads anything."""
    import huggingface_hub

    from glinker import ConfigError
    from glinker.models.resolve import resolve_model

    (tmp_path / "gliner_config.json").write_text(json.dumps({"encoder_config": {"auto_map": {"AutoModel": "m.M"}}}))

    def fake_download(repo, file, token=None):
        if not (tmp_path / file).exists():
            raise FileNotFoundError(file)
        return str(tmp_path / file)

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setattr("glinker.models.resolve._hf_cache_path", lambda name, token: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.raises(ConfigError, match="gliner_config.json has key 'encoder_config.auto_map'"):
        resolve_model("someone/evil-gliner")
    (tmp_path / "gliner_config.json").write_text(json.dumps({"encoder_config": {"model_type": "bert"}}))
    assert resolve_model("someone/evil-gliner").origin == "hub"
