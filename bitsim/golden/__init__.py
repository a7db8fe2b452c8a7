"""Golden vectors for hardware verification: export every tensor of a deployed model, compare a DUT's dump."""

from ..errors import GoldenError
from .compare import compare, format_report, passed
from .export import export
from .manifest import load_manifest, verify

__all__ = ["export", "compare", "format_report", "passed", "verify", "load_manifest", "GoldenError"]
