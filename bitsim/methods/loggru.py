"""Log quantization and fixed-point conversion of a GRU (Park and Chung), on the bundled Shakespeare.

The model is a character-level language model: an embedding of the 84 characters (or their one-hot
vectors, ``input='onehot'``), one GRU layer of 64 units (the paper's form by default: the reset gate
multiplies the state before the matrix product), and a fully connected layer to 84 scores. It is trained
in float32 with back-propagation through time (truncated: ``batch_size`` contiguous streams of the
training text, ``seq_len`` characters per update, the hidden state carried from one chunk to the next),
Adam and a clipped global gradient norm.

The trained float32 weights are then run, without retraining, with the GRU's input ``x_t`` and hidden
state ``h_t`` coded as Log8, Fix16 or Fix8 (:func:`run_mode`, on the kernels of
:mod:`bitsim.kernels.logfloat`; the rules are stated in ``docs/formats.md``, section 9), and
:func:`table` measures accuracy, run time and memory for the paper's Table 1 (``bitsim gru table``,
:mod:`bitsim.jobs.gru`, prints it beside the paper's).

Reproducibility: the weights are drawn from Philox key ``seed``; epoch ``e`` starts its streams at an
offset drawn from Philox key ``seed * 2**20 + 2 * e``, re-keyed at the start of every epoch, so a run
resumed from a checkpoint continues with exactly the bits an uninterrupted run would have used.
"""

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..datasets import char_vocab, encode_chars, load_shakespeare, split_text
from ..errors import InputError
from ..formats import fixed, log
from ..formats.fixed import FixedFormat
from ..formats.log import LogFormat
from ..formats.modes import Counts
from ..formats.rng import Philox
from ..io import load_bundle, save_bundle
from ..kernels.gru import run_fixed_weights, run_gru_lm
from ..nn import Adam, Dense, ExponentialDecay, SoftmaxCrossEntropy
from ..nn.gru import GRU, RESET_FORMS, Embedding, OneHot
from ..nn.blas import one_blas_thread
from .config import SIZE, RunConfig
from .epochs import begin_run, end_of_epoch

MODEL_KIND = "bitsim.methods.loggru.CharGRU"
INPUTS = ("embedding", "onehot")


@dataclass
class GRUConfig(RunConfig):
    """Options of a character-level GRU run (the defaults are the reproduction of docs/gru.md, under 30 minutes)."""

    LIMITS = {"embed": SIZE, "hidden": SIZE, "epochs": (1, None), "batch_size": SIZE, "seq_len": SIZE,
              "eval_streams": SIZE, "seed": (0, None)}
    CHOICES = {"input": INPUTS, "reset": RESET_FORMS}

    embed: int = 32
    input: str = "embedding"
    hidden: int = 64
    reset: str = "before"
    epochs: int = 10
    batch_size: int = 128
    seq_len: int = 64
    lr_start: float = 4e-3
    lr_end: float = 5e-4
    clip: float = 5.0
    train_chars: int = 0
    val_chars: int = 0
    eval_streams: int = 64
    seed: int = 1

    def check(self):
        if self.train_chars < 0 or self.val_chars < 0:
            raise InputError("train_chars and val_chars must be >= 0 (0 means the whole split)")
        if self.lr_start <= 0 or self.lr_end <= 0 or self.clip <= 0:
            raise InputError("lr_start, lr_end and clip must be positive")


def epoch_key(seed, epoch):
    """The Philox key of epoch ``epoch``'s stream offset: ``seed * 2**20 + 2 * epoch``."""
    return int(seed) * 2**20 + 2 * int(epoch)


