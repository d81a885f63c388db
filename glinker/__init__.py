"""glinker: fast, batched entity linking with a GLiNKER-compatible pipeline API.

Importing this package is cheap: torch, spaCy, GLiNER and FAISS load only when a layer needs them.
"""

from .builder import ConfigBuilder
from .dag import DAGExecutor, DAGPipeline, PipeContext
from .errors import (
    ConfigError,
    GlinkerError,
    InputError,
    KnowledgeBaseError,
    LimitError,
    ModelNotFoundError,
)
from .factory import ProcessorFactory
from .kb import EntityStore, KnowledgeBase
from .types import Candidate, DatabaseRecord, L0Entity, L0Output, L3Entity, LinkedEntity, Mention

__version__ = "0.1.0"

__all__ = [
    "Candidate",
    "ConfigBuilder",
    "ConfigError",
    "DAGExecutor",
    "DAGPipeline",
    "DatabaseRecord",
    "EntityStore",
    "GlinkerError",
    "InputError",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "L0Entity",
    "L0Output",
    "L3Entity",
    "LimitError",
    "LinkedEntity",
    "Mention",
    "ModelNotFoundError",
    "PipeContext",
    "ProcessorFactory",
    "__version__",
]
