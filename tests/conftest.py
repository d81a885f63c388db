import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Property-based tests (tests/test_fuzz_*.py): CI runs a fixed seed and a bounded number of examples;
# HYPOTHESIS_PROFILE=long runs 10,000 examples per property (costly properties scale down, see costly()).
_FUZZ = {"derandomize": True, "database": None, "deadline": None, "print_blob": True,
         "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]}
settings.register_profile("ci", max_examples=100, **_FUZZ)
settings.register_profile("long", max_examples=10_000, **_FUZZ)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def costly(divisor: int) -> settings:
    """Settings for a property whose examples cost ~``divisor`` cheap ones: fewer examples, same seed."""
    return settings(max_examples=max(5, settings.default.max_examples // divisor))


ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "data"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def example_kb_path() -> Path:
    return DATA / "entities.jsonl"


@pytest.fixture(scope="session")
def example_texts() -> list[str]:
    import orjson

    return [orjson.loads(line)["text"] for line in (DATA / "texts.jsonl").read_bytes().splitlines() if line.strip()]


def dense_builder(l1: str | None = "spacy"):
    """spaCy (or gazetteer, or no) L1 + dict/faiss L2 + dense L3: the real offline models."""
    from glinker import ConfigBuilder

    builder = ConfigBuilder(name="test")
    if l1 == "spacy":
        builder.l1.spacy(model="en_core_web_sm")
    elif l1 == "dictionary":
        builder.l1.dictionary()
    builder.l2.add("dict", priority=1)
    builder.l2.add("faiss", priority=0)
    builder.l2.embeddings(enabled=True, model_name=MINILM)
    builder.l3.configure(model=MINILM, backend="dense", threshold=0.6)
    return builder


def model_free_config() -> dict:
    """Gazetteer L1 -> names-only L2 -> L0: the whole engine without any model (fast enough to fuzz)."""
    texts = {"source": "$input", "fields": "texts"}
    return {"name": "model-free", "nodes": [
        {"id": "l1", "processor": "l1_dictionary", "inputs": {"texts": dict(texts)}, "output": {"key": "l1_result"}},
        {"id": "l2", "processor": "l2_chain", "requires": ["l1"],
         "inputs": {"mentions": {"source": "l1_result", "fields": "entities"}, "texts": dict(texts)},
         "output": {"key": "l2_result"}, "schema": {"template": "{label}: {description}"},
         "config": {"layers": [{"type": "dict"}]}},
        {"id": "l0", "processor": "l0_aggregator", "requires": ["l2"],
         "inputs": {"l1_entities": {"source": "l1_result", "fields": "entities"},
                    "l2_candidates": {"source": "l2_result", "fields": "candidates"}, "texts": dict(texts)},
         "output": {"key": "l0_result"}},
    ]}


@pytest.fixture(scope="session")
def spacy_executor(example_kb_path):
    from glinker import DAGExecutor

    executor = DAGExecutor(dense_builder("spacy").build())
    executor.load_entities(example_kb_path)
    return executor


@pytest.fixture(scope="session")
def gazetteer_executor(example_kb_path):
    from glinker import DAGExecutor

    executor = DAGExecutor(dense_builder("dictionary").build())
    executor.load_entities(example_kb_path)
    return executor
