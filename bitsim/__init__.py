"""bitsim: a bit-exact NumPy/Numba reference simulator for low-precision neural networks."""

__version__ = "0.1.0"
