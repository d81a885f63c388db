"""The knowledge base: entity table, name index, vectors and FAISS indexes, on disk as a kb_dir."""

from ..errors import Reject
from .base import KnowledgeBase
from .store import EntityStore, LoadReport

__all__ = ["EntityStore", "KnowledgeBase", "LoadReport", "Reject"]
