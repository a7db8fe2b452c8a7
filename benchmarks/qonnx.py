"""QONNX networks, 10,000 MNIST test images in batches of 1000: bitsim's exact level against qonnx's executor
and against onnxruntime on the float32 equivalent graph, all measured in this run.

Run from the repository root::

    python benchmarks/qonnx.py [--quick] [--threads N] [--json FILE] [--model integer.json]

Networks:

* ``tfc 8-bit input``: the TFC-style MLP 784-64-64-64-10 as FINN's streamlining leaves it (bipolar
  weights, one MultiThreshold per layer, a final Mul and Add; ``tests/qonnx_networks.py``,
  ``tfc_streamlined(seed=0)``), random weights and thresholds, the first MatMul on the pixels 0..255;
* ``tfc-w1a1 1-bit input``: the same with the pixels first binarized at 128 by a bipolar MultiThreshold,
  as FINN's TFC-w1a1 (Brevitas bnn_pynq, input bit width 1) is after streamlining
  (``tfc_streamlined(seed=0, binary_input=True)``), so every MatMul has -1/+1 operands;
* ``bnn-1024``: bitsim's BNN 784-1024-1024-1024-10 exported by :mod:`bitsim.interop.qonnx_export`
  (BipolarQuant weights, MultiThreshold, the last batch norm as Sub, Mul, Mul, Add). Its weights are
  random (``bitsim.methods.bnn.build_mlp``, Philox seed 1, not trained) with batch-norm statistics
  calibrated on the first 2,000 MNIST training images, so that the thresholds split the accumulators as a
  trained network's do; ``--model integer.json`` exports and times a trained one instead.

Columns: bitsim = ``bitsim.interop.qonnx.load(path).run(x, semantics="exact")`` (every tensor of the
graph, as integer codes with exact products; the graph declares batch 1000 and the 10,000 images run
in 10 chunks); qonnx = ``qonnx.core.onnx_exec.execute_onnx`` on each batch of 1000 (its default
settings: one onnxruntime session per standard node, datatype sanitizing on); ort f32 = one
onnxruntime session of the float32 equivalent graph (Quant / BipolarQuant on constant weights folded
into float32 initializers, MultiThreshold lowered to GreaterOrEqual, Cast, ReduceSum, Mul, Add) on
each batch of 1000. For the BNN, the last lines also time bitsim's compiled
integer model (``IntegerModel.forward``) on the same images: the kernels the exact level can reach.
Times are the best of the runs (``harness.best_times``, the functions taking turns in blocks of five
calls, each block after an untimed pause in which the other's threads stop spinning: with blocks of two
and no pause, onnxruntime's idle threads made bitsim's two-thread kernels up to 3x slower in some runs, and
bitsim's made onnxruntime up to 1.6x slower; qonnx's executor:
the better of two runs after a one-batch warm-up; ``--quick``: fewer images). Each line also says whether
the outputs are equal bit for bit.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "tests")]

import harness  # noqa: E402  (before numpy: it applies --threads)

# this script's own name would hide the qonnx package: import the rest without benchmarks/ on the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import numpy as np  # noqa: E402

from bitsim.datasets import load_mnist  # noqa: E402
from bitsim.deploy import IntegerModel, compile_model  # noqa: E402
from bitsim.interop.qonnx import load  # noqa: E402
from bitsim.interop.qonnx_export import at_batch, export_integer_model, input_name, output_name  # noqa: E402
from bitsim.methods.bnn import BNNConfig, build_mlp  # noqa: E402

BATCH = 1000
TARGETS = {"qonnx": 20.0, "ort": 2.0}


def random_bnn(images, hidden=1024, layers=3, seed=1):
    """A 784-hidden^layers-10 BNN with random weights and batch norms calibrated on ``images``, compiled."""
    model = build_mlp(BNNConfig(hidden=hidden, layers=layers, seed=seed))
    model.calibrate(images.reshape(len(images), -1).astype(np.float32))
    return compile_model(model, (784,))


def lowered_float_graph(model, batch):
    """The float32 equivalent of a QONNX ModelProto: constant Quant nodes folded, MultiThreshold lowered."""
    import onnx
    from onnx import helper, numpy_helper
    from qonnx.core.onnx_exec import execute_node

    wrapped = at_batch(model, batch)
    inits = {t.name: numpy_helper.to_array(t) for t in wrapped.graph.initializer}
    nodes, count = [], [0]

    def const(value):
        count[0] += 1
        name = f"lowered_c{count[0]}"
        inits[name] = np.asarray(value, np.float32)
        return name

    def tmp():
        count[0] += 1
        return f"lowered_t{count[0]}"

    for node in wrapped.graph.node:
        if node.op_type in ("Quant", "BipolarQuant", "Trunc") and all(i in inits for i in node.input):
            context = {name: inits[name] for name in node.input}
            context[node.output[0]] = None
            execute_node(node, context, wrapped.graph, opset_version=1)
            inits[node.output[0]] = np.asarray(context[node.output[0]], np.float32)
        elif node.op_type == "MultiThreshold":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            t = inits[node.input[1]]
            x, out = node.input[0], node.output[0]
            if t.shape[1] == 1:
                ge = tmp()
                nodes.append(helper.make_node("GreaterOrEqual", [x, const(t.T)], [ge]))
                count_f = tmp()
                nodes.append(helper.make_node("Cast", [ge], [count_f], to=onnx.TensorProto.FLOAT))
            else:
                x3, ge, as_float, count_f = tmp(), tmp(), tmp(), tmp()
                nodes.append(helper.make_node("Unsqueeze", [x, const_i64(inits, count, [-1])], [x3]))
                nodes.append(helper.make_node("GreaterOrEqual", [x3, const(t)], [ge]))
                nodes.append(helper.make_node("Cast", [ge], [as_float], to=onnx.TensorProto.FLOAT))
                nodes.append(helper.make_node("ReduceSum", [as_float, const_i64(inits, count, [-1])], [count_f],
                                              keepdims=0))
            scaled = tmp()
            nodes.append(helper.make_node("Mul", [count_f, const(attrs.get("out_scale", 1.0))], [scaled]))
            nodes.append(helper.make_node("Add", [scaled, const(attrs.get("out_bias", 0.0))], [out]))
        elif node.domain:
            raise ValueError(f"no float lowering of {node.op_type}")
        else:
            nodes.append(node)
    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(nodes, "float32", list(wrapped.graph.input), list(wrapped.graph.output),
                              [numpy_helper.from_array(v, k) for k, v in inits.items() if k in used])
    lowered = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    lowered.ir_version = 8
    return lowered


def const_i64(inits, count, value):
    count[0] += 1
    name = f"lowered_i{count[0]}"
    inits[name] = np.asarray(value, np.int64)
    return name


def bench(name, proto, images, quick, compiled=None):
    """Time the three executions of ``proto`` on ``images`` (and ``compiled``'s integer kernels); one record."""
    import onnxruntime as ort
    from qonnx.core.onnx_exec import execute_onnx

    x = images.reshape(len(images), -1).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onnx"
        path.write_bytes(at_batch(proto, BATCH).model.SerializeToString())
        graph = load(path)
    out_name = output_name(proto)
    q_model = at_batch(proto, BATCH)
    q_in, q_out = input_name(q_model.model), output_name(q_model.model)
    session = ort.InferenceSession(lowered_float_graph(proto, BATCH).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    o_in, o_out = session.get_inputs()[0].name, session.get_outputs()[0].name
    batches = [x[i:i + BATCH] for i in range(0, len(x), BATCH)]
    result = {}

    def run_bitsim():
        result["bitsim"] = graph.run(x, semantics="exact")[graph.outputs[0]]

    def run_ort():
        result["ort"] = np.concatenate([session.run([o_out], {o_in: b})[0] for b in batches])

    def run_integer():
        result["integer"] = np.concatenate([compiled.forward(images[i:i + BATCH])
                                            for i in range(0, len(images), BATCH)])

    def run_qonnx():
        result["qonnx"] = np.concatenate([execute_onnx(q_model, {q_in: b})[q_out] for b in batches])

    before = harness.cpu_busy()
    t0 = time.process_time()
    functions = [run_bitsim, run_ort] + ([run_integer] if compiled is not None else [])
    times, runs = harness.best_times(functions, block=5, min_rounds=2 if quick else 3, max_rounds=3 if quick else 5,
                                     budget=10.0)
    t_bitsim, t_ort = times[:2]
    t_integer = times[2] if compiled is not None else None
    execute_onnx(q_model, {q_in: batches[0]})  # warm-up: the custom-op registry, onnxruntime's first session
    t_qonnx = []
    for _ in range(2):
        started = time.perf_counter()
        run_qonnx()
        t_qonnx.append(time.perf_counter() - started)
    t_qonnx = min(t_qonnx)
    load_other = harness.other_load(before, harness.cpu_busy(), time.process_time() - t0)
    bits = {k: np.ascontiguousarray(v, np.float32).view(np.int32) for k, v in result.items()}
    differ = bits["bitsim"] != bits["qonnx"]
    return dict(network=name, images=len(x), batch=BATCH, bitsim_seconds=t_bitsim, qonnx_seconds=t_qonnx,
                ort_seconds=t_ort, qonnx_ratio=t_qonnx / t_bitsim, ort_ratio=t_ort / t_bitsim, runs=runs,
                bitsim_equals_qonnx=bool(np.array_equal(bits["bitsim"], bits["qonnx"])),
                bitsim_values_differing=int(np.count_nonzero(differ)), values=int(differ.size),
                bitsim_max_ulps=int(np.abs(bits["bitsim"].astype(np.int64) - bits["qonnx"]).max()),
                bitsim_same_predictions=bool(np.array_equal(result["bitsim"].argmax(1), result["qonnx"].argmax(1))),
                ort_equals_qonnx=bool(np.array_equal(bits["ort"], bits["qonnx"])), output=out_name,
                integer_seconds=t_integer,
                integer_equals_qonnx=bool(np.array_equal(bits["integer"], bits["qonnx"])) if compiled else None,
                other_load=load_other)


def split_model_option(argv):
    """``(path of --model or None, the other arguments)``: the option the shared harness parser does not know."""
    argv = list(argv)
    if "--model" not in argv:
        return None, argv
    i = argv.index("--model")
    if i + 1 >= len(argv):
        raise SystemExit("--model needs the path of an integer.json")
    return argv[i + 1], argv[:i] + argv[i + 2:]


def main(argv=None):
    model_path, rest = split_model_option(sys.argv[1:] if argv is None else argv)
    args = harness.parse_args(__doc__, quick="2,000 images instead of 10,000", argv=rest)
    from qonnx_networks import tfc_streamlined

    data = load_mnist()
    images = data["x_test"][:2000 if args.quick else 10_000]
    if model_path:
        compiled, bnn_name = IntegerModel.load(model_path), f"bnn {model_path}"
    else:
        compiled, bnn_name = random_bnn(data["x_train"][:2000]), "bnn-1024 (random)"
    networks = [("tfc 8-bit input", tfc_streamlined(seed=0)),
                ("tfc-w1a1 1-bit input", tfc_streamlined(seed=0, binary_input=True)),
                (bnn_name, export_integer_model(compiled))]
    records = []
    for name, proto in networks:
        if args.only and args.only not in name:
            continue
        records.append(bench(name, proto, images, args.quick, compiled if name == bnn_name else None))
    head = (f"{'network':<22} {'images':>7} {'bitsim exact':>13} {'qonnx exec':>12} {'ort f32':>11} "
            f"{'x qonnx':>8} {'x ort':>7}  equal (bitsim=qonnx, ort=qonnx)")
    cpu = harness.cpu_name()
    print(head)
    print("-" * len(head))
    for r in records:
        print(f"{r['network']:<22} {r['images']:>7,} {harness.fmt_time(r['bitsim_seconds']):>13} "
              f"{harness.fmt_time(r['qonnx_seconds']):>12} {harness.fmt_time(r['ort_seconds']):>11} "
              f"{r['qonnx_ratio']:>7.1f}x {r['ort_ratio']:>6.2f}x  {r['bitsim_equals_qonnx']}, "
              f"{r['ort_equals_qonnx']}")
    print(f"batch {BATCH}; targets: x qonnx >= {TARGETS['qonnx']:g}, x ort >= {TARGETS['ort']:g} "
          f"(x = that time / bitsim's time); threads: numba {harness.numba.get_num_threads()}; "
          f"CPU: {cpu}")
    for r in records:
        if not r["bitsim_equals_qonnx"]:
            print(f"{r['network']}: the exact level's outputs differ from qonnx's in "
                  f"{r['bitsim_values_differing']:,} of "
                  f"{r['values']:,} values, by at most {r['bitsim_max_ulps']} float32 steps (it rounds the float batch "
                  f"norm's exact value once, qonnx rounds each float32 op); same predictions: "
                  f"{r['bitsim_same_predictions']}")
    loads = [r["other_load"] for r in records if r["other_load"] is not None]
    for r in records:
        if r["integer_seconds"] is not None:
            print(f"{r['network']}: bitsim's compiled integer model (IntegerModel.forward: u8 x ±1 GEMM, "
                  "XNOR-popcount, "
                  f"packed thresholds) {harness.fmt_time(r['integer_seconds']).strip()}, "
                  f"{r['qonnx_seconds'] / r['integer_seconds']:.1f}x qonnx, "
                  f"{r['ort_seconds'] / r['integer_seconds']:.2f}x "
                  f"ort f32, equal to qonnx: {r['integer_equals_qonnx']}")
    if loads:
        print(f"other processes used {100 * max(loads):.0f}% of the machine's CPU time during the runs")
    if args.json:
        Path(args.json).write_text(json.dumps([dict(r, cpu=cpu) for r in records], indent=1) + "\n")
    return records


if __name__ == "__main__":
    main()
