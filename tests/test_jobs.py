"""Bulk jobs: glinker link (kill/resume, bad lines, refusals, formats, Ray), eval and render.

Inputs: 300 BC5CDR abstracts with a MEDIC subset (the entities those abstracts mention) when
../shared/data is present, else the example texts repeated to 300 documents with the example KB.
The pipeline is the gazetteer + exact names + dense MiniLM linker, with short mention windows so a
300-document run takes seconds.
"""

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from glinker.errors import InputError
from glinker.jobs.reader import InputOptions
from glinker.jobs.render import render, render_page
from glinker.jobs.runner import LinkJob, run_local
from tests.conftest import DATA, MINILM, ROOT, SHARED

pytestmark = pytest.mark.slow

BC5CDR = SHARED / "bc5cdr_disease" / "docs.jsonl.gz"
MEDIC = SHARED / "medic" / "kb.jsonl.gz"
N_DOCS = 300
CONFIG = f"""
name: bulk-test
nodes:
  - id: l1
    processor: l1_dictionary
    inputs: {{texts: {{source: $input, fields: texts}}}}
    output: {{key: l1_result}}
  - id: l2
    processor: l2_chain
    requires: [l1]
    inputs:
      mentions: {{source: l1_result, fields: entities}}
      texts: {{source: $input, fields: texts}}
    output: {{key: l2_result}}
    config: {{max_candidates: 5, layers: [{{type: dict, search_mode: [exact]}}]}}
  - id: l3
    processor: l3_batch
    requires: [l2]
    inputs:
      texts: {{source: $input, fields: texts}}
      candidates: {{source: l2_result, fields: candidates}}
    output: {{key: l3_result}}
    schema: {{template: "{{label}}"}}
    config: {{model_name: {MINILM}, backend: dense, threshold: 0.5, context_chars: 0, max_length: 32}}
  - id: l0
    processor: l0_aggregator
    requires: [l1, l2, l3]
    inputs:
      l1_entities: {{source: l1_result, fields: entities}}
      l2_candidates: {{source: l2_result, fields: candidates}}
      l3_entities: {{source: l3_result, fields: entities}}
    output: {{key: l0_result}}
"""
# One thread per process: the tests share a small machine; outputs do not depend on the thread count.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
BAD_LINES = [
    b"this is not json\n",
    b'["a JSON list", "not an object"]\n',
    b'{"id": "no-text"}\n',
    b'{"id": "number-text", "text": 42}\n',
    b'{"id": "bad-utf8", "text": "caf\xe9"}\n',
    b'{"id": ["list", "id"], "text": "an id must be a string or an integer"}\n',
]


def glinker(*args, check=True, **kwargs):
    out = subprocess.run([sys.executable, "-m", "glinker.cli", *map(str, args)], capture_output=True, cwd=ROOT,
                         env=ENV, timeout=600, **kwargs)
    if check and out.returncode != 0:
        raise AssertionError(out.stderr.decode())
    return out


