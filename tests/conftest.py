import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

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
