"""Bit-twiddling intrinsics for jitted kernels.

``popcount(x)`` lowers to ``llvm.ctpop`` on the integer's own width, so it compiles to a
single ``popcnt`` for scalars and, inside a loop that LLVM vectorizes, to the AVX2
nibble-lookup sequence (``vpshufb`` + ``vpsadbw``); AVX2 has no vector popcount instruction.
"""

from numba import types
from numba.extending import intrinsic


@intrinsic
def popcount(typingctx, x):
    """Number of set bits of an integer, with the same type as ``x`` (callable from jitted code only)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return x(x), codegen
