"""What a compiled :class:`~bitsim.deploy.packed.IntegerModel` costs, layer by layer: parameters, stored
bytes against float32, and the popcounts or integer additions that replace the float network's MACs."""

import numpy as np


def summary_rows(compiled):
    """Per stage with weights: parameters, stored bytes against float32, MACs and what replaces them.

    Counts are per input example. An XNOR layer does one popcount of a 64-bit word per 64 MACs.
    The 8-bit first layer either adds or subtracts each pixel (``gemm='u8'``: a ±1 weight makes
    every MAC an integer addition) or does ``bits`` popcounts per word (``gemm='bitplane'``).
    Thresholds are one int32 and one flip bit per channel.

    Parameters
    ----------
    compiled : IntegerModel

    Returns
    -------
    list of dict
        ``layer`` (a label), ``params``, ``bytes``, ``float32_bytes``, ``macs``, ``popcounts``, ``adds``.
    """
    rows = []
    for stage in compiled.stages:
        if hasattr(stage, "w"):
            n, outputs, words = _reduction(stage), int(stage.w.shape[0]), int(stage.w.shape[-1])
            where = " per position" if stage.w.ndim == 4 or hasattr(stage, "kernel") else ""
            adds = n * outputs if getattr(stage, "gemm", None) == "u8" and stage.bits == 8 else 0
            popcounts = 0 if adds else outputs * words * getattr(stage, "bits", 1)
            rows.append({"layer": f"{type(stage).__name__} {n}->{outputs}{where}", "params": n * outputs,
                         "bytes": int(stage.w.nbytes), "float32_bytes": 4 * n * outputs,
                         "macs": n * outputs, "popcounts": popcounts, "adds": adds})
        elif type(stage).__name__ == "Threshold":
            c = int(stage.thresholds.size)
            rows.append({"layer": f"Threshold {c} channels", "params": c, "bytes": 4 * c + -(-c // 8),
                         "float32_bytes": 16 * c, "macs": 0, "popcounts": 0, "adds": 0})
    return rows


def _reduction(stage):
    if hasattr(stage, "n"):
        return stage.n
    return int(np.prod(stage.w.shape[1:-1])) * stage.c


def weight_memory(compiled):
    """Packed weight bytes and the float32 bytes of the same weights, and their ratio.

    Parameters
    ----------
    compiled : IntegerModel

    Returns
    -------
    dict
        ``packed_bytes``, ``float32_bytes``, ``ratio``.
    """
    rows = [r for r in summary_rows(compiled) if not r["layer"].startswith("Threshold")]
    packed, full = sum(r["bytes"] for r in rows), sum(r["float32_bytes"] for r in rows)
    return {"packed_bytes": packed, "float32_bytes": full, "ratio": packed / full}


__all__ = ["summary_rows", "weight_memory"]
