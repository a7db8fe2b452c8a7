"""A scoreboard: every result of a design under test checked against bitsim's, transaction by transaction.

The testbench hands the scoreboard what bitsim expects (:meth:`Scoreboard.expect`, any number of
transactions at once, computed by bitsim's kernels in whole batches) and then what the design produced
(:meth:`Scoreboard.observe`, in the same order, in batches of any size). A mismatch is reported with the
diagnostics of :func:`bitsim.golden.compare.describe_difference`: the transaction number and what it was
(a directed case's name, or a random one), the seed and generator that replay it, the operands, and for
each differing field the expected and actual values in hex and decoded, and the differing bits.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import CheckFailed, InputError
from ..golden.compare import describe_difference
from .words import to_unsigned

__all__ = ["Field", "Mismatch", "Scoreboard"]


@dataclass(frozen=True)
class Field:
    """One checked output of a transaction: its name, width in bits, and how to decode it.

    ``kind`` is ``'signed'`` (two's complement), ``'unsigned'`` or ``'pm1'`` (one bit, 1 = +1, 0 = -1).
    """

    name: str
    bits: int
    kind: str = "signed"


@dataclass
class Mismatch:
    """A transaction whose result differs: where, what went in, and each differing field."""

    transaction: int
    label: str
    operands: dict
    fields: list = field(default_factory=list)

    def as_dict(self):
        """The mismatch as JSON-friendly data."""
        return {"transaction": self.transaction, "label": self.label, "operands": self.operands,
                "fields": self.fields}


def _plain(value):
    """An operand as JSON-friendly data: uint64 words in hex, other integers as ints."""
    a = np.asarray(value)
    if a.dtype == np.uint64:
        return [f"0x{int(v):016x}" for v in a.reshape(-1)] if a.ndim else f"0x{int(a):016x}"
    return a.tolist()


class Scoreboard:
    """Compare a design's results with bitsim's, transaction by transaction.

    Parameters
    ----------
    unit : str
        The design's name, for the report.
    fields : sequence of Field
        The outputs each transaction checks.
    seed, generator
        What the random stimulus was drawn from (reported with every mismatch).
    keep : int
        How many mismatching transactions are described in full (all are counted).
    replay : str, optional
        A command that replays the run; ``{transaction}`` in it is replaced by the mismatch's number.

    Examples
    --------
    >>> sb = Scoreboard("adder", [Field("sum", 8)], seed=1)
    >>> sb.expect({"sum": np.array([3, -2])}, {"a": np.array([1, -1]), "b": np.array([2, -1])})
    >>> [m.transaction for m in sb.observe({"sum": np.array([3, -3])})]
    [1]
    >>> sb.mismatches[0].fields[0]["bits"]
    [0, 1]
    """

    def __init__(self, unit, fields, seed, generator="philox", keep=10, replay=None):
        self.unit, self.fields = unit, list(fields)
        self.seed, self.generator, self.keep, self.replay = seed, generator, keep, replay
        self.expected = {f.name: np.zeros(0, dtype=np.int64) for f in self.fields}
        self.operands, self.labels = {}, []
        self.checked = 0
        self.mismatched = 0
        self.mismatches = []
        self.seconds = 0.0  # time spent inside the scoreboard (expect + observe)

    @property
    def pending(self):
        """Transactions expected but not yet observed."""
        return len(self.labels) - self.checked

    def expect(self, expected, operands, labels=None):
        """Queue bitsim's results for the next transactions.

        Parameters
        ----------
        expected : dict of str to array_like of ints, each of shape (T,)
            One entry per field.
        operands : dict of str to numpy.ndarray, first axis T
            What went in, kept to describe mismatches (a ``length`` entry trims 2-D rows).
        labels : sequence of str, optional
            Each transaction's name (e.g. a directed case); 'random' by default.
        """
        start = time.perf_counter()
        sizes = {len(np.asarray(expected[f.name])) for f in self.fields}
        if len(sizes) != 1:
            raise InputError(f"every field needs the same number of results, got sizes {sorted(sizes)}")
        count = sizes.pop()
        labels = ["random"] * count if labels is None else list(labels)
        if len(labels) != count:
            raise InputError(f"{len(labels)} labels for {count} transactions")
        for f in self.fields:
            self.expected[f.name] = np.concatenate([self.expected[f.name], np.asarray(expected[f.name], np.int64)])
        for name, values in operands.items():
            values = np.asarray(values)
            if len(values) != count:
                raise InputError(f"operand {name!r} has {len(values)} rows for {count} transactions")
            old = self.operands.get(name)
            self.operands[name] = values if old is None else np.concatenate([old, values])
        self.labels += labels
        self.seconds += time.perf_counter() - start

    def observe(self, actual):
        """Check the design's results for the next transactions; return the new mismatches.

        Parameters
        ----------
        actual : dict of str to array_like of ints, each of shape (T,)
            One entry per field, as read from the design (signed or unsigned; compared modulo the width).

        Returns
        -------
        list of Mismatch
            The described mismatches among these transactions (at most ``keep`` in a whole run).
        """
        start = time.perf_counter()
        count = len(np.asarray(actual[self.fields[0].name]))
        if count > self.pending:
            raise InputError(f"{count} results observed but only {self.pending} transactions are expected; "
                             "the design produced results nobody asked for")
        lo, hi = self.checked, self.checked + count
        got, want, wrong = {}, {}, np.zeros(count, dtype=bool)
        for f in self.fields:
            got[f.name] = to_unsigned(np.asarray(actual[f.name]).astype(np.int64), f.bits)
            want[f.name] = to_unsigned(self.expected[f.name][lo:hi], f.bits)
            wrong |= got[f.name] != want[f.name]
        found = []
        for i in np.flatnonzero(wrong)[:max(0, self.keep - len(self.mismatches))]:
            found.append(self._describe(lo + int(i), {n: int(v[i]) for n, v in want.items()},
                                        {n: int(v[i]) for n, v in got.items()}))
        self.mismatches += found
        self.mismatched += int(wrong.sum())
        self.checked = hi
        self.seconds += time.perf_counter() - start
        return found

    def _describe(self, t, want, got):
        operands = {}
        length = int(self.operands["length"][t]) if "length" in self.operands else None
        for name, values in self.operands.items():
            v = values[t]
            if length is not None and np.ndim(v) == 1 and name != "length":
                v = v[:length]
            operands[name] = _plain(v)
        mismatch = Mismatch(t, self.labels[t], operands)
        for f in self.fields:
            if want[f.name] == got[f.name]:
                continue
            entry = {"shape": [len(self.labels)], "bits": f.bits, "dtype": "<u8" if f.kind == "unsigned" else "<i8"}
            first = describe_difference(entry, t, want[f.name], got[f.name])
            if f.kind == "pm1":
                first["expected_value"] = "+1" if want[f.name] else "-1"
                first["actual_value"] = "+1" if got[f.name] else "-1"
            mismatch.fields.append({"field": f.name, **{k: first[k] for k in (
                "expected", "actual", "expected_value", "actual_value", "bits")}})
        return mismatch

    @property
    def passed(self):
        """True when every expected transaction was observed and matched."""
        return self.checked > 0 and self.pending == 0 and self.mismatched == 0

    def format_mismatch(self, m):
        """A mismatch as text: transaction, seed, operands, then one line per differing field."""
        lines = [f"MISMATCH {self.unit}: transaction {m.transaction} ({m.label}), "
                 f"seed {self.seed} ({self.generator})",
                 "  operands: " + ", ".join(f"{k}={v}" for k, v in m.operands.items())]
        for f in m.fields:
            lines.append(f"  {f['field']}: expected {f['expected']} ({f['expected_value']}), "
                         f"got {f['actual']} ({f['actual_value']}); differing bits {f['bits']}")
        if self.replay:
            lines.append("  replay: " + self.replay.format(transaction=m.transaction))
        return "\n".join(lines)

    def report(self):
        """The whole run: the described mismatches, then a PASS or FAIL line with the counts."""
        lines = [self.format_mismatch(m) for m in self.mismatches]
        if self.mismatched > len(self.mismatches):
            lines.append(f"... {self.mismatched - len(self.mismatches)} more mismatching transactions")
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(f"{verdict}: {self.unit}: {self.checked} transactions checked, {self.mismatched} mismatched"
                     + (f", {self.pending} never observed" if self.pending else "")
                     + f" (seed {self.seed}, {self.generator})")
        return "\n".join(lines)

    def summary(self):
        """The run as JSON-friendly data (what the test suite reads back)."""
        return {"unit": self.unit, "seed": self.seed, "generator": self.generator, "checked": self.checked,
                "pending": self.pending, "mismatched": self.mismatched, "passed": self.passed,
                "mismatches": [m.as_dict() for m in self.mismatches], "scoreboard_seconds": self.seconds}

    def raise_if_failed(self):
        """Raise :class:`~bitsim.errors.CheckFailed` with :meth:`report` unless the run passed."""
        if not self.passed:
            raise CheckFailed(self.report())
