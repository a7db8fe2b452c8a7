"""Bit-twiddling intrinsics for jitted kernels (callable from jitted code only).

``popcount(x)`` lowers to ``llvm.ctpop`` on the integer's own width, so it compiles to a
single ``popcnt`` for scalars and, inside a loop that LLVM vectorizes, to the AVX2
nibble-lookup sequence (``vpshufb`` + ``vpsadbw``); AVX2 has no vector popcount instruction.
``f32_from_bits``, ``bits_of_f32`` and ``exp_add`` move float32 values to and from their IEEE-754
bit patterns without a trip through memory (the log-code products of :mod:`bitsim.kernels.logfloat`).
"""

from llvmlite import ir
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


@intrinsic
def f32_from_bits(typingctx, x):
    """The float32 whose IEEE-754 bit pattern is the low 32 bits of the integer ``x``."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if x.bitwidth > 32:
            v = builder.trunc(v, ir.IntType(32))
        elif x.bitwidth < 32:
            v = builder.zext(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(x), codegen


@intrinsic
def exp_add(typingctx, bits, delta, flip):
    """``float32 from bits ((bits + delta) XOR flip)`` in 32-bit integer arithmetic (wrapping)."""
    if not all(isinstance(t, types.Integer) for t in (bits, delta, flip)):
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)

        def to32(v, t):
            if t.bitwidth > 32:
                return builder.trunc(v, i32)
            if t.bitwidth < 32:
                return builder.sext(v, i32) if t.signed else builder.zext(v, i32)
            return v

        b, d, f = (to32(v, t) for v, t in zip(args, signature.args))
        return builder.bitcast(builder.xor(builder.add(b, d), f), ir.FloatType())

    return types.float32(bits, delta, flip), codegen


@intrinsic
def bits_of_f32(typingctx, x):
    """The IEEE-754 bit pattern of a float32, as a non-negative int64."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.zext(builder.bitcast(args[0], ir.IntType(32)), ir.IntType(64))

    return types.int64(x), codegen
