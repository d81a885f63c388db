"""The link threshold of a pipeline: which node decides, what it links at, and a copy at another threshold.

The deciding node is the last one whose output is links (L3, or L4 after it); a mention is linked when
its best candidate's score reaches that node's ``threshold`` and the aggregator's ``min_confidence``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..dag import DAGPipeline
from ..errors import GlinkerError
from ..types import L0Output, L3Output


def deciding_node(pipeline: DAGPipeline) -> str | None:
    """Id of the node that makes the final links (None: the pipeline links nothing)."""
    nodes = [n for n in pipeline.nodes_with_output(L3Output) if hasattr(pipeline.node_configs[n.id], "threshold")]
    return nodes[-1].id if nodes else None


def _aggregator(pipeline: DAGPipeline) -> str | None:
    nodes = pipeline.nodes_with_output(L0Output)
    return nodes[-1].id if nodes else None


def link_threshold(pipeline: DAGPipeline) -> float | None:
    """The score a link needs: the deciding node's threshold or the aggregator's min_confidence, the higher."""
    node, aggregator = deciding_node(pipeline), _aggregator(pipeline)
    if node is None:
        return None
    floor = getattr(pipeline.node_configs[aggregator], "min_confidence", 0.0) if aggregator else 0.0
    return max(pipeline.node_configs[node].threshold, floor)


def keeps_unlinked(pipeline: DAGPipeline) -> bool:
    """Whether the pipeline's records include the mentions it leaves unlinked."""
    aggregator = _aggregator(pipeline)
    return aggregator is None or getattr(pipeline.node_configs[aggregator], "include_unlinked", True)


def with_threshold(pipeline: DAGPipeline, threshold: float) -> DAGPipeline:
    """The same pipeline linking at ``threshold``: the deciding node's threshold set to it, the
    aggregator's min_confidence lowered to it where higher. Unchanged if nothing decides."""
    node, aggregator = deciding_node(pipeline), _aggregator(pipeline)
    if node is None:
        return pipeline
    data = pipeline.to_dict()
    for spec in data["nodes"]:
        config = spec.setdefault("config", {})
        if spec["id"] == node:
            config["threshold"] = threshold
        elif spec["id"] == aggregator and config.get("min_confidence", 0.0) > threshold:
            config["min_confidence"] = threshold
    return DAGPipeline(data)


def write_threshold_config(config: str | Path, threshold_report: dict[str, Any], out: str | Path) -> float:
    """Write ``config`` again, linking at the best-F1 threshold of an evaluation; returns that threshold."""
    best = threshold_report["best"]
    if best is None:
        raise GlinkerError("--write-threshold: no mention was scored, so there is no threshold to choose")
    with_threshold(DAGPipeline.from_yaml(config), best["threshold"]).save(out)
    return best["threshold"]
