"""The IR's error type."""


class IRError(ValueError):
    """The graph breaks the IR contract (a wrong shape, an out-of-range value, a bad attribute)."""