class CharGRU:
    """Embedding (or one-hot) -> GRU -> Dense: ids ``(N, T)`` to scores ``(N, T, vocab)``, with a carried state.

    Parameters
    ----------
    vocab, embed, hidden : int
        ``embed`` is ignored for one-hot input (the GRU's input width is then ``vocab``).
    reset : {'before', 'after'}
    seed : int
        Philox key of the initial weights (embedding, GRU, then the output layer, one generator).
    dtype : numpy dtype
    input : {'embedding', 'onehot'}
        A learned table of ``embed`` values per character, or the fixed one-hot vector.
    """

    def __init__(self, vocab, embed=32, hidden=64, reset="before", seed=1, dtype=np.float32, input="embedding"):
        if input not in INPUTS:
            raise InputError(f"input must be one of {INPUTS}, got {input!r}")
        init = Philox(seed)
        self.input = input
        if input == "onehot":
            embed = vocab
            self.emb = OneHot(vocab, dtype=dtype)
        else:
            self.emb = Embedding(vocab, embed, init_rng=init, dtype=dtype)
        self.vocab, self.embed, self.hidden, self.reset = int(vocab), int(embed), int(hidden), reset
        self.gru = GRU(embed, hidden, reset, init_rng=init, dtype=dtype)
        self.fc = Dense(hidden, vocab, init_rng=init, dtype=dtype)

    @property
    def parts(self):
        return {"emb": self.emb, "gru": self.gru, "fc": self.fc}

    def forward(self, ids, h0=None):
        """Scores ``(N, T, vocab)`` for ids ``(N, T)``; the last state is left in ``self.gru.h_last``."""
        hs = self.gru.forward(self.emb.forward(ids), h0)
        n, t, h = hs.shape
        return self.fc.forward(hs.reshape(n * t, h)).reshape(n, t, self.vocab)

    def backward(self, grad):
        """Gradients of every parameter from the gradient w.r.t. the scores of the last :meth:`forward`."""
        n, t, v = grad.shape
        dh = self.fc.backward(grad.reshape(n * t, v)).reshape(n, t, self.hidden)
        self.emb.backward(self.gru.backward(dh))

    def params(self):
        return [p for part in self.parts.values() for p in part.params()]

    def state(self):
        """Flat dict ``'{part}.{name}' -> array``: ``emb.E``, ``gru.Wx``, ``gru.Wh``, ``gru.b`` (``gru.b_hn``),
        ``fc.W``, ``fc.b``."""
        return {f"{k}.{name}": v for k, part in self.parts.items() for name, v in part.state().items()}

    def load_state(self, state):
        for key, part in self.parts.items():
            part.load_state({name.split(".", 1)[1]: v for name, v in state.items() if name.split(".", 1)[0] == key})

    def config(self):
        return {"vocab": self.vocab, "embed": self.embed, "hidden": self.hidden, "reset": self.reset,
                "input": self.input}

    def save(self, path, meta=None):
        return save_bundle(path, self.state(), MODEL_KIND, {"model": self.config(), **(meta or {})})

    @classmethod
    def load(cls, path):
        """Rebuild a model saved by :meth:`save`; returns ``(model, meta)``."""
        state, meta = load_bundle(path, MODEL_KIND)
        if "model" not in meta:
            raise InputError(f"{path} has no model description in its manifest; save it with CharGRU.save")
        model = cls(**meta["model"])
        model.load_state(state)
        return model, meta


def shakespeare(text=None):
    """``(vocab, train_ids, val_ids, test_ids)``: the bundled complete works, split 90/5/5 contiguously."""
    text = load_shakespeare() if text is None else text
    vocab = char_vocab(text)
    ids = encode_chars(text, vocab)
    (a, b), (c, d), (e, f) = split_text(len(ids))
    return vocab, ids[a:b], ids[c:d], ids[e:f]


def stream_bounds(n_positions, n_streams):
    """Split positions ``0 .. n_positions - 1`` into contiguous streams: ``(starts, lengths)``.

    The first ``n_positions % n_streams`` streams get one position more (``numpy.array_split``'s rule),
    so every position belongs to exactly one stream.
    """
    n_streams = max(1, min(int(n_streams), int(n_positions)))
    base, extra = divmod(int(n_positions), n_streams)
    lengths = np.full(n_streams, base, np.int64)
    lengths[:extra] += 1
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return starts, lengths


