"""The checkpoint of a bulk job is checked before a resume trusts it (issue 17.3).

Each edited checkpoint is refused with one InputError naming it, and the refused resume changes no
file. Edits are re-signed (the checksum recomputed) so each check is reached on its own; an edit left
unsigned is the checksum's case. The pipeline is model-free (gazetteer L1, names L2, L0), so a job
takes well under a second.
"""

import gzip
import re
from pathlib import Path

import orjson
import pytest
import yaml

from glinker.errors import InputError
from glinker.jobs.checkpoint import checkpoint_path, checksum
from glinker.jobs.runner import LinkJob, run_local
from tests.conftest import DATA, model_free_config

BAD = b"this line is not JSON\n"
DELETE = object()  # an edit that removes the key


@pytest.fixture
def job(tmp_path):
    rows = [orjson.loads(line) for line in (DATA / "texts.jsonl").read_bytes().splitlines() if line.strip()]
    lines = [orjson.dumps({"id": f"{r['id']}-{i}", "text": r["text"]}) + b"\n" for i in range(4) for r in rows]
    lines.insert(7, BAD)
    (tmp_path / "in.jsonl").write_bytes(b"".join(lines))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(model_free_config()))

    def make(output="out.jsonl", source="in.jsonl", **options) -> LinkJob:
        return LinkJob(tmp_path / "config.yaml", DATA / "entities.jsonl", tmp_path / source, tmp_path / output,
                       batch_size=4, rejects=tmp_path / f"{output}.rejects", progress=False, **options)

    return make


def edit(path: Path, sign: bool = True, **changes) -> None:
    state = orjson.loads(path.read_bytes())
    for key, value in changes.items():
        if value is DELETE:
            del state[key]
        else:
            state[key] = value
    if sign:
        state["checksum"] = checksum(state)
    path.write_bytes(orjson.dumps(state))


def files(tmp_path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir()) if p.name != "config.yaml"}


def test_an_untouched_checkpoint_resumes_to_the_same_bytes(job, tmp_path):
    whole = run_local(job("whole.jsonl"))
    part = run_local(job(limit=10))
    assert not part["done"] and orjson.loads(checkpoint_path(tmp_path / "out.jsonl").read_bytes())["checksum"]
    resumed = run_local(job(resume=True))
    assert resumed["done"] and resumed["docs"] == whole["docs"] == 40 and resumed["rejected"] == 1
    assert (part["this_run"]["docs"], part["this_run"]["rejected"]) == (9, 1)
    assert resumed["this_run"] == {key: resumed[key] - part[key] for key in ("docs", "mentions", "linked", "rejected")}
    assert whole["this_run"] == {key: whole[key] for key in ("docs", "mentions", "linked", "rejected")}
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert run_local(job(resume=True))["done"]  # a finished job resumes to its summary
    assert not list(tmp_path.glob("*.lock"))


def first_line_bytes(tmp_path: Path) -> int:
    return len((tmp_path / "out.jsonl").read_bytes().splitlines(keepends=True)[0])


CASES = [
    ({"input_offset": 10**9}, "'input_offset' 1000000000 is past the end of"),
    ({"input_offset": -5}, "'input_offset' must be an integer of 0 or more, got -5"),
    ({"input_offset": "120"}, "'input_offset' must be an integer of 0 or more, got '120'"),
    ({"input_offset": lambda s, _: s["input_offset"] - 3}, "'input_offset' .* is not the end of a line of"),
    ({"output_bytes": lambda s, t: first_line_bytes(t) - 5}, "'output_bytes' .* is not the end of a whole line"),
    ({"output_bytes": lambda s, _: s["output_bytes"] + 1}, ".*out.jsonl has .* bytes, but 'output_bytes' says"),
    ({"rejects_bytes": lambda s, _: s["rejects_bytes"] - 1}, "'rejects_bytes' .* is not the end of a whole line"),
    ({"counts": DELETE}, "'counts' must map docs, mentions, linked, rejected to integers"),
    ({"counts": {"docs": 2}}, "'counts' must map"),
    ({"counts": lambda s, _: {**s["counts"], "docs": 1000}}, "1000 documents and 1 rejected lines do not fit"),
    ({"counts": lambda s, _: {**s["counts"], "linked": s["counts"]["mentions"] + 1}}, r"\d+ linked mentions out of \d+"),
    ({"fingerprint": None}, "'fingerprint' must be an object"),
    ({"layer_seconds": {"l1": "fast"}}, "'layer_seconds' must map node ids to seconds"),
    ({"done": True}, "'done' is true, but .*in.jsonl goes on after line"),
    ({"done": "yes"}, "'done' must be true or false"),
    ({"input_line": None}, "'input_line' must be an integer"),
]


