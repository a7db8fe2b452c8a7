"""Results of several batches joined into one, at once (:func:`join`) or on first use (:class:`LazyTensors`)."""

from collections.abc import Mapping

import numpy as np


def join_one(arrays, batched):
    """One tensor's arrays of several batches joined along the first axis (given once when not ``batched``)."""
    if len(arrays) == 1 or not batched:
        return arrays[0]
    return np.concatenate([np.asarray(a).reshape(np.shape(a) or (1,)) for a in arrays])


def join(parts, batched):
    """Tensors of several batches joined along their first axis (those in ``batched``; the others, computed
    from constants alone, are the same in every batch and given once)."""
    if len(parts) == 1:
        return parts[0]
    return {name: join_one([p[name] for p in parts], name in batched) for name in parts[0]}


class LazyTensors(Mapping):
    """``{tensor name: array}`` whose arrays are made on first use: ``convert`` of each batch's value, joined.

    A read-only mapping like a dict (``result[name]``, ``result.items()``, ``dict(result)``); each array is
    computed once, so that asking for one output does not pay for converting every tensor.
    """

    def __init__(self, parts, names, batched, convert):
        self.parts, self.names, self.batched, self.convert = parts, list(names), batched, convert
        self.done = {}

    def __getitem__(self, name):
        if name not in self.done:
            if name not in self.parts[0]:
                raise KeyError(name)
            self.done[name] = join_one([self.convert(p[name]) for p in self.parts], name in self.batched)
        return self.done[name]

    def __iter__(self):
        return iter(self.names)

    def __len__(self):
        return len(self.names)

    def __repr__(self):
        return f"LazyTensors({len(self.names)} tensors: {', '.join(self.names[:5])}{' ...' if len(self) > 5 else ''})"


__all__ = ["join", "join_one", "LazyTensors"]
