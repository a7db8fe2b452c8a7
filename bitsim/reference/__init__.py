"""Slow, obvious implementations of every kernel and quantizer, in float64 and Python ints.

The tests compare bitsim's fast kernels against these exactly; users can call them too.
"""
