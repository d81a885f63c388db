"""Property-based tests of the pipeline config loader: random YAML text and mutated valid configs.

Property: loading gives a ConfigError naming the place (node and key, or the file) or a valid pipeline
that round-trips through dict and YAML; a model-free pipeline that loads also runs, giving a
GlinkerError or records whose offsets index the text.
"""

import copy
import re
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from glinker import ConfigError, DAGExecutor, DAGPipeline, GlinkerError
from tests.conftest import ROOT, model_free_config

PLACE = re.compile(r"node |pipeline|config|cycle")
BASES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "configs").glob("*.yaml"))}
BASES["model_free"] = model_free_config()

yaml_token = st.sampled_from(
    ["nodes:", "- ", "  ", "\n", "id: l1", "processor: l0_aggregator", "output: {key: k}", "inputs:", "config:",
     "{", "}", "[", "]", ":", ",", "&a ", "*a", "<<: *a", "!!python/object/apply:os.system ['true']",
     "!!binary aGk=", "!!set {a}", "? ", "'", '"', "#", "---", "...", "%YAML 1.1", "2020-01-01", "1e999", "~",
     "\t", "\ufeff", "\x00", "é", "\U0001f600"]
)
yaml_text = st.one_of(st.text(max_size=200), st.lists(yaml_token, max_size=40).map("".join))


def load_yaml_text(data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        path.write_bytes(data)
        try:
            return DAGPipeline.from_yaml(path)
        except ConfigError as exc:
            assert str(exc).startswith(f"{path}: "), str(exc)
            return None


@given(yaml_text)
def test_random_yaml_text(text):
    load_yaml_text(text.encode("utf-8", "surrogatepass"))


@given(st.binary(max_size=200))
def test_random_yaml_bytes(data):
    load_yaml_text(data)


scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**18), st.floats(), st.text(max_size=12),
    st.sampled_from(["$input", "l1_result", "l2_result", "texts", "entities", "candidates", "l0_aggregator",
                     "l2_chain", "l1_dictionary", "dict", "faiss", "first", "flatten", "{label}",
                     "{label.__class__}", "__class__", "entities.__class__.__init__.__globals__", "l1", "l2", "l0"]),
)
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=6)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from paths(child, (*prefix, i))


def mutate(config: dict, data) -> dict:
    """Apply 1-4 random edits: replace a value, delete or add a key, duplicate or drop a list item."""
    config = copy.deepcopy(config)
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(list(paths(config))))
        if not path:
            continue
        parent = config
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        op = data.draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if op == "replace":
            parent[key] = data.draw(value)
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(parent[key], dict):
            parent[key][data.draw(st.text(max_size=10))] = data.draw(value)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return config


MODEL_FREE = {"l1_dictionary", "l2_chain", "l0_aggregator"}
KB = [{"entity_id": "Q90", "label": "Paris", "aliases": ["City of Light"], "description": "capital of France"},
      {"entity_id": "Q142", "label": "France", "description": "country"}]
TEXTS = ["Paris is the capital of France.", "", "  ", "city of light, PARIS\u0301 and Fran\u00e7e"]


@given(st.sampled_from(sorted(BASES)), st.data())
def test_mutated_configs_load_or_name_the_place(base, data):
    config = mutate(BASES[base], data)
    try:
        pipeline = DAGPipeline(config)
    except ConfigError as exc:
        assert PLACE.search(str(exc)), str(exc)
        event("refused")
        return
    event("loaded")
    again = DAGPipeline(yaml.safe_load(pipeline.to_yaml()))
    assert again.to_dict() == pipeline.to_dict() and again.order == pipeline.order


