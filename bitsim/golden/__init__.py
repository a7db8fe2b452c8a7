"""Golden vectors for hardware verification: export every tensor of a deployed model, compare a DUT's dump."""

from .compare import GoldenError, compare, format_report, passed
from .export import export

__all__ = ["export", "compare", "format_report", "passed", "GoldenError"]
