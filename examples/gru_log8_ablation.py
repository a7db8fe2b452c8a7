"""Where a Log8 GRU loses its accuracy: code one vector at a time, and try each exponent rounding.

Runs a model from ``bitsim train gru`` over the first ``--chars`` test characters with

* nothing coded (FP32),
* only ``x_t`` coded (the embedding table replaced by the exact values of its log8 codes),
* ``x_t``, ``h_t`` and ``h * r`` coded (bitsim's Log8 column of Table 1),

each with the three exponent roundings of ``bitsim.formats.log.LogRounding``: 'linear' (up iff the
mantissa's top bit is set, bitsim's default), 'log' (up iff ``|x| >= sqrt(2) 2**E``) and 'truncate'.

    python examples/gru_log8_ablation.py runs/gru/best.json --chars 60000
"""

import argparse

import numpy as np

from bitsim.formats import log
from bitsim.formats.log import LogFormat, LogRounding
from bitsim.kernels.gru import run_gru_lm
from bitsim.methods import loggru


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="runs/gru/best.json")
    parser.add_argument("--chars", type=int, default=60_000, help="test characters to run (0: all)")
    parser.add_argument("--streams", type=int, default=64)
    args = parser.parse_args()

    model, _ = loggru.CharGRU.load(args.model)
    _, _, _, test_ids = loggru.shakespeare()
    ids, starts, lengths = loggru.test_streams(test_ids, args.streams, args.chars)
    params = loggru.plain_params(model)
    target = ids[1:]
    base = run_gru_lm(params, ids, starts, lengths)[:-1]
    fp32 = np.mean(base == target)
    print(f"{args.model} ({model.input} input), {len(target):,} positions: FP32 accuracy {fp32:.4f}")
    print(f"{'rounding':10s} {'coded':14s} {'accuracy':>9s} {'drop (points)':>14s} {'agreement':>10s}")
    for rounding in (LogRounding.LINEAR, LogRounding.LOG, LogRounding.TRUNCATE):
        fmt = LogFormat(rounding=rounding)
        x_only = dict(params, E=log.decode(log.encode(params["E"], fmt), fmt))
        runs = {"x_t only": run_gru_lm(x_only, ids, starts, lengths),
                "x_t, h_t, h*r": run_gru_lm(params, ids, starts, lengths, fmt)}
        for what, pred in runs.items():
            acc = np.mean(pred[:-1] == target)
            print(f"{rounding.value:10s} {what:14s} {acc:9.4f} {100 * (fp32 - acc):14.2f} "
                  f"{np.mean(pred[:-1] == base):10.4f}")


if __name__ == "__main__":
    main()
