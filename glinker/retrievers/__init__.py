"""L2 retrievers: one class per L2 layer ``type``, all behind :class:`Retriever`.

The names a config may use are in ``glinker.registry.RETRIEVERS``; the ``l2_chain`` layer builds one
retriever per configured layer, searches with each over the whole batch and fuses what they found.
A new retriever is one subclass (in its own module, named by a ``RETRIEVER`` attribute) and one
line in that table.
"""

from .base import Hits, Query, Retriever

__all__ = ["Hits", "Query", "Retriever"]
