"""The linking package: one backend table that the config schema agrees with; importing it loads no model library."""

import subprocess
import sys
from typing import get_args

import pytest

from glinker import ConfigError
from glinker.config import L3Config, L4Config
from glinker.linking.backends import BACKENDS, make_scorer


def literal_names(annotation) -> set[str]:
    """The strings of a ``Literal[...]`` annotation, through ``| None``."""
    args = get_args(annotation)
    return {a for a in args if isinstance(a, str)} | {n for a in args for n in literal_names(a)}


def test_every_backend_the_config_accepts_is_in_the_table():
    assert literal_names(L3Config.model_fields["backend"].annotation) == set(BACKENDS)
    assert literal_names(L4Config.model_fields["backend"].annotation) <= set(BACKENDS)


def test_an_unknown_backend_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError, match="cross_encoder"):
        make_scorer("bm25", L3Config(model="m"), "{label}", kb=None)


def test_importing_the_backends_loads_no_model_library():
    code = (
        "import sys, glinker.linking.backends, glinker.ner\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'gliner', 'transformers'})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_retrieval_weight_mixes_the_l2_score_into_a_model_backend(tmp_path):
    import numpy as np

    from glinker.types import Candidate, Mention, MentionCandidates

    from .tiny_models import tiny_cross_encoder

    model = tiny_cross_encoder(tmp_path / "ce")
    text = "Paris is the capital of France."
    group = MentionCandidates(Mention("Paris", 0, 5, "city"), [Candidate("Q90", "Paris", score=1.0),
                                                               Candidate("Q1", "Paris Hilton", score=0.4)])
    plain = make_scorer("cross_encoder", L3Config(model=model), "{label}", kb=None)
    mixed = make_scorer("cross_encoder", L3Config(model=model, retrieval_weight=0.25), "{label}", kb=None)
    ((model_scores,),) = plain.score([text], [[group]])
    ((mixed_scores,),) = mixed.score([text], [[group]])
    np.testing.assert_allclose(mixed_scores, 0.25 * np.array([1.0, 0.4]) + 0.75 * model_scores, rtol=1e-6)
