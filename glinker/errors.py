"""The exceptions glinker raises. All are ``ValueError``s, so callers of the 0.1.x API keep working."""


class GlinkerError(ValueError):
    """Base class of every error glinker raises on purpose."""


class ConfigError(GlinkerError):
    """A pipeline config is invalid: the message names the node and the key."""


class KnowledgeBaseError(GlinkerError):
    """An entity row, file or index directory is invalid: the message names the file, line and field."""


class InputError(GlinkerError):
    """The input given to ``execute`` (or a bulk job) is invalid: the message names the index and field."""


class ModelNotFoundError(GlinkerError):
    """A model name cannot be resolved offline and the hub is not reachable: the message says what to install."""


class LimitError(GlinkerError):
    """An input exceeds a documented limit (text length, candidates, labels)."""
