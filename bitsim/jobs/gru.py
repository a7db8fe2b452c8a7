"""The log-quantized GRU job (:mod:`bitsim.methods.loggru`): ``bitsim train gru`` trains the float32 model
(:data:`TRAIN`); ``bitsim gru table`` converts it to Log8 / Fix16 / Fix8 and prints Table 1 beside the
paper's (:data:`TABLE`, in the group :data:`GRU`)."""

import json
import math
import sys
import time
from pathlib import Path

from ..datasets import char_vocab, load_shakespeare
from ..errors import InputError, MissingFileError
from ..methods.loggru import INPUTS, MODES, PAPER, CharGRU, GRUConfig, evaluate, shakespeare, table, train
from ..nn.gru import RESET_FORMS
from .arguments import Command, Group, add_run_arguments, config_options, nonnegative_int, positive_int
from .runs import open_run, save_json, save_plot


def format_table(rep, model_name=""):
    """Table 1 beside the paper's, then the coded-weight rows, the sweep and what each number measures.

    Parameters
    ----------
    rep : dict
        What :func:`~bitsim.methods.loggru.table` returns.
    model_name : str
        Named in the title.

    Returns
    -------
    str
    """
    by = {(r["mode"], r["weights"]): r for r in rep["rows"]}
    head = f"{'':36s}" + "".join(f"{m:>11s}" for m in MODES)

    def line(label, values, fmt):
        return f"{label:36s}" + "".join(f"{fmt(v):>11s}" if v is not None else f"{'-':>11s}" for v in values)

    num = lambda d: (lambda v: f"{v:.{d}f}")  # noqa: E731
    fw = [by[(m, "float32")] for m in MODES]
    cw = [by.get((m, "coded")) for m in MODES]
    lines = [f"Table 1: the paper (Park and Chung) beside bitsim{': ' + model_name if model_name else ''}",
             f"test split: {rep['positions']:,} next-character predictions in {rep['streams']} streams; "
             "hidden state " + ("stored coded" if rep.get("state", "coded") == "coded"
                                 else "float32, coded where a product reads it"),
             "", head,
             line("paper  mean accuracy (undefined)", [PAPER[m]["accuracy"] for m in MODES], num(3)),
             line("paper  run time (ms)", [PAPER[m]["ms"] for m in MODES], num(3)),
             line("paper  run time ratio", [PAPER[m]["time_ratio"] for m in MODES], num(3)),
             line("paper  memory (KB)", [PAPER[m]["kb"] for m in MODES], num(3)),
             line("paper  memory ratio", [PAPER[m]["memory_ratio"] for m in MODES], num(3)),
             "", "bitsim, float32 weights (the paper's setting):",
             line("  next-character accuracy", [r["accuracy"] for r in fw], num(4)),
             line("  accuracy drop vs FP32 (points)", [100 * (fw[0]["accuracy"] - r["accuracy"]) for r in fw], num(2)),
             line("  agreement with FP32", [r["agreement"] for r in fw], num(4)),
             line("  run time (ms, all positions)", [1000 * r["seconds"] for r in fw], num(1)),
             line("  run time ratio", [r["time_ratio"] for r in fw], num(3)),
             line("  memory (bytes), bitsim", [r["memory"]["total"] for r in fw], lambda v: f"{v:,d}"),
             line("  memory ratio, bitsim", [r["memory_ratio"] for r in fw], num(3)),
             line("  memory (bytes), paper's (x_t, h_t)", [r["memory"]["paper"] for r in fw], lambda v: f"{v:,d}"),
             line("  memory ratio, paper's", [r["paper_memory_ratio"] for r in fw], num(3)),
             "", "bitsim, coded weights (each mode's own code for every parameter):",
             line("  next-character accuracy", [r["accuracy"] if r else None for r in cw], num(4)),
             line("  accuracy drop vs FP32 (points)", [100 * (fw[0]["accuracy"] - r["accuracy"]) if r else None
                                                      for r in cw], num(2)),
             line("  agreement with FP32", [r["agreement"] if r else None for r in cw], num(4)),
             line("  run time (ms, all positions)", [1000 * r["seconds"] if r else None for r in cw], num(1)),
             line("  run time ratio", [r["time_ratio"] if r else None for r in cw], num(3)),
             line("  memory (bytes), bitsim", [r["memory"]["total"] if r else None for r in cw], lambda v: f"{v:,d}"),
             line("  memory ratio, bitsim", [r["memory_ratio"] if r else None for r in cw], num(3)),
             ""]
    npy = rep["numpy"]
    lines.append(f"float32 NumPy model (training code, batched streams): accuracy {npy['accuracy']:.4f}, "
                 f"agreement with the FP32 kernel {npy['agreement']:.4f}, {1000 * npy['seconds']:.1f} ms, "
                 f"cross-entropy {npy['loss'] / math.log(2):.3f} bits/char")
    for r in fw[1:] + [r for r in cw if r]:
        c = r["counts"]
        names = ", ".join(f"{k} {v}" for k, v in r["formats"].items())
        lines.append(f"{r['mode']:5s} {r['weights']:7s} formats {names}; saturated {c['saturated']:,}, "
                     f"flushed {c['flushed']:,}")
    lines += ["", "accuracy: next-character accuracy on the test split (the arg-max of the scores equals the next "
              "character);",
              "agreement: fraction of positions where the mode predicts the same character as the FP32 kernel;",
              "run time: best wall time of the repeats over all positions, modes interleaved; ratio to FP32 "
              "float32-weights.",
              "  FP32/Log8/Fix16/Fix8 with float32 weights and Log8 with coded weights run the same jitted step loop "
              "(one stream per",
              "  thread); Fix16/Fix8 with coded weights run a jitted step loop of the same structure with exact int64 "
              "sums;",
              "memory, bitsim: bytes of every parameter and one stream's x_t and h_t as stored (embedding as x codes, "
              "one-hot: none);",
              "memory, paper's: bytes of x_t and h_t at the code's width, the only reading found that gives the "
              "paper's Fix16/Fix8",
              "  ratios; the paper does not state its accounting (its Log8 0.683 fits no single width)."]
    if rep.get("sweep"):
        lines += ["", "accuracy by code width (float32 weights):",
                  f"{'code':10s} {'accuracy':>9s} {'agreement':>10s}  formats"]
        for r in rep["sweep"]:
            name = f"{'log' if r['kind'] == 'log' else 'fix'}{r['bits']}"
            lines.append(f"{name:10s} {r['accuracy']:9.4f} {r['agreement']:10.4f}  h {r['h']}, x {r['x']}")
    return "\n".join(lines)


