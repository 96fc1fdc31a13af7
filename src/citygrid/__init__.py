"""citygrid: grid-based city governance and cross-department data exchange."""

__version__ = "0.1.0"