@pytest.fixture(scope="session")
def bulk(tmp_path_factory):
    root = tmp_path_factory.mktemp("bulk")
    docs_path, kb_rows = root / "docs.jsonl", root / "kb.jsonl"
    if BC5CDR.exists() and MEDIC.exists():
        with gzip.open(BC5CDR, "rb") as handle:
            docs = [orjson.loads(line) for _, line in zip(range(N_DOCS), handle, strict=False)]
        rows = [{"id": d["doc_id"], "text": d["text"]} for d in docs]
        wanted = {i for d in docs for m in d["mentions"] for i in m["entity_ids"]}
        with gzip.open(MEDIC, "rb") as handle, open(kb_rows, "wb") as out:
            for line in handle:
                if orjson.loads(line)["entity_id"] in wanted:
                    out.write(line.rstrip(b"\n") + b"\n")
    else:
        texts = [orjson.loads(line) for line in (DATA / "texts.jsonl").read_bytes().splitlines() if line.strip()]
        rows = [{"id": f"{t['id']}-{i}", "text": t["text"]} for i in range(N_DOCS // len(texts)) for t in texts]
        kb_rows.write_bytes((DATA / "entities.jsonl").read_bytes())
    docs_path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = root / "bulk.yaml"
    config.write_text(CONFIG)
    kb = root / "kb"
    glinker("kb", "build", "--entities", kb_rows, "--out", kb, "--vectors", "entities", "--template", "{label}", "--quiet")
    return SimpleNamespace(root=root, docs=docs_path, rows=rows, config=config, kb=kb, kb_rows=kb_rows)


def with_bad_lines(rows, every: int) -> bytes:
    """The rows as JSONL with BAD_LINES spread among them, plus a blank line and an empty text."""
    lines = [orjson.dumps(r) + b"\n" for r in rows]
    for k, bad in enumerate(BAD_LINES):
        lines.insert(min(len(lines), (k + 1) * every), bad)
    lines.insert(len(lines) // 2, b"\n")
    lines.append(b'{"id": "empty", "text": ""}\n')
    return b"".join(lines)


def read_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [orjson.loads(line) for line in data.splitlines()]


def link_args(bulk, input_path, output, *extra):
    return ["link", "--config", bulk.config, "--kb", bulk.kb, "--input", input_path, "--output", output,
            "--quiet", *extra]


def test_sigkill_then_resume_is_byte_identical(bulk):
    data = bulk.root / "mixed.jsonl"
    data.write_bytes(with_bad_lines(bulk.rows, every=45))
    full, part = bulk.root / "full.jsonl", bulk.root / "part.jsonl"
    started = time.perf_counter()
    summary = orjson.loads(glinker(*link_args(bulk, data, full, "--batch-size", 8, "--rejects",
                                             bulk.root / "full.rejects.jsonl")).stdout)
    uninterrupted = time.perf_counter() - started
    assert summary["docs"] == N_DOCS + 1 and summary["rejected"] == len(BAD_LINES) and summary["done"]
    assert summary["mentions"] > N_DOCS and summary["linked"] > 0

    ckpt = Path(f"{part}.ckpt")
    rejects = bulk.root / "part.rejects.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "glinker.cli",
                             *map(str, link_args(bulk, data, part, "--batch-size", 8, "--rejects", rejects))],
                            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists() and orjson.loads(ckpt.read_bytes())["input_line"] >= 100:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the job ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    state = orjson.loads(ckpt.read_bytes())
    assert not state["done"] and 100 <= state["input_line"] < N_DOCS
    assert part.stat().st_size >= state["output_bytes"]
    with open(part, "ab") as handle:  # a torn batch written after the last checkpoint
        handle.write(b'{"id":"torn-write","entities":[{"start":')

    refused = glinker(*link_args(bulk, data, part, "--batch-size", 8, "--rejects", rejects), check=False)
    assert refused.returncode == 2 and b"--resume" in refused.stderr
    resumed = orjson.loads(glinker(*link_args(bulk, data, part, "--batch-size", 8, "--rejects", rejects,
                                             "--resume")).stdout)
    assert resumed["resumed_from_line"] == state["input_line"]
    assert part.read_bytes() == full.read_bytes()
    assert rejects.read_bytes() == (bulk.root / "full.rejects.jsonl").read_bytes()
    assert {k: resumed[k] for k in ("docs", "mentions", "linked", "rejected")} == \
           {k: summary[k] for k in ("docs", "mentions", "linked", "rejected")}
    print(f"uninterrupted run {uninterrupted:.1f}s; killed at input line {state['input_line']}")


def test_bad_lines_are_rejected_with_line_numbers_and_the_rest_is_linked(bulk, tmp_path):
    rows = bulk.rows[:20]
    data = tmp_path / "in.jsonl"
    data.write_bytes(with_bad_lines(rows, every=3))
    job = LinkJob(bulk.config, bulk.kb, data, tmp_path / "out.jsonl", batch_size=4, rejects=tmp_path / "rej.jsonl",
                  progress=False)
    summary = run_local(job)
    out = read_lines(tmp_path / "out.jsonl")
    assert [o["id"] for o in out] == [r["id"] for r in rows] + ["empty"]
    assert out[-1]["entities"] == [] and summary["docs"] == 21 and summary["rejected"] == len(BAD_LINES)
    rejects = read_lines(tmp_path / "rej.jsonl")
    lines = data.read_bytes().splitlines(keepends=True)
    assert [lines[r["line"] - 1] for r in rejects] == BAD_LINES
    reasons = " | ".join(r["reason"] for r in rejects)
    for expected in ("invalid JSON", "expected a JSON object", "missing field 'text'", "must be a string, got int",
                     "UTF-8", "field 'id' must be a string or an integer"):
        assert expected in reasons
    for o in out:
        for e in o["entities"]:
            assert set(e) == {"start", "end", "text", "label", "entity_id", "entity_label", "score"}


def test_resume_is_refused_when_config_kb_or_options_change(bulk, tmp_path):
    out = tmp_path / "out.jsonl"
    first = run_local(LinkJob(bulk.config, bulk.kb, bulk.docs, out, batch_size=4, limit=6, progress=False))
    assert first["docs"] == 6 and not first["done"]
    changed = tmp_path / "changed.yaml"
    changed.write_text(CONFIG.replace("threshold: 0.5", "threshold: 0.4"))
    cases = [({"config": changed}, "the pipeline config"), ({"kb": bulk.kb_rows}, "the knowledge base"),
             ({"batch_size": 8}, "batch_size: 4 -> 8"), ({"input": DATA / "texts.jsonl"}, "the input file")]
    for change, message in cases:
        job = LinkJob(**{"config": bulk.config, "kb": bulk.kb, "input": bulk.docs, "output": out, "batch_size": 4,
                         "resume": True, "progress": False, **change})
        with pytest.raises(InputError, match=message):
            run_local(job)
    with pytest.raises(InputError, match="already exists"):
        run_local(LinkJob(bulk.config, bulk.kb, bulk.docs, out, batch_size=4, progress=False))
    resumed = run_local(LinkJob(bulk.config, bulk.kb, bulk.docs, out, batch_size=4, limit=14, resume=True,
                                progress=False))
    fresh = run_local(LinkJob(bulk.config, bulk.kb, bulk.docs, tmp_path / "fresh.jsonl", batch_size=4, limit=14,
                              progress=False))
    assert (resumed["docs"], fresh["docs"]) == (14, 14)
    assert out.read_bytes() == (tmp_path / "fresh.jsonl").read_bytes()
    again = run_local(LinkJob(bulk.config, bulk.kb, bulk.docs, out, batch_size=4, limit=3, overwrite=True,
                              progress=False))
    assert again["docs"] == 3 and len(read_lines(out)) == 3


def test_an_int8_job_resumes_only_on_a_cpu_with_the_same_bfloat16_support(bulk, tmp_path, monkeypatch):
    """int8 GLiNER layers run in bfloat16 on some CPUs only, so the job's fingerprint records which
    (only when a node is int8: other jobs' fingerprints are unchanged) and a resume elsewhere is refused."""
    from glinker.jobs import runner

    int8 = tmp_path / "int8.yaml"
    int8.write_text(CONFIG.replace("backend: dense,", "backend: dense, quantize: int8,"))
    out = tmp_path / "out.jsonl"
    assert "int8_bfloat16" not in LinkJob(bulk.config, bulk.kb, bulk.docs, out).fingerprint()["options"]
    prints = {}
    for native in (True, False):
        monkeypatch.setattr(runner, "native_bfloat16", lambda native=native: native)
        prints[native] = LinkJob(int8, bulk.kb, bulk.docs, out).fingerprint()
    assert prints[True]["options"]["int8_bfloat16"] is True and prints[False]["options"]["int8_bfloat16"] is False
    kb = bulk.kb_rows  # the kb_dir holds float32 vectors; an int8 pipeline embeds the rows itself
    first = run_local(LinkJob(int8, kb, bulk.docs, out, batch_size=4, limit=4, progress=False))
    assert first["docs"] == 4
    monkeypatch.setattr(runner, "native_bfloat16", lambda: True)
    with pytest.raises(InputError, match="int8_bfloat16: False -> True"):
        run_local(LinkJob(int8, kb, bulk.docs, out, batch_size=4, resume=True, progress=False))


def test_gzip_and_text_formats_give_the_same_records(bulk, tmp_path):
    rows = bulk.rows[:12]
    plain = tmp_path / "in.jsonl"
    plain.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    packed = tmp_path / "in.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    text = tmp_path / "in.txt"
    text.write_text("".join(r["text"].replace("\n", " ") + "\n" for r in rows), encoding="utf-8")
    run_local(LinkJob(bulk.config, bulk.kb, plain, tmp_path / "a.jsonl", batch_size=5, candidates=2, progress=False))
    run_local(LinkJob(bulk.config, bulk.kb, packed, tmp_path / "b.jsonl.gz", batch_size=5, candidates=2,
                      progress=False))
    run_local(LinkJob(bulk.config, bulk.kb, text, tmp_path / "c.jsonl", batch_size=5, candidates=2, progress=False,
                      reader=InputOptions(format="txt")))
    a, b, c = (read_lines(tmp_path / name) for name in ("a.jsonl", "b.jsonl.gz", "c.jsonl"))
    assert a == b
    assert [o["id"] for o in c] == list(range(1, 13))
    assert [o["entities"] for o in c] == [o["entities"] for o in a]
    mentions = [e for o in a for e in o["entities"]]
    assert mentions and all(0 < len(e["candidates"]) <= 2 for e in mentions)
    for o, row in zip(a, rows, strict=True):
        for e in o["entities"]:
            assert row["text"][e["start"]:e["end"]] == e["text"]


def test_local_and_ray_engines_write_the_same_bytes(bulk, tmp_path):
    if os.environ.get("GLINKER_REQUIRE_RAY") != "1":  # CI (.ci/run) installs the ray extra and requires it
        pytest.importorskip("ray")
    data = tmp_path / "in.jsonl"
    data.write_bytes(with_bad_lines(bulk.rows[:120], every=20))
    local, distributed = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    glinker(*link_args(bulk, data, local, "--batch-size", 8, "--rejects", tmp_path / "local.rejects.jsonl"))
    started = time.perf_counter()
    summary = orjson.loads(glinker(*link_args(bulk, data, distributed, "--batch-size", 8, "--rejects",
                                              tmp_path / "ray.rejects.jsonl", "--engine", "ray", "--num-workers", 2,
                                              "--shard-docs", 24)).stdout)
    assert summary["shards"] == 6 and summary["docs"] == 121 and summary["rejected"] == len(BAD_LINES)
    assert distributed.read_bytes() == local.read_bytes()
    assert (tmp_path / "ray.rejects.jsonl").read_bytes() == (tmp_path / "local.rejects.jsonl").read_bytes()
    assert not Path(f"{distributed}.shards").exists()
    print(f"ray engine, 2 workers: {time.perf_counter() - started:.1f}s")


def test_eval_on_the_example_texts(bulk, tmp_path):
    texts = {orjson.loads(line)["id"]: orjson.loads(line)["text"] for line in (DATA / "texts.jsonl").read_bytes().splitlines()}
    gold = [
        ("paris-france", "Paris", "Q90"), ("paris-texas", "Paris", "Q830149"), ("paris-texas", "Texas", "Q1439"),
        ("paris-france", "Eiffel Tower", "Q243"), ("paris-france", "Champ de Mars", "NIL"),
    ]
    docs = {}
    for doc_id, surface, entity_id in gold:
        start = texts[doc_id].index(surface)
        docs.setdefault(doc_id, []).append({"start": start, "end": start + len(surface), "entity_id": entity_id})
    path = tmp_path / "gold.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"doc_id": d, "split": "test", "text": texts[d], "mentions": m}) + b"\n"
                              for d, m in docs.items()))
    out = glinker("eval", "--config", "configs/default.yaml", "--kb", "data/entities.jsonl", "--gold", path,
                  "--split", "test", "--gold-mentions", "--json")
    report = orjson.loads(out.stdout)
    assert report["mode"] == "gold_mentions" and report["docs"] == 2
    assert (report["gold_mentions"], report["nil_mentions"]) == (4, 1)
    assert report["spans"]["recall"] == 1.0 and report["accuracy@1"] >= 0.75
    assert report["recall@k"]["30"] == 1.0 and set(report["layer_seconds"]) == {"l2", "l3", "l0"}
    table = glinker("eval", "--config", "configs/default.yaml", "--kb", "data/entities.jsonl", "--gold", path).stdout
    assert b"end_to_end on 2 docs" in table and b"recall@k" in table


def test_render_escapes_documents_and_kb_text():
    text = 'Paris <script>alert("x")</script> & more'
    entities = [{"start": 0, "end": 5, "text": "Paris", "label": "<b>city</b>", "entity_id": 'Q"90',
                 "entity_label": "<i>Paris</i>", "score": 0.9},
                {"start": 6, "end": 14, "text": "<script>", "label": None, "entity_id": None, "entity_label": None,
                 "score": None}]
    kb_info = {'Q"90': {"label": "<i>Paris</i>", "description": '"><img src=x onerror=alert(1)>'}}
    page = render_page([("<doc>", text, entities)], kb_info)
    assert "<script>" not in page and "<img" not in page and "<i>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page and "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'href="#e-0"' in page and 'id="e-0"' in page


def test_render_writes_a_page_for_linked_documents(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_bytes(b'{"id": "x", "text": "Paris <em>is</em> the capital of France."}\nnot json\n')
    counts = render(ROOT / "configs" / "default.yaml", DATA / "entities.jsonl", data, tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert counts == {"docs": 1, "mentions": 2, "linked": 2, "rejected": 1}
    assert "&lt;em&gt;" in page and "<em>" not in page
    assert "Capital and largest city of France" in page and "Q142" in page
