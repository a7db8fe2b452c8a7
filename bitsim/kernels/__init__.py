"""Fast jitted kernels; each has a slow, obvious twin in :mod:`bitsim.reference`."""

from .xnor import (
    binary_conv2d,
    bitplane_gemm,
    bitplane_gemm_planes,
    conv2d_padding,
    pack_planes,
    ternary_binary_gemm,
    ternary_gemm,
    threshold_pack,
    xnor_gemm,
    xnor_gemv,
)

__all__ = [
    "binary_conv2d",
    "bitplane_gemm",
    "bitplane_gemm_planes",
    "conv2d_padding",
    "pack_planes",
    "ternary_binary_gemm",
    "ternary_gemm",
    "threshold_pack",
    "xnor_gemm",
    "xnor_gemv",
]