def predict_streams(model, ids, n_streams, block=256):
    """Float32 NumPy inference over ``ids`` split into independent streams (each starts from h = 0).

    Position ``p`` predicts ``ids[p + 1]`` from the characters of its stream up to ``ids[p]``. The
    streams advance together, ``block`` steps per call of the model, carrying their states.

    Returns
    -------
    pred : numpy.ndarray of int64
        The arg-max character (lowest index on ties) at every position ``0 .. len(ids) - 2``.
    loss : float
        Mean cross-entropy in nats per character.
    """
    starts, lengths = stream_bounds(len(ids) - 1, n_streams)
    steps = int(lengths.max())
    idx = np.minimum(starts[:, None] + np.arange(steps + 1), len(ids) - 1)
    valid = np.arange(steps)[None, :] < lengths[:, None]
    batch = ids[idx].astype(np.int64)
    pred = np.empty((len(starts), steps), np.int64)
    nll = np.empty((len(starts), steps), np.float64)
    state = None
    for t0 in range(0, steps, block):
        t1 = min(t0 + block, steps)
        scores = model.forward(batch[:, t0:t1], state)
        state = model.gru.h_last
        pred[:, t0:t1] = scores.argmax(axis=2)
        shifted = scores - scores.max(axis=2, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
        nll[:, t0:t1] = -np.take_along_axis(logp, batch[:, t0 + 1:t1 + 1, None], axis=2)[..., 0]
    return pred[valid], float(nll[valid].mean())


def evaluate(model, ids, n_streams):
    """``(loss, accuracy)`` of the float32 NumPy model on ``ids`` (next-character accuracy)."""
    pred, loss = predict_streams(model, ids, n_streams)
    return loss, float(np.mean(pred == ids[1:]))


def chunks(ids, batch_size, seq_len, offset):
    """``(B, seq_len + 1)`` id windows of ``batch_size`` contiguous streams starting at ``offset``.

    Stream ``s`` covers ``ids[offset + s * L : offset + (s + 1) * L + 1]`` with
    ``L = (len(ids) - 1 - offset) // batch_size``; chunk ``c`` is its characters
    ``c * seq_len .. (c + 1) * seq_len`` (the last ``L % seq_len`` are not used).
    """
    length = (len(ids) - 1 - offset) // batch_size
    starts = offset + np.arange(batch_size) * length
    for c in range(length // seq_len):
        yield ids[starts[:, None] + c * seq_len + np.arange(seq_len + 1)].astype(np.int64)


def clip_gradients(params, limit):
    """Scale every gradient by ``limit / norm`` when their global L2 norm exceeds ``limit``; return the norm."""
    norm = math.sqrt(sum(float(np.sum(p.grad.astype(np.float64) ** 2)) for p in params))
    if norm > limit:
        scale = np.float32(limit / norm)
        for p in params:
            p.grad *= scale
    return norm


@one_blas_thread
def train(cfg, out_dir=None, text=None, progress=True, resume=False, stop_after=None, log=print):
    """Train the character-level GRU in float32.

    Parameters
    ----------
    cfg : GRUConfig
    text : str, optional
        The corpus (the bundled Shakespeare when omitted).
    out_dir, progress, resume, stop_after, log
        The run options of :mod:`bitsim.methods.epochs`; the best epoch has the lowest validation loss.

    Returns
    -------
    model : CharGRU
        The epoch with the lowest validation loss.
    history : list of dict
    """
    from tqdm.auto import tqdm

    vocab, train_ids, val_ids, _ = shakespeare(text)
    if cfg.train_chars:
        train_ids = train_ids[:cfg.train_chars]
    if cfg.val_chars:
        val_ids = val_ids[:cfg.val_chars]
    model = CharGRU(len(vocab), cfg.embed, cfg.hidden, cfg.reset, cfg.seed, input=cfg.input)
    steps = ((len(train_ids) - 1) // cfg.batch_size) // cfg.seq_len
    if steps < 1:
        raise InputError(f"{len(train_ids)} training characters give no chunk of {cfg.batch_size} x {cfg.seq_len}; "
                         "lower batch_size or seq_len")
    schedule = ExponentialDecay(cfg.lr_start, cfg.lr_end, cfg.epochs, every=steps)
    opt = Adam(model.params(), lr=schedule)
    loss = SoftmaxCrossEntropy()
    meta = {"config": asdict(cfg), "vocab": "".join(vocab)}
    out, history, best, epochs = begin_run(model, opt, out_dir, resume, cfg.epochs, stop_after, "val_loss",
                                           kind=MODEL_KIND, log=log)
    for epoch in epochs:
        offset = int(Philox(epoch_key(cfg.seed, epoch)).uint32(1)[0]) % cfg.seq_len
        t0 = time.perf_counter()
        state, total, right, seen = None, 0.0, 0, 0
        bar = tqdm(chunks(train_ids, cfg.batch_size, cfg.seq_len, offset), total=steps, leave=False, unit="chunk",
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=None if progress else True)
        for i, batch in enumerate(bar):
            scores = model.forward(batch[:, :-1], state)
            state = model.gru.h_last
            flat = scores.reshape(-1, len(vocab))
            target = batch[:, 1:].reshape(-1)
            value, grad = loss(flat, target)
            model.backward(grad.reshape(scores.shape))
            clip_gradients(model.params(), cfg.clip)
            opt.step()
            total += value * target.size
            right += int(np.sum(flat.argmax(axis=1) == target))
            seen += target.size
            if i % 20 == 0:
                bar.set_postfix(loss=f"{total / seen:.4f}", acc=f"{right / seen:.3f}")
        seconds = time.perf_counter() - t0
        val_loss, val_acc = evaluate(model, val_ids, cfg.eval_streams)
        row = {"epoch": epoch + 1, "train_loss": total / seen, "train_accuracy": right / seen,
               "val_loss": val_loss, "val_accuracy": val_acc, "lr": schedule((epoch + 1) * steps - 1),
               "seconds": seconds}
        history.append(row)
        log(f"epoch {epoch + 1:3d}  loss {row['train_loss']:.4f}  train acc {row['train_accuracy']:.4f}  "
            f"val loss {val_loss:.4f}  val acc {val_acc:.4f}  {seconds:.1f}s")
        best = end_of_epoch(model, opt, out, meta, history, best, val_loss)
    model.load_state(best[1])
    return model, history


# ---------------------------------------------------------------------------------------
# conversion without retraining (docs/formats.md, section 9)

PAPER = {  # Park and Chung, Table 1
    "FP32": {"accuracy": 0.939, "ms": 18.588, "time_ratio": 1.0, "kb": 30.157, "memory_ratio": 1.0},
    "Log8": {"accuracy": 0.913, "ms": 23.304, "time_ratio": 1.254, "kb": 20.595, "memory_ratio": 0.683},
    "Fix16": {"accuracy": 0.984, "ms": 63.836, "time_ratio": 3.434, "kb": 15.091, "memory_ratio": 0.500},
    "Fix8": {"accuracy": 0.863, "ms": 58.787, "time_ratio": 3.163, "kb": 7.558, "memory_ratio": 0.251},
}
MODES = ("FP32", "Log8", "Fix16", "Fix8")
PARAM_KEYS = ("E", "Wx", "Wh", "b", "b_hn", "Wf", "bf")


def plain_params(model):
    """The float32 arrays of a :class:`CharGRU` under the names the kernels use (``b_hn`` None for 'before'),
    and ``input``: for one-hot input ``E`` is the identity."""
    g = model.gru
    return {"input": model.input, "E": model.emb.table, "Wx": g.Wx.value, "Wh": g.Wh.value, "b": g.b.value,
            "b_hn": g.b_hn.value if g.b_hn is not None else None, "Wf": model.fc.W.value, "bf": model.fc.b.value,
            "reset": model.reset}


def int_bits(max_abs):
    """Integer bits beside the sign that hold magnitudes up to ``max_abs``: ``floor(log2 max_abs) + 1``, at least 0."""
    return 0 if max_abs < 1 else int(math.floor(math.log2(max_abs))) + 1


def fixed_for(values, bits):
    """The ``bits``-bit format with the most fractional bits whose range holds ``max |values|``."""
    return FixedFormat(bits, bits - 1 - int_bits(float(np.max(np.abs(values))) if np.size(values) else 0.0))


def log_for(values, bits, top=None):
    """The ``bits``-bit log code of a vector: ``LogFormat()`` (exponents -63..63) for 8 bits; for 3..7 bits the
    window of ``2**(bits-1) - 1`` exponents whose top is the largest exponent the values encode to (``top``)."""
    if not 3 <= bits <= 8:
        raise InputError(f"log codes have 3..8 bits (sign + 2..7 exponent bits), got {bits}")
    if bits == 8:
        return LogFormat()
    if top is None:
        top = int(log.split(log.encode(np.float32(np.max(np.abs(values)))))[1])
    return LogFormat(exp_bits=bits - 1, exp_offset=top - (2 ** (bits - 2) - 1))


def activation_formats(params, kind, bits):
    """``(act, x_act)``: the code of ``h_t`` (and of ``h * r``) and the code of ``x_t``.

    ``kind`` 'float32': both None. 'log': :func:`log_for` (``h`` in (-1, 1): window top ``2**0``).
    'fixed': ``h`` in Q0.(bits-1), ``x`` in :func:`fixed_for` of the embedding table.
    """
    if kind == "float32":
        return None, None
    if kind == "log":
        return log_for(None, bits, top=0), log_for(params["E"], bits)
    if kind == "fixed":
        return FixedFormat(bits, bits - 1), fixed_for(params["E"], bits)
    raise InputError(f"unknown activation code {kind!r}; choose float32, log or fixed")


def mode_spec(name):
    """``(kind, bits)`` of a Table 1 column: FP32, Log8, Fix16, Fix8 (also LogN and FixN)."""
    low = name.lower()
    if low == "fp32":
        return "float32", 32
    if low.startswith("log") and low[3:].isdigit():
        return "log", int(low[3:])
    if low.startswith("fix") and low[3:].isdigit():
        return "fixed", int(low[3:])
    raise InputError(f"unknown mode {name!r}; use FP32, LogN (3..8) or FixN (2..24)")


def coded_weights(params, kind, bits):
    """The parameters as the mode stores them with coded weights, and their formats.

    'log': every tensor as ``LogFormat()`` codes. 'fixed': every tensor in :func:`fixed_for` its own
    values (``E`` in the format of ``x_t``). Returns ``(codes, formats)`` dicts keyed like the parameters.
    """
    codes, fmts = {}, {}
    for key in PARAM_KEYS:
        value = params.get(key)
        if value is None:
            continue
        if kind == "log":
            fmts[key] = LogFormat()
            codes[key] = log.encode(value, fmts[key])
        else:
            fmts[key] = fixed_for(value, bits)
            codes[key] = fixed.quantize(value, fmts[key])
    return codes, fmts


def decoded(params, codes, fmts):
    """The parameters replaced by the exact float32 values of their codes."""
    out = dict(params)
    for key, c in codes.items():
        f = fmts[key]
        out[key] = log.decode(c, f) if isinstance(f, LogFormat) else fixed.to_float(c, f, np.float32)
    return out


def run_mode(params, ids, starts, lengths, name, weights="float32", counts=None, state="coded"):
    """Predictions of one mode over streams: ``(pred, formats)``.

    ``weights='float32'`` (the paper's setting): :func:`bitsim.kernels.gru.run_gru_lm` with float32
    weights. ``weights='coded'``: Log8 runs the same kernel on the exact float32 values of log8-coded
    weights (each product is then an exponent addition of two codes); FixN runs the integer path
    :func:`run_fixed_weights` on N-bit fixed-point weights. ``state``: see
    :func:`bitsim.kernels.gru.run_gru_lm` ('coded': the hidden state is stored coded).
    """
    kind, bits = mode_spec(name)
    act, x_act = activation_formats(params, kind, bits)
    formats = {"h": _fmt_name(act), "x": _fmt_name(x_act)}
    if weights == "float32" or kind == "float32":
        return run_gru_lm(params, ids, starts, lengths, act, x_act, counts, state=state), formats
    if weights != "coded":
        raise InputError(f"weights must be 'float32' or 'coded', got {weights!r}")
    codes, fmts = coded_weights(params, kind, bits)
    formats.update({k: _fmt_name(f) for k, f in fmts.items()})
    if kind == "log":
        return run_gru_lm(decoded(params, codes, fmts), ids, starts, lengths, act, x_act, counts,
                          state=state), formats
    return run_fixed_weights(codes, fmts, params["reset"], ids, starts, lengths, act, x_act, counts,
                             state=state), formats


def _fmt_name(f):
    if f is None:
        return "float32"
    if isinstance(f, LogFormat):
        return f"{f.name} (2^{f.emin}..2^{f.emax})"
    return f"{f.name} ({f.bits} bits)"


def code_bytes(f):
    """Bytes of one stored value: 4 for float32 (None), 1 for a log code (uint8), the container of a fixed format."""
    if f is None:
        return 4
    if isinstance(f, LogFormat):
        return 1
    return f.dtype.itemsize


def memory(params, name, weights="float32", state="coded"):
    """bitsim's memory accounting of one mode: bytes of every stored tensor, by its storage type.

    Parameters are ``E, Wx, Wh, b, (b_hn), Wf, bf``; the state is one stream's ``x_t`` and ``h_t``. The
    embedding table is stored as the codes of ``x_t`` (the model only reads coded rows); one-hot input
    stores no table (``x_t`` is made from the character). With float32
    weights the other parameters are float32; with coded weights each is stored in its code. With
    ``state='float32'`` the state is kept as float32 beside the code that the products read.

    Returns
    -------
    dict
        ``rows`` (name, values, bytes per value, bytes), ``parameters``, ``state`` and ``total`` bytes, and
        ``paper``: the paper's accounting as bitsim reads it, the bytes of the two coded vectors ``x_t``
        and ``h_t`` at the code's width (4 bytes for FP32, 1 for Log8 and Fix8, 2 for Fix16). It is the
        only accounting found that gives the paper's Fix16 and Fix8 ratios (0.500, 0.251); the paper does
        not state its accounting, and its Log8 ratio 0.683 fits no single width.
    """
    kind, bits = mode_spec(name)
    act, x_act = activation_formats(params, kind, bits)
    fmts = coded_weights(params, kind, bits)[1] if weights == "coded" and kind != "float32" else {}
    rows = []
    for key in PARAM_KEYS:
        value = params.get(key)
        if value is None or (key == "E" and params.get("input") == "onehot"):
            continue
        each = code_bytes(x_act) if key == "E" else code_bytes(fmts.get(key))
        n = int(np.size(value))
        rows.append({"name": key, "values": n, "bytes_each": each, "bytes": each * n})
    par = sum(r["bytes"] for r in rows)
    state_rows = [("x_t", params["E"].shape[1], x_act), ("h_t", params["Wh"].shape[1], act)]
    if state == "float32" and act is not None:
        state_rows.append(("h_t float32", params["Wh"].shape[1], None))
    for key, n, f in state_rows:
        rows.append({"name": key, "values": int(n), "bytes_each": code_bytes(f), "bytes": code_bytes(f) * int(n)})
    total = sum(r["bytes"] for r in rows)
    paper = sum(r["bytes"] for r in rows if r["name"] in ("x_t", "h_t"))
    return {"rows": rows, "parameters": par, "state": total - par, "total": total, "paper": paper}


def test_streams(test_ids, streams, chars=0):
    """``(ids, starts, lengths)`` of the test split (its first ``chars`` characters when ``chars > 0``)."""
    ids = test_ids[:chars] if chars else test_ids
    starts, lengths = stream_bounds(len(ids) - 1, streams)
    return np.asarray(ids, np.int64), starts, lengths


def table(model, test_ids, streams=64, repeats=3, chars=0, sweep=True, log=print, state="coded"):
    """Measure Table 1: accuracy, agreement with FP32, run time and memory of every mode, in one run.

    Every mode runs over the same streams of the test split. Run times are the best of ``repeats``
    wall-clock runs, the modes interleaved within each repeat (so that a slow period of a shared
    machine hits all of them). ``sweep`` adds the accuracy of log codes of 3..8 bits and fixed point
    of 4..16 bits (float32 weights). ``state``: see :func:`run_mode`.

    Returns
    -------
    dict
        ``rows`` (one per mode and weight setting), ``numpy`` (the float32 NumPy model), ``sweep``,
        ``positions``, ``streams``.
    """
    params = plain_params(model)
    ids, starts, lengths = test_streams(test_ids, streams, chars)
    target = ids[1:]
    valid = np.zeros(len(ids), bool)
    valid[:len(ids) - 1] = True
    configs = [(m, "float32") for m in MODES] + [(m, "coded") for m in MODES[1:]]
    for name, weights in configs:  # compile and warm up on a short stream
        run_mode(params, ids[:64], np.zeros(1, np.int64), np.array([min(32, len(ids) - 1)]), name, weights,
                 state=state)
    predict_streams(model, ids[:64], 1)
    best = {c: float("inf") for c in configs}
    best["numpy"] = float("inf")
    preds, counts, formats = {}, {}, {}
    for r in range(repeats):
        for c in configs:
            n = Counts()
            t0 = time.perf_counter()
            pred, fmts = run_mode(params, ids, starts, lengths, *c, counts=n, state=state)
            best[c] = min(best[c], time.perf_counter() - t0)
            preds[c], counts[c], formats[c] = pred[:-1], n, fmts
        t0 = time.perf_counter()
        np_pred, np_loss = predict_streams(model, ids, streams)
        best["numpy"] = min(best["numpy"], time.perf_counter() - t0)
        log(f"repeat {r + 1}/{repeats}: " + ", ".join(f"{c[0]}{'' if c[1] == 'float32' else '/coded'} "
                                                        f"{best[c]:.2f}s" for c in configs)
            + f", numpy {best['numpy']:.2f}s")
    base = preds[("FP32", "float32")]
    rows = []
    for c in configs:
        mem = memory(params, *c, state=state)
        rows.append({"mode": c[0], "weights": c[1], "accuracy": float(np.mean(preds[c] == target)),
                     "agreement": float(np.mean(preds[c] == base)), "seconds": best[c],
                     "time_ratio": best[c] / best[("FP32", "float32")], "memory": mem,
                     "memory_ratio": mem["total"] / memory(params, "FP32")["total"],
                     "paper_memory_ratio": mem["paper"] / memory(params, "FP32")["paper"],
                     "counts": vars(counts[c]).copy(), "formats": formats[c]})
    out = {"positions": int(len(target)), "streams": int(len(starts)), "state": state, "rows": rows,
           "numpy": {"accuracy": float(np.mean(np_pred == target)), "agreement": float(np.mean(np_pred == base)),
                     "seconds": best["numpy"], "loss": np_loss},
           "fp32_kernel_vs_numpy_agreement": float(np.mean(np_pred == base))}
    if sweep:
        out["sweep"] = bit_sweep(params, ids, starts, lengths, base, state=state)
    return out


def bit_sweep(params, ids, starts, lengths, base, log_bits=range(3, 9), fixed_bits=range(4, 17), state="coded"):
    """Next-character accuracy and agreement with ``base`` for log codes and fixed point of each width
    (float32 weights); each width's formats follow :func:`activation_formats`."""
    target = ids[1:]
    rows = []
    for kind, widths in (("log", log_bits), ("fixed", fixed_bits)):
        for bits in widths:
            act, x_act = activation_formats(params, kind, bits)
            n = Counts()
            pred = run_gru_lm(params, ids, starts, lengths, act, x_act, n, state=state)[:-1]
            rows.append({"kind": kind, "bits": int(bits), "accuracy": float(np.mean(pred == target)),
                         "agreement": float(np.mean(pred == base)), "h": _fmt_name(act), "x": _fmt_name(x_act),
                         "saturated": n.saturated, "flushed": n.flushed})
    return rows


__all__ = ["GRUConfig", "CharGRU", "train", "evaluate", "predict_streams", "stream_bounds", "shakespeare", "chunks",
           "clip_gradients", "plain_params", "activation_formats", "coded_weights", "decoded", "run_mode", "memory",
           "table", "bit_sweep", "test_streams", "int_bits", "fixed_for", "log_for", "mode_spec", "PAPER", "MODES"]
