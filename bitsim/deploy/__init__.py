"""Deployment: compiling trained models into integer form that runs on bitsim's kernels only."""

from .binary import IntegerModel, check_exact, compile_model

__all__ = ["IntegerModel", "check_exact", "compile_model"]
