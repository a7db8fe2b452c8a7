"""Interchange with other tools' model files: QONNX import, run at two levels, checks (:mod:`bitsim.interop.qonnx`).

Importing this package imports nothing of the ``onnx`` extra; :func:`bitsim.interop.qonnx.load` does.
"""
