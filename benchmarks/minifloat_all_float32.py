"""Long profile: encode every one of the 2**32 float32 bit patterns to E4M3, E5M2 and E2M1 and compare with ml_dtypes.

Run from the repository root (not part of CI; tens of minutes per format on 2 cores)::

    nice -n 19 python benchmarks/minifloat_all_float32.py [--formats e4m3,e5m2,e2m1] [--chunk 22]

Rule compared: bitsim's ``nearest_even`` with ``overflow='nonfinite'`` where the format has NaN (E4M3,
E5M2) and ``'saturate'`` otherwise (E2M1), which is what ml_dtypes' cast does; NaN inputs are skipped for
E2M1 (ml_dtypes writes -0 there, bitsim refuses NaN). Prints the mismatches per format (expected 0).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bitsim.formats import minifloat as mf  # noqa: E402

ML = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2, "e2m1": ml_dtypes.float4_e2m1fn}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", default="e4m3,e5m2,e2m1")
    parser.add_argument("--chunk", type=int, default=22, help="log2 of the patterns per chunk")
    args = parser.parse_args()
    step = 1 << args.chunk
    for name in args.formats.split(","):
        fmt = mf.parse_minifloat(name)
        overflow = "nonfinite" if fmt.nans else "saturate"
        bad = 0
        for start in tqdm(range(0, 1 << 32, step), desc=name, unit="chunk"):
            x = np.arange(start, start + step, dtype=np.uint64).astype(np.uint32).view(np.float32)
            if not fmt.nans:
                x = x[~np.isnan(x)]
            ours = mf.encode(x, fmt, "nearest_even", overflow)
            with np.errstate(all="ignore"):
                theirs = x.astype(ML[name]).view(np.uint8)
            bad += int(np.count_nonzero(ours != theirs))
        print(f"{name}: {bad} mismatches over all float32 patterns")


if __name__ == "__main__":
    main()