def plot_sweep(rep, path):
    """Write a PNG of accuracy against code width (needs matplotlib: the ``plot`` extra).

    Parameters
    ----------
    rep : dict
        What :func:`~bitsim.methods.loggru.table` returns, with its ``sweep``.
    path : str or Path

    Returns
    -------
    Path or None
        The path written, or None without matplotlib.
    """
    def draw(ax):
        fp32 = next(r for r in rep["rows"] if r["mode"] == "FP32")["accuracy"]
        for kind, label, marker in (("log", "log code (sign + exponent)", "o"), ("fixed", "fixed point", "s")):
            pts = [(r["bits"], r["accuracy"]) for r in rep["sweep"] if r["kind"] == kind]
            line = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=label)[0]
            widest = max((r for r in rep["sweep"] if r["kind"] == kind), key=lambda r: r["bits"])
            if kind == "log" and widest["bits"] == 8 and widest["saturated"] == 0 and widest["flushed"] == 0:
                # log8 codes every value without an event, so a wider exponent field gives the same codes
                ax.plot([8, 16], [widest["accuracy"]] * 2, color=line.get_color(), linestyle=":",
                        label="log, 9-16 bits: the log8 codes (no value leaves log8's range)")
        ax.axhline(fp32, color="grey", linestyle="--", label=f"FP32 {fp32:.4f}")
        ax.set_xlabel("bits per coded value (x_t, h_t)")
        ax.set_ylabel("next-character accuracy (test)")
        ax.set_xticks(range(3, 17))
        ax.set_title("GRU on Shakespeare: accuracy against code width (bitsim)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")

    return save_plot(path, draw, figsize=(6.4, 4))