@pytest.mark.parametrize(("changes", "message"), CASES, ids=[f"{next(iter(c))}-{i}" for i, (c, _) in enumerate(CASES)])
def test_an_edited_checkpoint_is_refused_and_nothing_changes(job, tmp_path, changes, message):
    run_local(job(limit=10))
    ckpt = checkpoint_path(tmp_path / "out.jsonl")
    state = orjson.loads(ckpt.read_bytes())
    edit(ckpt, **{k: v(state, tmp_path) if callable(v) else v for k, v in changes.items()})
    before = files(tmp_path)
    with pytest.raises(InputError, match=f"^{re.escape(str(ckpt))}: {message}.*rerun with --overwrite") as refused:
        run_local(job(resume=True))
    assert "\n" not in str(refused.value)
    assert files(tmp_path) == before


def test_an_unsigned_edit_damaged_json_or_an_old_version_is_refused(job, tmp_path):
    run_local(job(limit=10))
    ckpt = checkpoint_path(tmp_path / "out.jsonl")
    good = ckpt.read_bytes()
    edit(ckpt, sign=False, input_line=3)
    with pytest.raises(InputError, match="its checksum does not match its content"):
        run_local(job(resume=True))
    edit(ckpt, sign=False, checksum=DELETE)
    with pytest.raises(InputError, match="its checksum does not match its content"):
        run_local(job(resume=True))
    ckpt.write_bytes(good[:-20])
    with pytest.raises(InputError, match="not JSON"):
        run_local(job(resume=True))
    ckpt.write_bytes(good)
    edit(ckpt, version=1)
    with pytest.raises(InputError, match="not a glinker checkpoint of version 2"):
        run_local(job(resume=True))


def test_gzip_input_and_output_positions_are_checked(job, tmp_path):
    (tmp_path / "in.jsonl.gz").write_bytes(gzip.compress((tmp_path / "in.jsonl").read_bytes()))
    run_local(job("out.jsonl.gz", "in.jsonl.gz", limit=10))
    ckpt = checkpoint_path(tmp_path / "out.jsonl.gz")
    good = ckpt.read_bytes()
    state = orjson.loads(good)
    for changes, message in [({"output_bytes": state["output_bytes"] - 7}, "'output_bytes' .* whole line"),
                             ({"input_offset": 10**7}, "past the end of"),
                             ({"input_offset": state["input_offset"] + 2}, "not the end of a line")]:
        ckpt.write_bytes(good)
        edit(ckpt, **changes)
        with pytest.raises(InputError, match=message):
            run_local(job("out.jsonl.gz", "in.jsonl.gz", resume=True))
    ckpt.write_bytes(good)
    with open(tmp_path / "out.jsonl.gz", "ab") as handle:  # a batch torn after the last checkpoint
        handle.write(b"\x1f")
    assert run_local(job("out.jsonl.gz", "in.jsonl.gz", resume=True))["done"]
    run_local(job("whole.jsonl.gz", "in.jsonl.gz"))
    assert gzip.decompress((tmp_path / "out.jsonl.gz").read_bytes()) == \
        gzip.decompress((tmp_path / "whole.jsonl.gz").read_bytes())
