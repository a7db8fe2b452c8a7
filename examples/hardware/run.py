"""Verify a Verilog binary dense layer against bitsim, end to end: export -> simulate -> compare.

    python examples/hardware/run.py [--model integer.json] [--rows 8] [--flip-row R --flip-bit B] [--build DIR]

1. takes a deployed bitsim model (or builds a small one with 130 hidden units, so that rows end in
   padding bits), exports golden vectors for ``--rows`` MNIST test images with ``bitsim.golden.export``;
2. finds the first hidden ``XnorDense`` stage and the ``Threshold`` after it, and simulates
   ``binary_dense.v`` on that stage's golden inputs, weights, thresholds and flip bits with Icarus
   Verilog (``iverilog`` / ``vvp``);
3. runs ``bitsim compare`` on the simulator's dump of the accumulators and packed outputs.
   The exit status is compare's: 0 only if every word matches.

``--flip-row/--flip-bit`` make the testbench flip one output bit, to show that compare catches it.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def small_model(hidden=130, seed=5):
    """A 784-130-130-10 BNN with random weights and batch-norm statistics, compiled."""
    from bitsim.deploy import compile_model
    from bitsim.methods import bnn
    from bitsim.nn import BatchNorm

    model = bnn.build_mlp(bnn.BNNConfig(hidden=hidden, layers=2, seed=seed))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            c = layer.n_features
            layer.running_mean[:] = rng.normal(0, 4, c)
            layer.running_var[:] = rng.uniform(1, 40, c)
            layer.gamma.value[:] = rng.normal(0, 1, c)
            layer.beta.value[:] = rng.normal(0, 1, c)
    return compile_model(model, (28, 28))


def simulate(golden, dut, stage, rows, flip=None, build=None):
    """Compile and run the testbench on stage ``stage`` (XnorDense) and ``stage + 1`` (Threshold)."""
    from bitsim.golden import verify

    manifest, _ = verify(golden)  # the testbench reads golden files: they must be undamaged
    tensors = {t["name"]: t for t in manifest["tensors"]}
    n = tensors[f"stage{stage}.weights"]["packing"]["length"]
    words = tensors[f"stage{stage}.weights"]["shape"][1]
    outs = tensors[f"stage{stage}.weights"]["shape"][0]
    out_words = tensors[f"stage{stage + 1}.out"]["shape"][1]
    build = Path(build or dut)
    build.mkdir(parents=True, exist_ok=True)
    dut.mkdir(parents=True, exist_ok=True)

    def q(path):
        return f'"{path}"'

    defines = {
        "X_FILE": q(golden / f"stage{stage - 1}.out.memh"),
        "W_FILE": q(golden / f"stage{stage}.weights.memh"),
        "T_FILE": q(golden / f"stage{stage + 1}.thresholds.memh"),
        "F_FILE": q(golden / f"stage{stage + 1}.flip.memh"),
        "ACC_FILE": q(dut / f"stage{stage}.acc.memh"),
        "OUT_FILE": q(dut / f"stage{stage + 1}.out.memh"),
    }
    if flip is not None:
        defines.update(FLIP_ROW=str(flip[0]), FLIP_BIT=str(flip[1]))
    params = {"N": n, "WORDS": words, "OUTS": outs, "OUT_WORDS": out_words, "ROWS": rows}
    cmd = ["iverilog", "-g2012", "-o", str(build / "sim"), "-s", "tb"]
    cmd += [f"-D{k}={v}" for k, v in defines.items()]
    cmd += [f"-Ptb.{k}={v}" for k, v in params.items()]
    cmd += [str(HERE / "tb_binary_dense.v"), str(HERE / "binary_dense.v")]
    subprocess.run(cmd, check=True)
    subprocess.run(["vvp", "-n", str(build / "sim")], check=True, stdout=subprocess.DEVNULL)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="an integer model .json from bitsim train (default: a small random BNN)")
    parser.add_argument("--rows", type=int, default=8, help="MNIST test images to run (default 8)")
    parser.add_argument("--flip-row", type=int, help="fault injection: flip an output bit of this row")
    parser.add_argument("--flip-bit", type=int, default=0, help="fault injection: the bit to flip")
    parser.add_argument("--build", default="build/hardware",
                        help="working directory (default build/hardware); an existing one must be this script's")
    args = parser.parse_args(argv)

    from bitsim.datasets import load_mnist
    from bitsim.deploy import IntegerModel
    from bitsim.golden import compare, export, format_report, passed
    from bitsim.outputs import is_empty_dir, prepare_run_dir

    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        sys.exit("Icarus Verilog is not installed: apt-get install iverilog")
    compiled = IntegerModel.load(args.model) if args.model else small_model()
    images = load_mnist()["x_test"][: args.rows]
    build = Path(args.build)
    earlier = build.exists() and not is_empty_dir(build)
    prepare_run_dir(build, "bitsim hardware example", ("golden/", "dut/", "sim"), overwrite=earlier)
    golden, dut = build / "golden", build / "dut"
    export(compiled, images, golden, options={"model": args.model or "random 784-130-130-10", "rows": args.rows})
    kinds = [type(s).__name__ for s in compiled.stages]
    stage = next(i for i in range(1, len(kinds) - 1) if kinds[i] == "XnorDense" and kinds[i + 1] == "Threshold")
    flip = (args.flip_row, args.flip_bit) if args.flip_row is not None else None
    simulate(golden, dut, stage, args.rows, flip, build)
    verdicts = compare(golden, dut, [f"stage{stage}.acc", f"stage{stage + 1}.out"])
    print(format_report(verdicts))
    return 0 if passed(verdicts) else 1


if __name__ == "__main__":
    from bitsim.errors import BitsimError

    try:
        sys.exit(main())
    except BitsimError as err:
        sys.exit(f"run.py: error: {err}")
