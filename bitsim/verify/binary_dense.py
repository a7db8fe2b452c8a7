"""The binary dense layer (``examples/hardware/binary_dense.v``) as a testbench sees it.

A transaction is one output channel of one input row: the ±1 dot product ``acc = n - 2 * popcount(x XOR w)``
and its threshold bit (``docs/formats.md``, sections 1 and 7), checked against
:func:`bitsim.kernels.xnor_gemm` and :func:`bitsim.kernels.threshold_pack`. Rows run against a *layer*:
one set of packed weights, thresholds and flip bits, written into the design before its rows.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..formats.binary import n_words, pack
from ..kernels import threshold_pack, xnor_gemm
from .corners import binary_rows
from .scoreboard import Field
from .transactions import Batch
from .words import split_word, to_signed

__all__ = ["Layer", "BinaryDenseUnit"]


@dataclass
class Layer:
    """Weights ``(outs, words)`` uint64, thresholds ``(outs,)``, flip ``(outs,)`` bool, input rows ``(rows, words)``.

    ``names`` label the rows and channels of directed layers.
    """

    weights: np.ndarray
    thresholds: np.ndarray
    flip: np.ndarray
    rows: np.ndarray
    kind: str = "random"
    row_names: tuple = ()
    channel_names: tuple = ()


@dataclass(frozen=True)
class BinaryDenseUnit:
    """The binary dense layer's configuration and its view of transactions.

    Parameters
    ----------
    n : int
        ±1 values per input row (``N``); not a multiple of 64, so rows end in padding bits.
    outs : int
        Output channels (``OUTS``); not a multiple of 64 either.
    rows_per_layer : int
        Random rows run against one random layer before the next.
    threshold_reach : int
        Random thresholds are uniform over ``-reach .. reach``: near the accumulators of random rows, so
        that ties of the compare are common.
    """

    n: int = 130
    outs: int = 70
    rows_per_layer: int = 32
    threshold_reach: int = 16
    name: ClassVar[str] = "binary_dense"
    toplevel: ClassVar[str] = "binary_dense_bench"
    sources: ClassVar[tuple] = ("binary_dense.v", "binary_dense_bench.v")
    bugs: ClassVar[dict] = {1: "the padding bits of the last word are counted (64 * WORDS, not N)",
                            2: "a tie of the threshold compare goes the wrong way (acc > t, not acc >= t)",
                            3: "the accumulator is 8 bits wide (wraps when |acc| > 127)"}

    @property
    def words(self):
        """64-bit words per input row."""
        return n_words(self.n)

    @property
    def out_words(self):
        """64-bit words of packed outputs."""
        return n_words(self.outs)

    def parameters(self, bug=0):
        """The wrapper's HDL parameters."""
        return {"N": self.n, "WORDS": self.words, "OUTS": self.outs, "OUT_WORDS": self.out_words, "BUG": bug}

    def fields(self):
        """The checked outputs: the accumulator and the threshold bit (+1 / -1)."""
        return [Field("acc", 32), Field("bit", 1, "pm1")]

    def random_layers(self, stream, count):
        """Random layers with enough rows for at least ``count`` transactions (one per row and channel)."""
        rows = -(-count // self.outs)
        layers = []
        while rows > 0:
            take = min(rows, self.rows_per_layer)
            layers.append(Layer(stream.packed(self.outs, self.n),
                                stream.between(self.outs, -self.threshold_reach, self.threshold_reach),
                                stream.below(self.outs, 2) == 1, stream.packed(take, self.n)))
            rows -= take
        return layers

    def directed_layers(self):
        """Two layers of named weights and rows: thresholds at the ties of the first row, then at the extremes."""
        patterns = binary_rows(self.n)
        names = list(patterns)
        channel_rows = [patterns[names[o % len(names)]] * (1 if o < len(names) else -1) for o in range(self.outs)]
        channel_names = tuple(f"w {names[o % len(names)]}" + ("" if o < len(names) else ", negated")
                              for o in range(self.outs))
        weights = pack(np.array(channel_rows, np.int8))
        rows = pack(np.array([patterns[k] for k in names], np.int8))
        flip = np.arange(self.outs) % 2 == 1
        ties = xnor_gemm(rows[:1], weights, self.n)[0].astype(np.int64)
        n = self.n
        extremes = np.array([[-n, n + 1, n, -n - 1][o % 4] for o in range(self.outs)])
        extreme_flip = np.array([False, False, True, True] * self.outs)[:self.outs]
        return [Layer(weights, ties, flip, rows, "thresholds at row 0's accumulators (ties)", tuple(names),
                      channel_names),
                Layer(weights, extremes, extreme_flip, rows, "thresholds beyond the range (always / never)",
                      tuple(names), channel_names)]

    def batch(self, layers):
        """The transactions of ``layers``, in the order the design produces them (layer, row, channel)."""
        ops = {"x": [], "w": [], "threshold": [], "flip": []}
        labels = []
        for layer in layers:
            r = len(layer.rows)
            ops["x"].append(np.repeat(layer.rows, self.outs, axis=0))
            ops["w"].append(np.tile(layer.weights, (r, 1)))
            ops["threshold"].append(np.tile(layer.thresholds, r))
            ops["flip"].append(np.tile(layer.flip.astype(np.int64), r))
            if layer.kind == "random":
                labels += ["random"] * (r * self.outs)
            else:
                labels += [f"directed: x {layer.row_names[i]}, {layer.channel_names[o]}, {layer.kind}"
                           for i in range(r) for o in range(self.outs)]
        return Batch({k: np.concatenate(v) for k, v in ops.items()}, labels)

    def expected_layer(self, layer):
        """bitsim's accumulators and bits of one layer, shaped (rows, outs)."""
        acc = xnor_gemm(layer.rows, layer.weights, self.n)
        packed = threshold_pack(acc, layer.thresholds.astype(np.int64), layer.flip.astype(bool))
        o = np.arange(self.outs)
        bits = (packed[:, o // 64] >> (o % 64).astype(np.uint64)) & np.uint64(1)
        return acc, bits

    def expected(self, layers):
        """bitsim's results for every transaction of ``layers``, in the design's order."""
        accs, bits = zip(*(self.expected_layer(layer) for layer in layers))
        return {"acc": np.concatenate([a.reshape(-1) for a in accs]).astype(np.int64),
                "bit": np.concatenate([b.reshape(-1) for b in bits]).astype(np.int64)}

    def read_row(self, accs_word, bits_word):
        """One row's results from the wrapper's ``accs`` and ``bits_out`` buses: (acc per channel, bit per channel)."""
        acc = to_signed(split_word(accs_word, 32, self.outs), 32)
        words = split_word(bits_word, 64, self.out_words)
        o = np.arange(self.outs)
        bits = ((words[o // 64] >> (o % 64).astype(np.uint64)) & np.uint64(1)).astype(np.int64)
        return acc, bits
