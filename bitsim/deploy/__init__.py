"""Deployment: compiling trained models into integer form that runs on bitsim's kernels only (``binary``,
``sparse``), and the jobs that train a method's model, compile or export it, check it and report (``bnn``,
``surgery``)."""

from .binary import IntegerModel, check_exact, compile_model

__all__ = ["IntegerModel", "check_exact", "compile_model"]
