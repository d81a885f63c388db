"""Linking algorithms: the backends that score each mention's candidates (dense, GLiNER,
cross-encoder; one table in backends.py), and the decision and consistency rules L3 and L4 apply.

Models are loaded by glinker/models; what to compute with them is decided here.
"""

from .consistency import consistent_rankings
from .decision import decide
from .inputs import context_window

__all__ = ["consistent_rankings", "context_window", "decide"]
