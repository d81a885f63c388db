"""``runtime: onnx``: a plain transformers model (sentence encoder, cross-encoder) run by ONNX Runtime.

The torch model is exported once with ``torch.onnx.export`` (the torch.export-based exporter; the
legacy tracer records transformers 5's attention masks wrongly) and cached like int8 weights
(quantize.py): ``SOURCE/.glinker-quantized/SHA256.OUTPUT.onnx``, keyed by the source's checksum. The
session returns the same output the torch module does, as a torch tensor, so pooling and scoring
run the same code on both runtimes. float32 vectors equal torch's within float noise (2.5e-7 on MiniLM),
so the ``model_id`` stays the same and a kb_dir built with torch is opened with ONNX queries.
``quantize: int8`` with ONNX uses ``onnxruntime.quantization.quantize_dynamic`` on the exported
file; its vectors differ from torch int8's, so its ``model_id`` ends in ``+onnx-int8``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

from ..atomic import replace_file
from ..errors import ConfigError
from .quantize import (
    cache_folder,
    check_quantize,
    id_suffix,
    quantize_loaded,
    source_checksum,
)

RUNTIMES = ("torch", "onnx")
ONNX_MODULES = ("onnxruntime", "onnxscript")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

log = logging.getLogger("glinker.models")


def check_runtime(value: object) -> str:
    """``value`` if it is a known runtime whose libraries are installed, else a ConfigError naming it."""
    if value not in RUNTIMES:
        raise ConfigError(f"unknown runtime {value!r}; expected one of {', '.join(RUNTIMES)}")
    missing = [name for name in ONNX_MODULES if value == "onnx" and importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"runtime 'onnx' needs {' and '.join(missing)}: pip install 'glinker[onnx]'")
    return value


def runtime_loaded(loaded, model, source: Path | None, output: str):
    """The model of ``loaded`` as its ``runtime`` and ``quantize`` options ask: ``model`` itself, its
    torch int8 copy, or an OnnxModel whose calls return ``output`` (``last_hidden_state``, ``logits``)."""
    if check_runtime(getattr(loaded, "runtime", "torch")) == "torch":
        return quantize_loaded(loaded, model, source)
    mode = check_quantize(getattr(loaded, "quantize", "none"))
    if not str(loaded.device).startswith("cpu"):
        raise ConfigError(f"model {loaded.name!r}: runtime 'onnx' runs on the CPU only, not on {loaded.device!r}")
    loaded.model_id += id_suffix(mode, "onnx")
    session = onnx_session(model, loaded.tokenizer, source, output, mode, loaded.workers)
    log.info("model %s runs on ONNX Runtime (%s)", loaded.name, "int8" if mode == "int8" else "float32")
    return OnnxModel(session, model.config, output)


def onnx_session(model, tokenizer, source: Path | None, output: str, mode: str = "none", workers: int = 1):
    """An ONNX Runtime session of ``model``, exported (and quantized) once into the source's cache, for
    ``workers`` batches at once."""
    if source is None:  # a hub download: nothing of ours to key the cache on, export for this process only
        with tempfile.TemporaryDirectory() as folder:
            return _session(_onnx_file(model, tokenizer, output, Path(folder) / "model", mode), workers)
    stem = cache_folder(source) / source_checksum(source)
    return _session(_onnx_file(model, tokenizer, output, stem, mode), workers)


class OnnxModel:
    """An ONNX Runtime session called like the torch module it was exported from: ``model(**batch).OUTPUT``."""

    def __init__(self, session, config, output: str):
        self.session, self.config, self.output = session, config, output
        self.input_names = [i.name for i in session.get_inputs()]

    def to(self, device: str) -> OnnxModel:
        return self

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, **batch) -> SimpleNamespace:
        import torch

        feed = {name: batch[name].cpu().numpy() for name in self.input_names}
        (values,) = self.session.run([self.output], feed)  # thread-safe: two model batches may run at once
        return SimpleNamespace(**{self.output: torch.from_numpy(values)})


def _onnx_file(model, tokenizer, output: str, stem: Path, mode: str) -> Path:
    """``STEM.OUTPUT.onnx`` (float32), or ``STEM.OUTPUT.int8.onnx`` for int8, written unless already there."""
    path = stem.with_name(f"{stem.name}.{output}.onnx")
    if not path.exists():
        replace_file(path, lambda tmp: export_onnx(model, tokenizer, output, tmp))
    if mode == "none":
        return path
    int8_path = path.with_suffix(".int8.onnx")
    if not int8_path.exists():
        replace_file(int8_path, lambda tmp: _quantize_onnx(path, tmp))
    return int8_path


def export_onnx(model, tokenizer, output: str, path: str) -> None:
    """Write ``model`` (returning its ``output``) to ``path``, batch and sequence axes dynamic."""
    import torch

    sample = tokenizer(["a short text", "a somewhat longer text, padded to the first"], padding=True,
                       return_tensors="pt")
    names = [name for name in INPUT_NAMES if name in sample]

    class SingleOutput(torch.nn.Module):
        """``model`` with positional inputs, returning only ``output`` (what the export records)."""

        def __init__(self):
            super().__init__()
            self.model = model.eval()

        def forward(self, *tensors):
            return getattr(self.model(**dict(zip(names, tensors, strict=True))), output)

    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with _quiet():
        program = torch.onnx.export(
            SingleOutput(), tuple(sample[name] for name in names), dynamo=True,
            input_names=names, output_names=[output], dynamic_shapes=[tuple({0: batch, 1: sequence} for _ in names)],
            optimize=True, verbose=False,
        )
        program.save(path)


def _quantize_onnx(source: Path, path: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), path, weight_type=QuantType.QInt8)


@contextlib.contextmanager
def _quiet():
    """No warnings, log lines or progress output from the one-time export and quantization (they
    announce optional packages and preprocessing that these encoders do not need)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _session(path: Path, workers: int):
    """torch's threads shared among the batches that run at once: with two batches on two cores, one
    thread each was 1.26x faster than two each (float32; 1.38x int8, benchmarks/onnx_encoder.py)."""
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads() // workers)
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
