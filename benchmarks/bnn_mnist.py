"""Speed and memory of a deployed BNN against the float32 forward of the same network, in one run.

    python benchmarks/bnn_mnist.py [--model runs/bnn] [--hidden 1024 --layers 3] [--repeats 5] [--json FILE]

Inference: the 10,000 MNIST test images in batches of 1,000, three ways, each the best of ``--repeats``
passes after a warm-up:

* **integer**: the compiled :class:`bitsim.deploy.IntegerModel` (first layer: uint8 pixels times ±1
  weights on the exact ``vpmaddubsw`` kernel; XNOR-popcount hidden layers; integer thresholds),
  bitsim's kernels only, with its time per stage;
* **numpy float32**: the same network as plain NumPy float32, with the ±1 weights binarized *once*
  beforehand (so the baseline does no per-call binarization), batch norm in inference form and sign;
* **torch float32** (if PyTorch is installed): the same network in ``torch`` on the CPU.

All three must predict the same classes (checked). Training: the time of ``--train-batches`` training
steps (batch 100) of bitsim's float engine and of the same BNN written in PyTorch (straight-through
sign, Adam, latent weights clipped to [-1, 1], dropout, batch norm), scaled to a 50,000-image epoch.

With ``--model DIR`` (a ``bitsim train bnn`` output directory) the trained weights are used; otherwise a
network of ``--hidden``/``--layers`` with random weights and batch-norm statistics (speed does not depend
on the values).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba  # noqa: E402

from bitsim.datasets import load_mnist  # noqa: E402
from bitsim.deploy import IntegerModel, compile_model  # noqa: E402
from bitsim.formats import binary  # noqa: E402
from bitsim.deploy import costs as job  # noqa: E402
from bitsim.methods import bnn  # noqa: E402
from bitsim.nn import BatchNorm, BinaryDense, Sign, SquaredHinge  # noqa: E402
from bitsim.nn.blas import one_blas_thread  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a bitsim train bnn output directory (best.json and integer.json)")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-batches", type=int, default=50, help="training steps timed (0: skip training)")
    parser.add_argument("--json", metavar="FILE")
    return parser.parse_args(argv)


def random_model(hidden, layers, seed=1):
    model = bnn.build_mlp(bnn.BNNConfig(hidden=hidden, layers=layers, seed=seed))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            c = layer.n_features
            layer.running_mean[:] = rng.normal(0, 20, c)
            layer.running_var[:] = rng.uniform(100, 1000, c)
            layer.gamma.value[:] = rng.normal(0, 1, c)
            layer.beta.value[:] = rng.normal(0, 0.1, c)
    return model


def torch_modules(model):
    """The same network as a ``torch.nn.Sequential`` in evaluation mode, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None

    class SignAct(torch.nn.Module):
        def forward(self, x):
            return torch.where(x >= 0, 1.0, -1.0)

    mods = []
    for layer in model.layers:
        if isinstance(layer, BinaryDense):
            lin = torch.nn.Linear(layer.n_in, layer.n_out, bias=False)
            lin.weight.data = torch.from_numpy(binary.binarize(layer.W.value).astype(np.float32))
            mods.append(lin)
        elif isinstance(layer, BatchNorm):
            bn_t = torch.nn.BatchNorm1d(layer.n_features, eps=layer.eps)
            bn_t.running_mean.data = torch.from_numpy(layer.running_mean.copy())
            bn_t.running_var.data = torch.from_numpy(layer.running_var.copy())
            bn_t.weight.data = torch.from_numpy(layer.gamma.value.copy())
            bn_t.bias.data = torch.from_numpy(layer.beta.value.copy())
            mods.append(bn_t)
        elif isinstance(layer, Sign):
            mods.append(SignAct())
    net = torch.nn.Sequential(torch.nn.Flatten(), *mods).eval()

    def forward(x):
        with torch.no_grad():
            return net(torch.from_numpy(x.astype(np.float32))).numpy()

    return forward


def torch_training_step(hidden, layers, batch=100):
    """One BNN training step in PyTorch (the same architecture and rules as bitsim's), or None."""
    try:
        import torch
    except ImportError:
        return None

    class SignSTE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.where(x >= 0, 1.0, -1.0)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (x.abs() <= 1)

    class WeightSign(torch.autograd.Function):
        @staticmethod
        def forward(ctx, w):
            return torch.where(w >= 0, 1.0, -1.0)

        @staticmethod
        def backward(ctx, g):
            return g

    class BinaryLinear(torch.nn.Linear):
        def forward(self, x):
            return torch.nn.functional.linear(x, WeightSign.apply(self.weight))

    class Act(torch.nn.Module):
        def forward(self, x):
            return SignSTE.apply(x)

    torch.manual_seed(0)
    cfg = bnn.BNNConfig(hidden=hidden, layers=layers)  # the dropout rates of bitsim's step
    widths = [784] + [hidden] * layers
    mods = [torch.nn.Flatten(), torch.nn.Dropout(cfg.dropout_in)]
    for a, b in zip(widths[:-1], widths[1:]):
        mods += [BinaryLinear(a, b, bias=False), torch.nn.BatchNorm1d(b, eps=1e-4, momentum=0.1), Act(),
                 torch.nn.Dropout(cfg.dropout_hidden)]
    mods += [BinaryLinear(widths[-1], 10, bias=False), torch.nn.BatchNorm1d(10, eps=1e-4)]
    net = torch.nn.Sequential(*mods).train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    data = load_mnist()
    x = torch.from_numpy(data["x_train"][:batch].astype(np.float32))
    y = torch.from_numpy(data["y_train"][:batch].astype(np.int64))
    target = -torch.ones(batch, 10)
    target[torch.arange(batch), y] = 1

    def step():
        opt.zero_grad()
        out = net(x)
        loss = torch.clamp(1 - target * out, min=0).pow(2).sum(1).mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for m in net:
                if isinstance(m, BinaryLinear):
                    m.weight.clamp_(-1, 1)

    return step


