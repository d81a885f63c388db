import subprocess
import sys


def test_import_glinker_does_not_load_heavy_libraries():
    code = (
        "import sys, glinker, glinker.cli\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'spacy', 'faiss', 'gliner', 'transformers'})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_names():
    import glinker

    for name in ("ConfigBuilder", "DAGExecutor", "ProcessorFactory", "DAGPipeline", "PipeContext"):
        assert hasattr(glinker, name)
    assert issubclass(glinker.ConfigError, ValueError)
    assert issubclass(glinker.InputError, ValueError)
    assert issubclass(glinker.KnowledgeBaseError, ValueError)