@given(st.data())
def test_mutated_model_free_configs_run_or_name_the_place(data):
    config = mutate(model_free_config(), data)
    try:
        pipeline = DAGPipeline(config)
    except ConfigError:
        return
    nodes = pipeline.nodes
    if any(n.processor not in MODEL_FREE for n in nodes) or any(
            layer.type == "faiss" for n in nodes if n.processor == "l2_chain"
            for layer in pipeline.node_configs[n.id].layers):
        return
    event("executed")
    try:
        executor = DAGExecutor(pipeline)
        executor.load_entities(KB)
        context = executor.execute({"texts": TEXTS})
    except GlinkerError as exc:
        assert PLACE.search(str(exc)) or "input" in str(exc), str(exc)
        return
    for node in nodes:
        result = context.get(node.output.key)
        for t, records in enumerate(getattr(result, "entities", None) or []):
            for r in records:
                start, end, text = (r.mention_start, r.mention_end, r.mention_text) if hasattr(r, "mention_start") \
                    else (r.start, r.end, r.text)
                assert TEXTS[t][start:end] == text


def write(tmp_path, text: str | bytes) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_alias_bomb_is_refused_quickly(tmp_path):
    """Nine levels of nine aliases is 387 million strings once expanded: refused before anything walks it."""
    lines = ["bomb:", "  - &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    lines += ["nodes:", "  - id: l0", "    processor: l0_aggregator", "    output: {key: l0_result}",
              "    inputs: {l2_candidates: {source: $input, default: *a9}}"]
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"pipeline\.yaml: the config holds more than 1,000,000 values"):
        DAGPipeline.from_yaml(write(tmp_path, "\n".join(lines)))
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"\xff\xfe\x00n\x00o\x00d\x00e\x00s", r"pipeline\.yaml: cannot read the config as UTF-8 text"),
        ("[" * 5000, r"pipeline\.yaml: invalid YAML"),
        ("nodes: " + "{a: " * 200 + "1" + "}" * 200, r"pipeline\.yaml: the config is nested more than 100 levels"),
    ],
    ids=["utf16", "deep-yaml", "deep-config"],
)
def test_unreadable_or_deep_yaml_names_the_file(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        DAGPipeline.from_yaml(write(tmp_path, text))


def test_deep_dict_config_is_refused():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    config = model_free_config()
    config["nodes"][0]["inputs"]["texts"]["default"] = deep
    with pytest.raises(ConfigError, match="nested more than 100 levels"):
        DAGPipeline(config)


@pytest.mark.parametrize("fields", ["__class__", "entities.__class__.__init__.__globals__", "_private", "entities.0"])
def test_input_fields_cannot_reach_into_python_objects(fields):
    config = model_free_config()
    config["nodes"][2]["inputs"]["l2_candidates"]["fields"] = fields
    with pytest.raises(ConfigError, match=r"node 'l0': input 'l2_candidates': key 'fields' .* may only name public"):
        DAGPipeline(config)


@pytest.mark.parametrize(
    ("node", "name", "spec", "message"),
    [
        (1, "mentions", {"source": "$input", "fields": "texts"}, r"node 'l2': input 'mentions' \(source '\$input', "
         r"fields 'texts'\) must be a list \(one per text\) of lists of Mention, got list\[str\]$"),
        (1, "mentions", {"source": "l1_result", "fields": "entities", "reduce": "flatten"},
         r"node 'l2': input 'mentions' .* got list\[Mention\]$"),
        (2, "l2_candidates", {"source": "l2_result", "fields": "nothing"}, r"node 'l0': .* got NoneType$"),
        (2, "l1_entities", {"source": "l2_result", "fields": "candidates"}, r"got list\[list\[MentionCandidates\]\]$"),
        (2, "texts", {"source": "$input", "fields": "texts", "reduce": "first"}, r"input 'texts' .* list of strings"),
        (2, "texts", {"source": "$input", "fields": "labels"}, r"input 'texts' .* list of strings, got NoneType$"),
    ],
)
def test_miswired_inputs_are_config_errors_naming_node_and_input(node, name, spec, message):
    """Regressions: these reached the layers and crashed there with AttributeError or TypeError. Each
    input's type is known from its source's declared output, so the pipeline refuses them before any
    layer is built or any batch runs."""
    config = model_free_config()
    config["nodes"][node]["inputs"][name] = spec
    with pytest.raises(ConfigError, match=message):
        DAGPipeline(config)
