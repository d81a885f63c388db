"""glinker serve: results routed back under concurrency, every error code, the API key, /health,
/metrics, drain on SIGTERM, and the Ray Serve engine.

The pipeline is model-free (gazetteer L1, names L2, L0) over the example KB, so a batch takes
milliseconds and results do not depend on how documents are batched.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import yaml

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
from fastapi.testclient import TestClient  # noqa: E402

from glinker.jobs.runner import LinkJob, run_local  # noqa: E402
from glinker.serve.app import ServeOptions, create_app  # noqa: E402
from glinker.serve.batcher import Batcher  # noqa: E402
from glinker.serve.service import Limits, LinkService, RequestChecker  # noqa: E402
from tests.conftest import DATA, ROOT, model_free_config  # noqa: E402

KB = DATA / "entities.jsonl"
KEY = "s3cret-key"


def example_docs() -> list[dict]:
    """The example texts, their first halves and their second halves: 30 documents, some of them blank-free."""
    rows = [orjson.loads(line) for line in (DATA / "texts.jsonl").read_bytes().splitlines() if line.strip()]
    docs = []
    for row in rows:
        text, half = row["text"], len(row["text"]) // 2
        docs += [{"id": row["id"], "text": text}, {"id": f"{row['id']}/a", "text": text[:half]},
                 {"id": f"{row['id']}/b", "text": text[half:]}]
    return docs


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "model-free.yaml"
    path.write_text(yaml.safe_dump(model_free_config()))
    return path


@pytest.fixture(scope="module")
def service(config_path):
    return LinkService(config_path, KB)


def make_app(config_path, service_run, limits=None, api_key=None, **batching):
    limits = limits or Limits()
    checker = RequestChecker(config_path, limits)
    return create_app(checker, lambda metrics: Batcher(service_run, on_batch=metrics.batch, **batching),
                      ServeOptions(limits, api_key))


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition was never met"
        time.sleep(0.01)


def wait_ready(client, seconds=30.0):
    wait_until(lambda: client.get("/health").status_code == 200, seconds)


@pytest.fixture(scope="module")
def client(config_path, service):
    app = make_app(config_path, service.run, max_batch_docs=8, max_wait_ms=30)
    with TestClient(app) as test_client:
        wait_ready(test_client)
        yield test_client


def link(client, docs, **extra):
    response = client.post("/link", json={"texts": [d["text"] for d in docs], "ids": [d["id"] for d in docs], **extra})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def metric(client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_concurrent_requests_get_their_own_results_equal_to_glinker_link(client, config_path, tmp_path):
    docs = example_docs()
    alone = [link(client, [d])[0] for d in docs]
    calls_before = metric(client, "glinker_batch_docs_count")
    with ThreadPoolExecutor(16) as pool:  # one-document requests and two-document requests, interleaved
        singles = pool.map(lambda d: link(client, [d])[0], docs)
        pairs = pool.map(lambda i: link(client, docs[i:i + 2]), range(0, len(docs), 2))
        singles, pairs = list(singles), [r for pair in pairs for r in pair]
    assert singles == alone and pairs == alone
    assert link(client, docs) == alone
    batched = metric(client, "glinker_batch_docs_count") - calls_before
    assert batched < len(docs) + len(docs) // 2 + 1, "concurrent documents were not batched together"
    source, output = tmp_path / "docs.jsonl", tmp_path / "linked.jsonl"
    source.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    run_local(LinkJob(config=config_path, kb=KB, input=source, output=output, progress=False))
    assert [orjson.loads(line) for line in output.read_bytes().splitlines()] == alone
    assert any(r["entities"] for r in alone)


def test_candidates_and_given_mentions(client, service):
    text = "Paris is a small city in Lamar County in northeast Texas."
    [found] = link(client, [{"id": 1, "text": text}], candidates=2)
    assert all(1 <= len(e["candidates"]) <= 2 for e in found["entities"])
    given = [{"start": 51, "end": 56, "text": "Texas"}]
    [result] = link(client, [{"id": 2, "text": text}], entities=[given])
    assert [(e["start"], e["end"]) for e in result["entities"]] == [(51, 56)]
    per_text, _ = service.given.records([text], [given])
    assert result["entities"] == per_text[0]


def test_blank_texts_and_default_ids(client):
    response = client.post("/link", json={"texts": ["", "   ", "Paris"]})
    assert [r["id"] for r in response.json()["results"]] == [0, 1, 2]
    assert response.json()["results"][0]["entities"] == []


@pytest.mark.parametrize("body, status, field", [
    (b"{not json", 422, "malformed JSON"),
    (b"[1, 2]", 422, "JSON object"),
    (b"{}", 422, "texts"),
    (b'{"texts": "one string"}', 422, "'texts' must be a list"),
    (b'{"texts": ["ok", 7]}', 422, "texts[1]"),
    (b'{"texts": ["ok"], "ids": [true]}', 422, "ids[0]"),
    (b'{"texts": ["ok", "ok"], "ids": ["a"]}', 422, "ids"),
    (b'{"texts": ["Paris"], "entities": [[{"start": 0, "end": 9}]]}', 422, "entities[0][0]"),
    (b'{"texts": ["Paris"], "entities": [[{"start": "0", "end": 5}]]}', 422, "entities[0][0].start"),
    (b'{"texts": ["Paris"], "candidates": -1}', 422, "candidates"),
    (b'{"texts": ["Paris"], "text": "typo"}', 422, "'text'"),
    (orjson.dumps({"texts": ["x"] * 6}), 413, "texts: 6 documents"),
    (orjson.dumps({"texts": ["ok", "y" * 101]}), 413, "texts[1]"),
    (orjson.dumps({"texts": ["z" * 90] * 5}), 413, "bytes"),
])
def test_bad_requests_are_refused_naming_the_field(config_path, service, body, status, field):
    limits = Limits(max_request_docs=5, max_text_chars=100, max_body_bytes=400)
    with TestClient(make_app(config_path, service.run, limits)) as test_client:
        wait_ready(test_client)
        response = test_client.post("/link", content=body, headers={"content-type": "application/json"})
        assert response.status_code == status, response.text
        error = response.json()
        assert set(error) == {"error", "detail"} and field in error["detail"]
        assert metric(test_client, f'glinker_errors_total{{code="{status}"}}') == 1


def test_bad_requests_do_not_touch_the_batch_they_would_have_joined(client):
    docs = example_docs()[:12]
    alone = [link(client, [d])[0] for d in docs]
    bad = [{"texts": [1]}, {"texts": ["Paris"], "entities": [[{"start": 3, "end": 1}]]}, {"texts": None}]

    def send(i):
        if i % 2:
            return client.post("/link", json=bad[i % 3]).status_code
        return link(client, [docs[i // 2]])[0]

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(send, range(24)))
    assert answers[0::2] == alone and set(answers[1::2]) == {422}


def test_queue_full_is_429_with_retry_after(config_path, service):
    release = threading.Event()

    def slow_run(docs):
        release.wait(10)
        return service.run(docs)

    app = make_app(config_path, slow_run, max_batch_docs=2, max_wait_ms=0, max_queue_docs=4)
    with TestClient(app) as test_client, ThreadPoolExecutor(2) as pool:
        wait_ready(test_client)
        held = [pool.submit(test_client.post, "/link", json={"texts": ["Paris", "Texas"]}) for _ in range(2)]
        wait_until(lambda: test_client.get("/health").json()["queue_docs"] == 4)
        refused = test_client.post("/link", json={"texts": ["Dallas"]})
        release.set()
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"] == "queue full"
        assert [f.result().status_code for f in held] == [200, 200]
        assert test_client.post("/link", json={"texts": ["Dallas"]}).status_code == 200


def test_queue_time_bounds_give_429_not_client_timeouts(config_path, service):
    """Past the measured rate a request is refused at once; a document queued too long is answered 429."""
    release, calls = threading.Event(), []

    def slow_run(docs):
        calls.append(len(docs))
        if len(calls) == 1:
            time.sleep(0.2)  # one document in 0.2 s: the queue drains at about 5 documents/s
        else:
            release.wait(10)
        return service.run(docs)

    app = make_app(config_path, slow_run, max_batch_docs=1, max_wait_ms=0, max_queue_seconds=1.0)
    with TestClient(app) as test_client, ThreadPoolExecutor(4) as pool:
        wait_ready(test_client)
        assert test_client.post("/link", json={"texts": ["Paris"]}).status_code == 200
        running = pool.submit(test_client.post, "/link", json={"texts": ["Texas"]})
        wait_until(lambda: len(calls) == 2)  # "Texas" is in the pipeline before "Dallas" is sent
        waiting = pool.submit(test_client.post, "/link", json={"texts": ["Dallas"]})
        wait_until(lambda: test_client.get("/health").json()["queue_docs"] == 2)
        refused = test_client.post("/link", json={"texts": ["Amazon"] * 10})  # 12 documents at ~5/s: over 1 s
        assert refused.status_code == 429 and "s to link" in refused.json()["detail"]
        time.sleep(1.1)
        release.set()
        expired = waiting.result()
        assert running.result().status_code == 200
        assert expired.status_code == 429 and int(expired.headers["Retry-After"]) >= 1
        assert "in the queue" in expired.json()["detail"]
        assert calls == [1, 1]  # the expired document never reached the pipeline


def test_api_key(config_path, service):
    with TestClient(make_app(config_path, service.run, api_key=KEY)) as test_client:
        wait_ready(test_client)
        body = {"texts": ["Paris"]}
        assert test_client.post("/link", json=body).status_code == 401
        wrong = test_client.post("/link", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
        assert test_client.post("/link", json=body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert test_client.post("/link", json=body, headers={"X-API-Key": KEY}).status_code == 200
        assert test_client.get("/health").status_code == 200  # probes need no key


def test_health_is_503_until_loaded_then_metrics_and_openapi(config_path, service):
    loaded = threading.Event()

    def load(metrics):
        loaded.wait(10)
        return Batcher(service.run, on_batch=metrics.batch)

    app = create_app(RequestChecker(config_path, Limits()), load)
    with TestClient(app) as test_client:
        health = test_client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "loading"
        assert test_client.post("/link", json={"texts": ["Paris"]}).status_code == 503
        loaded.set()
        wait_ready(test_client)
        assert test_client.get("/health").json() == {"status": "ok", "queue_docs": 0}
        assert test_client.post("/link", json={"texts": ["Paris", "Texas"]}).status_code == 200
        text = test_client.get("/metrics").text
        for name in ("glinker_requests_total", "glinker_documents_total 2.0", "glinker_mentions_total",
                     "glinker_errors_total", "glinker_batch_docs_bucket", "glinker_batch_seconds_bucket",
                     "glinker_request_seconds_bucket", "glinker_queue_docs 0.0"):
            assert name in text
        schema = test_client.get("/openapi.json").json()
        assert "texts" in schema["paths"]["/link"]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "properties"]
        assert test_client.get("/nowhere").json()["error"] == "not found"


def test_a_pipeline_without_l1_needs_given_mentions(tmp_path):
    config = model_free_config()
    config["nodes"] = [n for n in config["nodes"] if n["id"] != "l1"]
    config["nodes"][0]["requires"] = []
    config["nodes"][0]["inputs"]["mentions"] = {"source": "$input", "fields": "entities"}
    config["nodes"][1]["inputs"]["l1_entities"] = {"source": "$input", "fields": "entities"}
    checker = RequestChecker(config, Limits())
    with pytest.raises(Exception, match="entities: required"):
        checker.documents(b'{"texts": ["Paris"]}')
    assert checker.documents(b'{"texts": ["Paris"], "entities": [[{"start": 0, "end": 5}]]}')[0].mentions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_drains_queued_requests_and_exits_0(config_path, tmp_path):
    import httpx

    key_file, port = tmp_path / "key", free_port()
    key_file.write_text(KEY + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "glinker.cli", "serve", "--config", str(config_path), "--kb", str(KB), "--port",
         str(port), "--max-wait-ms", "2500", "--max-batch-docs", "64", "--api-key-file", str(key_file)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url, headers = f"http://127.0.0.1:{port}", {"X-API-Key": KEY}
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read().decode()
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert httpx.post(f"{url}/link", json={"texts": ["Paris"]}).status_code == 401
        docs = example_docs()[:8]
        with ThreadPoolExecutor(len(docs)) as pool:
            futures = [pool.submit(httpx.post, f"{url}/link", json={"texts": [d["text"]], "ids": [d["id"]]},
                                   headers=headers, timeout=30) for d in docs]
            while httpx.get(f"{url}/health").json()["queue_docs"] < len(docs):  # all wait for their batch
                assert time.monotonic() < deadline
                time.sleep(0.02)
            server.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        assert [a.status_code for a in answers] == [200] * len(docs)
        with pytest.raises(httpx.TransportError):  # stopped accepting
            httpx.get(f"{url}/health")
        assert [a.json()["results"][0]["id"] for a in answers] == [d["id"] for d in docs]
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def ray_serve_available() -> bool:
    try:
        from ray import serve  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
def test_ray_engine_gives_the_local_results(config_path, service):
    if os.environ.get("GLINKER_REQUIRE_RAY") != "1" and not ray_serve_available():
        pytest.skip("ray[serve] is not installed")
    from glinker.serve.ray_serve import RayBackend

    docs = example_docs()
    expected = service.run([d for d in RequestChecker(config_path, Limits()).documents(
        orjson.dumps({"texts": [d["text"] for d in docs], "ids": [d["id"] for d in docs]}))])

    def load(metrics):
        return RayBackend.deploy(config_path, KB, replicas=2, max_batch_docs=8, max_wait_ms=20,
                                 max_queue_docs=256, num_cpus=0.5)

    import ray
    from ray import serve

    try:
        with TestClient(create_app(RequestChecker(config_path, Limits()), load)) as test_client:
            wait_ready(test_client, seconds=240)
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda d: link(test_client, [d])[0], docs))
            assert results == expected
            assert link(test_client, docs) == expected
    finally:
        serve.shutdown()
        ray.shutdown()