def bitsim_training_step(hidden, layers, batch=100):
    from bitsim.nn import Adam

    model = bnn.build_mlp(bnn.BNNConfig(hidden=hidden, layers=layers))
    opt = Adam(model.params(), lr=3e-3)
    loss = SquaredHinge()
    data = load_mnist()
    x, y = data["x_train"][:batch], data["y_train"][:batch]

    @one_blas_thread  # as in bitsim.methods.bnn.train: the same bits on every thread count
    def step():
        scores = model.forward(x, training=True)
        _, grad = loss(scores, y)
        model.backward(grad)
        opt.step()

    return step


def stage_times(compiled, x, batch_size, repeats):
    """Seconds per stage of the integer model over ``x`` in batches (best of ``repeats`` per stage)."""
    compiled.forward(x[:batch_size])
    best = [float("inf")] * len(compiled.stages)
    for _ in range(repeats):
        spent = [0.0] * len(compiled.stages)
        for i in range(0, len(x), batch_size):
            h = x[i:i + batch_size]
            for j, stage in enumerate(compiled.stages):
                t0 = time.perf_counter()
                h = stage.run(h)
                spent[j] += time.perf_counter() - t0
        best = [min(b, s) for b, s in zip(best, spent)]
    return best


def step_time(step, n):
    step()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def main(argv=None):
    args = parse_args(argv)
    if args.model:
        model, meta = bnn.load_float_model(Path(args.model) / "best")
        compiled = IntegerModel.load(Path(args.model) / "integer")
        hidden, layers = meta["config"]["hidden"], meta["config"]["layers"]
        source = f"trained model {args.model}"
    else:
        hidden, layers = args.hidden, args.layers
        model = random_model(hidden, layers)
        compiled = compile_model(model, (28, 28))
        source = "random weights"
    x = load_mnist()["x_test"]
    print(f"BNN 784-{'-'.join([str(hidden)] * layers)}-10 ({source}); 10,000 MNIST test images, batch 1000; "
          f"best of {args.repeats}; numpy {np.__version__}, numba {numba.__version__}, {numba.get_num_threads()} "
          f"numba thread(s), {os.cpu_count()} cores")
    forward_np = bnn.float_forward(model)
    forward_torch = torch_modules(model)
    predictions = {"integer": compiled.predict(x), "numpy float32": np.argmax(forward_np(x), 1)}
    times = {"integer": bnn.time_forward(compiled.forward, x, 1000, args.repeats),
             "numpy float32": bnn.time_forward(forward_np, x, 1000, args.repeats)}
    if forward_torch is not None:
        predictions["torch float32"] = np.argmax(forward_torch(x), 1)
        times["torch float32"] = bnn.time_forward(forward_torch, x, 1000, args.repeats)
    agree = {k: int(np.sum(v != predictions["integer"])) for k, v in predictions.items()}
    base = times["numpy float32"]
    print(f"\n{'inference':16s} {'seconds':>9s} {'images/s':>10s} {'vs numpy f32':>13s} {'differing predictions':>22s}")
    for name, t in times.items():
        print(f"{name:16s} {t:9.3f} {len(x) / t:10,.0f} {base / t:12.2f}x {agree[name]:22d}")
    per_stage = stage_times(compiled, x, 1000, args.repeats)
    print("\ninteger model by stage (seconds for the 10,000 images):")
    for stage, t in zip(compiled.stages, per_stage):
        gemm = f", gemm={stage.gemm}" if hasattr(stage, "gemm") else ""
        print(f"  {type(stage).__name__ + gemm:28s} {t:8.4f}")
    memory = job.weight_memory(compiled)
    print(f"\nweight memory: {memory['packed_bytes']:,} bytes packed vs {memory['float32_bytes']:,} float32 "
          f"(1/{1 / memory['ratio']:.2f})")
    unpacked = sum(s._w8.nbytes for s in compiled.stages if getattr(s, "_w8", None) is not None)
    if unpacked:
        print(f"  at run time the u8 first layer also holds its weights unpacked to int8: {unpacked:,} bytes")
    record = {"network": f"784-{hidden}x{layers}-10", "source": source, "inference_seconds": times,
              "speedup_vs_numpy": {k: base / t for k, t in times.items()}, "differing_predictions": agree,
              "stage_seconds": {f"{i} {type(st).__name__}": t for i, (st, t) in enumerate(zip(compiled.stages, per_stage))},
              "memory": memory, "unpacked_first_layer_bytes": unpacked}
    if args.train_batches:
        steps = {"bitsim": step_time(bitsim_training_step(hidden, layers), args.train_batches)}
        torch_step = torch_training_step(hidden, layers)
        if torch_step is not None:
            steps["torch"] = step_time(torch_step, args.train_batches)
        print(f"\n{'training':16s} {'s/step':>9s} {'s/epoch (500 steps)':>20s}")
        for name, t in steps.items():
            print(f"{name:16s} {t:9.4f} {500 * t:20.1f}")
        if "torch" in steps:
            print(f"bitsim / torch epoch time: {steps['bitsim'] / steps['torch']:.2f}x")
        record["train_seconds_per_step"] = steps
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0 if all(v == 0 for v in agree.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
