"""Identity between the parts of a kb_dir (issue 17.9): the name index and the vectors record the entity
table they were built from and are refused with another one; vectors of another encoder or template are
refused when the pipeline is built. No model: a fake encoder makes the vectors."""

import json
import shutil

import numpy as np
import pytest

from glinker import DAGExecutor, KnowledgeBase, KnowledgeBaseError
from glinker.kb.storage import sha256_file
from tests.conftest import model_free_config

CARS = [{"entity_id": "Q1", "label": "Jaguar Cars", "description": "car maker"},
        {"entity_id": "Q2", "label": "Jaguar", "aliases": ["panthera onca"], "description": "big cat"}]
PLACES = [{"entity_id": "Q142", "label": "France", "description": "country"},
          {"entity_id": "Q90", "label": "Paris", "aliases": ["city of light"], "description": "capital"}]


class FakeEncoder:
    """Unit vectors from the text's bytes, deterministic."""

    model_id = "fake-encoder"
    dim = 8

    def encode(self, texts, batch_size=64, progress=False, desc=""):
        out = np.array([[(sum(t.encode()) * (i + 1)) % 17 + 1.0 for i in range(self.dim)] for t in texts], np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def build(entities, out, template="{label}: {description}", kinds=("names", "entities")):
    kb = KnowledgeBase()
    kb.load(entities)
    for kind in kinds:
        kb.vectors(FakeEncoder(), kind, template)
    kb.save_dir(out, FakeEncoder.model_id, template)
    return out


def edit_manifest(kb_dir, change):
    """Apply ``change`` to the manifest and regenerate every file's size and checksum, as a careless
    repair would."""
    path = kb_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    for name, info in manifest["files"].items():
        info.update(bytes=(kb_dir / name).stat().st_size, sha256=sha256_file(kb_dir / name))
    path.write_text(json.dumps(manifest))


def test_a_swapped_entity_table_is_refused_naming_the_files(tmp_path):
    places, cars = build(PLACES, tmp_path / "places"), build(CARS, tmp_path / "cars")
    for table in cars.glob("entities.*"):
        shutil.copy(table, places / table.name)
    edit_manifest(places, lambda m: None)  # same counts: only the recorded rows tell the tables apart
    for verify in ("full", "size", "none"):
        with pytest.raises(KnowledgeBaseError, match=r"names\.\*\.npy, vectors\.names\.npy, vectors\.entities\.npy "
                           r"were built from another entity table than entities\.\*\.npy .*rebuild it"):
            KnowledgeBase.open(places, verify=verify)
    executor = DAGExecutor(model_free_config())
    executor.load_entities(PLACES)
    with pytest.raises(KnowledgeBaseError, match="another entity table"):
        executor.load_entities(places)  # it linked "France" to "Jaguar Cars" at 1.0
    assert executor.kb.path is None and len(executor.kb) == 2


def test_one_part_of_another_build_is_named_alone(tmp_path):
    places = build(PLACES, tmp_path / "places")
    other = build([dict(e, entity_id=e["entity_id"] + "x") for e in PLACES], tmp_path / "other")
    shutil.copy(other / "vectors.entities.npy", places / "vectors.entities.npy")
    other_rows = json.loads((other / "manifest.json").read_text())["vectors"]["entities"]["rows_sha256"]
    edit_manifest(places, lambda m: m["vectors"]["entities"].update(rows_sha256=other_rows))
    with pytest.raises(KnowledgeBaseError, match=r": vectors\.entities\.npy was built from another entity table"):
        KnowledgeBase.open(places)


def test_kb_dirs_without_recorded_rows_still_open(tmp_path):
    """kb_dirs written before rows_sha256 was recorded have nothing to compare: they open as they are."""
    places = build(PLACES, tmp_path / "places")
    manifest = json.loads((places / "manifest.json").read_text())
    assert manifest["name_index"]["rows_sha256"] == manifest["vectors"]["names"]["rows_sha256"]

    def forget(m):
        del m["name_index"]["rows_sha256"]
        for info in m["vectors"].values():
            del info["rows_sha256"]

    edit_manifest(places, forget)
    assert len(KnowledgeBase.open(places)) == 2


def test_vectors_of_another_encoder_or_template_are_refused_when_the_pipeline_is_built(tmp_path, monkeypatch):
    from glinker.linking import dense
    from glinker.retrievers import vectors
    from tests.conftest import dense_builder

    class PipelineEncoder(FakeEncoder):
        model_id = "pipeline-encoder"

    for module in (dense, vectors):  # the layers' encoders, without loading a model
        monkeypatch.setattr(module, "get_encoder", lambda *args, **kwargs: PipelineEncoder())
    opened = KnowledgeBase.open(build(PLACES, tmp_path / "places"))
    with pytest.raises(KnowledgeBaseError, match=r"made with encoder 'fake-encoder'.*pipeline uses 'pipeline-encoder'"):
        DAGExecutor(dense_builder("dictionary").build(), kb=opened)  # when built, before any batch
    executor = DAGExecutor(dense_builder("dictionary").build())
    with pytest.raises(KnowledgeBaseError, match=r"made with encoder 'fake-encoder'.*pipeline uses 'pipeline-encoder'"):
        executor.load_entities(tmp_path / "places")  # or when loaded into a built pipeline
    labels = KnowledgeBase.open(build(PLACES, tmp_path / "labels", template="{label}", kinds=("labels",)))
    with pytest.raises(KnowledgeBaseError, match=r"labels vectors were made with template '\{label\}'.*pipeline"):
        labels.require_vectors("fake-encoder", "labels", "{label}: {description}")  # what a GLiNER linker declares
    labels.require_vectors("fake-encoder", "labels", "{label}")


def test_vectors_of_the_same_int8_model_on_another_kind_of_cpu_are_refused_with_why(tmp_path):
    """int8 GLiNER ids end in +int8-bf16 on CPUs with native bfloat16 and +int8 elsewhere: the refusal
    says the CPU is what differs, not the configuration."""
    from glinker.kb.base import _check_space

    manifest = {"encoder": "gliner+int8-bf16", "vectors": {"labels": {"template": "{label}"}}}
    with pytest.raises(KnowledgeBaseError, match=r"runs 'gliner\+int8'.*bfloat16.*on this kind of CPU"):
        _check_space(manifest, tmp_path, "labels", "gliner+int8", "{label}")
    with pytest.raises(KnowledgeBaseError, match="rebuild with `glinker kb build --encoder other"):
        _check_space(manifest, tmp_path, "labels", "other+int8", "{label}")
    _check_space(manifest, tmp_path, "labels", "gliner+int8-bf16", "{label}")
