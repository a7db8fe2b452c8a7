"""Write tests/golden/xnor_gemm.json: a small fixed XNOR-GEMM case with its expected outputs.

Run once from the repository root (``python tests/golden/make_xnor_golden.py``); the JSON is
committed. The words are drawn from a fixed seed and the expected outputs are computed here
with plain Python integers, from the ±1 values, independently of bitsim's kernels:
``out[i][j] = sum_k A[i][k] * B[j][k]``.
"""

import json
import random
from pathlib import Path

N_VALUES = 130  # three words per row, the last one holding 2 values and 62 zero padding bits
ROWS_A, ROWS_B = 3, 2


def random_row(rng):
    return [rng.choice((-1, 1)) for _ in range(N_VALUES)]


def pack_row(values):
    """Element i at bit i % 64 of word i // 64, bit 1 = +1, padding bits 0."""
    words = [0] * -(-len(values) // 64)
    for i, v in enumerate(values):
        if v == 1:
            words[i // 64] |= 1 << (i % 64)
    return [f"{w:016x}" for w in words]


def main():
    rng = random.Random(20240611)
    a = [random_row(rng) for _ in range(ROWS_A)]
    b = [random_row(rng) for _ in range(ROWS_B)]
    case = {
        "n": N_VALUES,
        "a": [pack_row(row) for row in a],
        "b": [pack_row(row) for row in b],
        "expected": [[sum(x * y for x, y in zip(ra, rb)) for rb in b] for ra in a],
        "note": "words are uint64 in hex, bitorder 'little'; expected[i][j] = dot(A[i], B[j]) of the ±1 values",
    }
    path = Path(__file__).with_name("xnor_gemm.json")
    body = ",\n".join(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}" for key, value in case.items())
    path.write_text("{\n" + body + "\n}\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
