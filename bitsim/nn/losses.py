"""Losses: each call returns ``(loss, grad)`` for a batch of scores and integer class labels.

``loss`` is a Python float; ``grad`` is the gradient of that loss w.r.t. the scores, in the scores'
float dtype.
"""

import numpy as np

from ..errors import InputError


def _scores_labels(scores, labels):
    scores = np.asarray(scores)
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float32)
    labels = np.asarray(labels)
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise InputError(f"expected scores (N, classes) and labels (N,), got {scores.shape} and {labels.shape}")
    if labels.dtype.kind not in "iu" or (labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1])):
        raise InputError(f"labels must be integers in 0..{scores.shape[1] - 1}")
    return scores, labels.astype(np.intp)


def accuracy(scores, labels):
    """Fraction of rows whose largest score (the first one on ties) is at the label."""
    scores, labels = _scores_labels(scores, labels)
    return float(np.mean(scores.argmax(axis=1) == labels)) if labels.size else float("nan")


class SoftmaxCrossEntropy:
    """Softmax cross-entropy: ``loss = mean over the batch of -log softmax(y)[label]``.

    The gradient is ``(softmax(y) - onehot) / N``. Softmax is computed with the row maximum subtracted.
    """

    def __call__(self, scores, labels):
        scores, labels = _scores_labels(scores, labels)
        n = scores.shape[0]
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_p = shifted - log_z
        rows = np.arange(n)
        loss = -float(log_p[rows, labels].mean())
        grad = np.exp(log_p)
        grad[rows, labels] -= 1
        return loss, grad / scores.dtype.type(n)

    accuracy = staticmethod(accuracy)

    def __repr__(self):
        return "SoftmaxCrossEntropy()"


class SquaredHinge:
    """Squared hinge loss of the BNN paper, with targets ``t = 2 * onehot - 1`` (±1).

    Parameters
    ----------
    mean : {'batch', 'all'}
        ``'batch'`` (default): ``loss = (1/N) sum_n sum_k max(0, 1 - t[n,k] * y[n,k])**2``, the mean over
        the batch of the per-example sum over classes. ``'all'``: the mean over all ``N * K`` elements,
        as in the BNN Theano code (``T.mean(T.sqr(T.maximum(0., 1. - target * output)))``), i.e. the
        'batch' loss divided by the number of classes ``K``.

    Notes
    -----
    Gradient: ``-2 * t * max(0, 1 - t * y) / N`` ('batch') or ``/ (N * K)`` ('all').
    """

    def __init__(self, mean="batch"):
        if mean not in ("batch", "all"):
            raise InputError(f"mean must be 'batch' or 'all', got {mean!r}")
        self.mean = mean

    def __call__(self, scores, labels):
        scores, labels = _scores_labels(scores, labels)
        n, k = scores.shape
        t = -np.ones_like(scores)
        t[np.arange(n), labels] = 1
        margin = np.maximum(0, 1 - t * scores)
        count = n if self.mean == "batch" else n * k
        loss = float((margin**2).sum(dtype=np.float64) / count)
        grad = -2 * t * margin / scores.dtype.type(count)
        return loss, grad

    accuracy = staticmethod(accuracy)

    def __repr__(self):
        return f"SquaredHinge(mean={self.mean!r})"
