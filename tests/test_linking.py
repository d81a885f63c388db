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