def json_ready(rep):
    """``rep`` with NumPy scalars as plain numbers (anything else JSON cannot hold as its string), for json.dumps.

    Parameters
    ----------
    rep : dict

    Returns
    -------
    dict
    """
    return json.loads(json.dumps(rep, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


# bitsim gru table

def _add_table_arguments(parser):
    parser.add_argument("model", nargs="?", default="runs/gru/best.json",
                        help="a model .json from bitsim train gru (default runs/gru/best.json, where "
                             "`bitsim train gru` puts it)")
    parser.add_argument("--streams", type=int, default=64, help="independent streams over the test split (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode; the best is reported (default 3)")
    parser.add_argument("--chars", type=int, default=0, help="use only the first N test characters (default all)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the accuracy-by-bit-width sweep and plot")
    parser.add_argument("--state", choices=["coded", "float32"], default="coded",
                        help="coded (default): h_t is stored coded; float32: h_t stays float32 for the element-wise "
                             "operations and is coded where a matrix product reads it")
    parser.add_argument("--out", help="directory for table.json and bits.png (default: the model's directory)")
    parser.add_argument("--plot", help="path of the accuracy-by-bit-width PNG (default OUT/bits.png)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _run_table(args):
    """Print Table 1 beside the paper's; write the JSON and the plot."""
    if not Path(args.model).with_suffix(".json").exists():
        raise MissingFileError(f"no trained model at {args.model}; train one first with `bitsim train gru --out "
                                f"{Path(args.model).parent}` (about 15 minutes on 2 cores), or name the model's .json")
    model, meta = CharGRU.load(args.model)
    text = load_shakespeare()
    vocab = char_vocab(text)
    if "vocab" in meta and meta["vocab"] != "".join(vocab):
        raise InputError(f"{args.model} was trained on another vocabulary; retrain it with bitsim train gru")
    _, _, _, test_ids = shakespeare(text)
    log = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    rep = table(model, test_ids, args.streams, args.repeats, args.chars, not args.no_sweep, log, args.state)
    rep["model"] = str(args.model)
    print(format_table(rep, str(args.model)))
    out = Path(args.out) if args.out else Path(args.model).resolve().parent
    save_json(out / "table.json", json_ready(rep))
    saved = [str(out / "table.json")]
    if rep.get("sweep"):
        plot = plot_sweep(rep, Path(args.plot) if args.plot else out / "bits.png")
        saved.append(str(plot) if plot else "no plot: matplotlib is missing (pip install 'bitsim[plot]')")
    print(f"\nsaved           {', '.join(saved)}")


TABLE = Command(help="Table 1 beside the paper's: accuracy, run time, memory; the bit-width plot",
                description="Run the trained float32 model converted to Log8, Fix16 and Fix8 (float32 and coded "
                            "weights) over the test split and print Table 1 beside the paper's.",
                add_arguments=_add_table_arguments, run=_run_table)

GRU = Group(help="the log-quantized GRU: Table 1 beside the paper's",
            description="Convert a trained character-level GRU to Log8 / Fix16 / Fix8 and report.",
            dest="action", metavar="ACTION", commands={"table": TABLE})


# bitsim train gru

def _add_train_arguments(parser):
    """The defaults are the reproduction of docs/gru.md."""
    d = GRUConfig()
    parser.add_argument("--dataset", choices=["shakespeare"], default="shakespeare")
    parser.add_argument("--input", choices=INPUTS, default=d.input,
                        help="a learned embedding of the characters (default) or their one-hot vectors, which "
                             "every code of x_t holds exactly")
    parser.add_argument("--embed", type=positive_int, default=d.embed,
                        help=f"embedding width (default {d.embed}; not used with --input onehot)")
    parser.add_argument("--hidden", type=positive_int, default=d.hidden, help=f"GRU units (default {d.hidden})")
    parser.add_argument("--reset", choices=RESET_FORMS, default=d.reset,
                        help="reset gate before the product (the paper's form, default) or after it (PyTorch's)")
    parser.add_argument("--epochs", type=positive_int, default=d.epochs)
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="contiguous streams per update")
    parser.add_argument("--seq-len", type=positive_int, default=d.seq_len,
                        help="characters per update (truncated BPTT)")
    parser.add_argument("--lr-start", type=float, default=d.lr_start)
    parser.add_argument("--lr-end", type=float, default=d.lr_end)
    parser.add_argument("--clip", type=float, default=d.clip, help="global gradient-norm limit")
    parser.add_argument("--train-chars", type=nonnegative_int, default=d.train_chars,
                        help="use only the first N training characters (0: all)")
    parser.add_argument("--seed", type=int, default=d.seed)
    add_run_arguments(parser, "bitsim train gru", "runs/gru", "checkpoints, model, history",
                      overwrite_help="replace an earlier `bitsim train gru` run in OUT, with the table and plot "
                                     "`bitsim gru table` wrote there (only those files are deleted)")


def _run_train(args):
    """Train in float32, save ``OUT/best`` and report the float model; ``--out`` follows the rule of
    :mod:`bitsim.outputs`."""
    cfg = GRUConfig(**config_options(args, GRUConfig))
    out = open_run(args, "bitsim train gru", ("best", "checkpoint", "optimizer"),
                   ("history.json", "table.json", "bits.png"))
    print(f"training {cfg}")
    t0 = time.perf_counter()
    model, history = train(cfg, out_dir=out, progress=not args.no_progress, resume=args.resume)
    _, _, _, test_ids = shakespeare()
    loss, acc = evaluate(model, test_ids, cfg.eval_streams)
    total = sum(h["seconds"] for h in history)
    print(f"test            next-character accuracy {acc:.4f}, cross-entropy {loss:.4f} nats "
          f"({loss / math.log(2):.3f} bits) per character, float32 NumPy, {cfg.eval_streams} streams")
    print(f"training time   {total / 60:.1f} min in epochs over {len(history)} epochs "
          f"({time.perf_counter() - t0:.0f} s wall for this call, evaluation included)")
    print(f"saved           {out / 'best.json'}; next: bitsim gru table {out / 'best.json'}")


TRAIN = Command(help="character-level GRU on Shakespeare: float32 training, then Log8 / Fix16 / Fix8 conversion "
                     "(bitsim gru table)",
                add_arguments=_add_train_arguments, run=_run_train)


__all__ = ["TRAIN", "TABLE", "GRU", "format_table", "plot_sweep", "json_ready"]
