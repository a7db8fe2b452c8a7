"""A batch of transactions: named operand arrays (first axis = transaction) and one label per transaction."""

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

__all__ = ["Batch", "stream_batch", "stream_cycles"]


@dataclass
class Batch:
    """Transactions for a unit: ``operands[name][t]`` is operand ``name`` of transaction ``t``.

    ``labels[t]`` names a directed case, or is ``'random'``.
    """

    operands: dict
    labels: list = field(default_factory=list)

    def __len__(self):
        return len(self.labels)

    def __add__(self, other):
        if set(self.operands) != set(other.operands):
            raise InputError(f"batches with different operands: {sorted(self.operands)} and {sorted(other.operands)}")
        joined = {}
        for name in self.operands:
            a, b = np.asarray(self.operands[name]), np.asarray(other.operands[name])
            if a.ndim == 2 and a.shape[1] != b.shape[1]:
                width = max(a.shape[1], b.shape[1])
                a = np.pad(a, ((0, 0), (0, width - a.shape[1])))
                b = np.pad(b, ((0, 0), (0, width - b.shape[1])))
            joined[name] = np.concatenate([a, b])
        return Batch(joined, list(self.labels) + list(other.labels))

    def head(self, count):
        """The first ``count`` transactions (a replay up to a transaction)."""
        return Batch({k: v[:count] for k, v in self.operands.items()}, self.labels[:count])


def stream_batch(pairs, names, width, labels, fills=(0, 0), **per_transaction):
    """Streaming transactions from lists of operand pairs: ``pairs[t]`` is ``[(a, b), ...]`` of transaction ``t``.

    Parameters
    ----------
    pairs : sequence of sequences of (int, int)
        Each transaction's operand pairs, at most ``width`` of them.
    names : (str, str)
        The operands' names; each becomes a ``(T, width)`` int64 array, padded with ``fills``.
    width : int
        Elements per row.
    labels : sequence of str
        Each transaction's name.
    fills : (int, int)
        The padding of each operand past a transaction's length.
    **per_transaction : array_like, shape (T,)
        Operands with one value per transaction (e.g. a shift).

    Returns
    -------
    Batch
        With ``length`` (pairs per transaction), the two operands and ``per_transaction``, in that order.

    Examples
    --------
    >>> b = stream_batch([[(1, 2)], [(3, 4), (5, 6)]], ("a", "b"), 2, ["one", "two"], shift=[0, 1])
    >>> b.operands["length"].tolist(), b.operands["b"].tolist(), b.operands["shift"].tolist()
    ([1, 2], [[2, 0], [4, 6]], [0, 1])
    """
    if any(len(row) > width for row in pairs):
        raise InputError(f"a transaction has more than {width} pairs")
    ops = {"length": np.array([len(row) for row in pairs], np.int64)}
    for j, (name, fill) in enumerate(zip(names, fills)):
        values = np.full((len(pairs), width), fill, np.int64)
        for t, row in enumerate(pairs):
            values[t, :len(row)] = [p[j] for p in row]
        ops[name] = values
    ops.update({k: np.asarray(v) for k, v in per_transaction.items()})
    return Batch(ops, list(labels))


def stream_cycles(lengths):
    """Per clock cycle of a stream that takes one element per cycle: ``(transaction, element, first, last)``.

    Transaction ``t`` occupies ``lengths[t]`` consecutive cycles; ``first`` marks its first, ``last`` its last.

    Examples
    --------
    >>> [a.tolist() for a in stream_cycles(np.array([2, 1]))]
    [[0, 0, 1], [0, 1, 0], [1, 0, 1], [0, 1, 1]]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if (lengths < 1).any():
        raise InputError("every transaction needs at least one element")
    t = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    k = np.arange(len(t)) - starts[t]
    return t, k, (k == 0).astype(np.int64), (k == lengths[t] - 1).astype(np.int64)
