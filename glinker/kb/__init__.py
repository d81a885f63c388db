"""The knowledge base: entity table, name index, vectors and FAISS indexes, on disk as a kb_dir."""

from .base import KnowledgeBase
from .reader import Reject
from .store import EntityStore, LoadReport

__all__ = ["EntityStore", "KnowledgeBase", "LoadReport", "Reject"]
