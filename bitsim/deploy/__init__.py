"""Deployment: compiling trained models into integer form that runs on bitsim's kernels only (``packed``: a
BNN as packed integer stages; ``sparse``: a pruned network as sparse quantized layers), and what a compiled
BNN costs (``costs``). The jobs that train, compile, check and report are in :mod:`bitsim.jobs`."""

from .packed import IntegerModel, check_exact, compile_model

__all__ = ["IntegerModel", "check_exact", "compile_model"]
