"""Optimizers and learning-rate schedules.

An optimizer holds a list of :class:`~bitsim.nn.layers.Param` and a schedule. Each :meth:`~Optimizer.step`:

1. reads ``lr = schedule(t)`` for the number ``t`` of steps taken so far (0 for the first step);
2. for each parameter, takes ``g = p.grad`` plus ``weight_decay * p.value`` when ``weight_decay > 0``
   and ``p.decay`` (L2 decay added to the gradient);
3. applies the rule below with the parameter's learning rate ``lr * p.lr_scale``, in place, in the
   parameter's dtype;
4. clips the value to ``p.clip`` when set (latent binary weights stay in [-1, 1]).

Rules (``t`` below counts from 1 inside the bias corrections):

=============  ==========================================================================================
SGD            ``v = momentum * v + g``; step ``v``, or ``g + momentum * v`` with Nesterov;
               ``p -= lr * step`` (PyTorch's convention; ``v`` starts at 0)
Adam           ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g**2``,
               ``p -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)`` (Kingma & Ba, Algorithm 1)
AdaMax         ``m = b1 m + (1 - b1) g``, ``u = max(b2 u, |g|)``,
               ``p -= (lr / (1 - b1**t)) * m / (u + eps)`` (Kingma & Ba, Algorithm 2; eps as in Lasagne)
ShiftAdaMax    the same ``m`` and ``u``, then
               ``p -= AP2(lr / (1 - b1**t)) * m / AP2(u + eps)`` (Hubara et al., Algorithm 4)
=============  ==========================================================================================

``lr`` in the table is already ``lr * p.lr_scale``, so in ShiftAdaMax the per-layer scale is inside the
first AP2. See :class:`ShiftAdaMax` for what is and is not approximated.
"""

import numpy as np

from . import fused
from ..errors import InputError
from .layers import ap2


class Constant:
    """A constant learning rate: ``lr(t) = lr``."""

    def __init__(self, lr):
        self.lr = float(lr)

    def __call__(self, t):
        return self.lr

    def __repr__(self):
        return f"Constant({self.lr:g})"


class ExponentialDecay:
    """Geometric decay from ``lr0`` to ``lr_final`` over ``n_steps`` periods of ``every`` optimizer steps.

    ``lr(t) = lr0 * (lr_final / lr0) ** (k / n_steps)`` with ``k = t // every``, and exactly
    ``lr_final`` once ``k >= n_steps``. The BNN Theano code multiplies the rate by
    ``(LR_fin / LR_start) ** (1 / num_epochs)`` after every epoch: that is ``n_steps = num_epochs`` and
    ``every = batches per epoch``.
    """

    def __init__(self, lr0, lr_final, n_steps, every=1):
        self.lr0, self.lr_final = float(lr0), float(lr_final)
        self.n_steps, self.every = int(n_steps), int(every)
        if self.lr0 <= 0 or self.lr_final <= 0 or self.n_steps < 1 or self.every < 1:
            raise InputError("ExponentialDecay needs lr0 > 0, lr_final > 0, n_steps >= 1 and every >= 1")

    def __call__(self, t):
        k = int(t) // self.every
        if k >= self.n_steps:
            return self.lr_final
        return self.lr0 * (self.lr_final / self.lr0) ** (k / self.n_steps)

    def __repr__(self):
        return f"ExponentialDecay({self.lr0:g}, {self.lr_final:g}, n_steps={self.n_steps}, every={self.every})"


class StepDecay:
    """Piecewise-constant decay: ``lr(t) = lr0 * factor ** (t // every)``."""

    def __init__(self, lr0, factor, every):
        self.lr0, self.factor, self.every = float(lr0), float(factor), int(every)
        if self.every < 1:
            raise InputError(f"every must be >= 1, got {every}")

    def __call__(self, t):
        return self.lr0 * self.factor ** (int(t) // self.every)

    def __repr__(self):
        return f"StepDecay({self.lr0:g}, factor={self.factor:g}, every={self.every})"


class Optimizer:
    """Base class: the step loop of the module docstring; subclasses implement :meth:`_update`.

    Parameters
    ----------
    params : iterable of Param
    lr : float or callable
        A float means :class:`Constant`; otherwise a schedule ``lr(t)``.
    weight_decay : float
        L2 decay added to the gradient of parameters with ``decay=True``.
    """

    def __init__(self, params, lr, weight_decay=0.0):
        self.params = list(params)
        self.schedule = lr if callable(lr) else Constant(lr)
        self.weight_decay = float(weight_decay)
        self.t = 0
        self.slots = [dict() for _ in self.params]

    @property
    def lr(self):
        """The learning rate the next step will use (before ``lr_scale``)."""
        return self.schedule(self.t)

    def step(self):
        """Update every parameter from its ``.grad``; then clip, and count the step."""
        lr = self.schedule(self.t)
        for p, slots in zip(self.params, self.slots):
            g = p.grad
            if self.weight_decay and p.decay:
                g = g + self.weight_decay * p.value
            if not self._update(p, g, lr * p.lr_scale, slots) and p.clip is not None:
                np.clip(p.value, p.clip[0], p.clip[1], out=p.value)
        self.t += 1

    def _update(self, p, g, lr, slots):
        """Update ``p`` in place; return True when the update also applied ``p.clip``."""
        raise NotImplementedError

    def _slot(self, slots, name, p):
        if name not in slots:
            slots[name] = np.zeros_like(p.value)
        return slots[name]

    def state(self):
        """The step count and the per-parameter slots as a flat dict of arrays (``'{i}.{slot}'`` keys)."""
        out = {"t": np.array(self.t, dtype=np.int64)}
        for i, slots in enumerate(self.slots):
            out.update({f"{i}.{name}": value.copy() for name, value in slots.items()})
        return out

    def load_state(self, state):
        """Restore what :meth:`state` returned (for the same parameter list)."""
        self.t = int(state["t"])
        self.slots = [dict() for _ in self.params]
        for key, value in state.items():
            if key == "t":
                continue
            i, name = key.split(".", 1)
            p = self.params[int(i)]
            if np.shape(value) != p.value.shape:
                raise InputError(f"optimizer slot {key!r} has shape {np.shape(value)}, parameter has {p.value.shape}")
            self.slots[int(i)][name] = np.array(value, dtype=p.value.dtype)

    def _describe(self):
        return f"lr={self.schedule!r}, weight_decay={self.weight_decay:g}"

    def __repr__(self):
        return f"{type(self).__name__}({len(self.params)} params, {self._describe()})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum; see the module table.

    Parameters
    ----------
    params, lr, weight_decay
        See :class:`Optimizer`.
    momentum : float
    nesterov : bool
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        if self.nesterov and self.momentum <= 0:
            raise InputError("Nesterov momentum needs momentum > 0")

    def _update(self, p, g, lr, slots):
        if self.momentum:
            v = self._slot(slots, "v", p)
            v *= self.momentum
            v += g
            g = g + self.momentum * v if self.nesterov else v
        p.value -= lr * g

    def _describe(self):
        return f"{super()._describe()}, momentum={self.momentum:g}, nesterov={self.nesterov}"


class Moments(Optimizer):
    """Base of :class:`Adam` and :class:`AdaMax`: the rates ``b1``, ``b2`` and ``eps``, and two slots per parameter,
    the first moment ``m`` and a second one named by :attr:`second`.

    Subclasses implement :meth:`_moments`, given both slots and the step ``t`` counted from 1.
    """

    second = "v"

    def __init__(self, params, lr, b1, b2, eps, weight_decay):
        super().__init__(params, lr, weight_decay)
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)

    def _update(self, p, g, lr, slots):
        return self._moments(p, g, lr, self._slot(slots, "m", p), self._slot(slots, self.second, p), self.t + 1)

    def _moments(self, p, g, lr, m, s, t):
        """Update ``p`` in place from ``g`` and the slots ``m`` and ``s``; True when it also applied ``p.clip``."""
        raise NotImplementedError

    @staticmethod
    def _fused(loop, p, g, m, s, *factors):
        """Run ``loop`` of :mod:`bitsim.nn.fused` on ``p``, ``g`` and the slots, with the factors in ``p``'s dtype,
        then ``p.clip``; return False, running nothing, when the arrays do not suit the loop."""
        if not fused.fusable(p.value, g, m, s):
            return False
        f = p.value.dtype.type
        lo, hi = p.clip if p.clip is not None else (0.0, 0.0)
        loop(*fused.flat(p.value, g, m, s), *[f(x) for x in factors], f(lo), f(hi), p.clip is not None)
        return True


class Adam(Moments):
    """Adam (Kingma & Ba 2015, Algorithm 1); see the module table. Defaults b1=0.9, b2=0.999, eps=1e-8."""

    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, b1, b2, eps, weight_decay)

    def _moments(self, p, g, lr, m, v, t):
        if self._fused(fused.adam, p, g, m, v, self.b1, 1 - self.b1, self.b2, 1 - self.b2, 1 - self.b1**t,
                       1 - self.b2**t, lr, self.eps):
            return True
        m[...] = self.b1 * m + (1 - self.b1) * g
        v[...] = self.b2 * v + (1 - self.b2) * g * g
        p.value -= lr * (m / (1 - self.b1**t)) / (np.sqrt(v / (1 - self.b2**t)) + self.eps)
        return False


class AdaMax(Moments):
    """AdaMax (Kingma & Ba 2015, Algorithm 2); see the module table. Defaults lr=0.002, b1=0.9, b2=0.999, eps=1e-8."""

    second = "u"

    def __init__(self, params, lr=0.002, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, b1, b2, eps, weight_decay)

    def _moments(self, p, g, lr, m, u, t):
        if self._fused(fused.adamax, p, g, m, u, self.b1, 1 - self.b1, self.b2, lr / (1 - self.b1**t), self.eps):
            return True
        m[...] = self.b1 * m + (1 - self.b1) * g
        np.maximum(self.b2 * u, np.abs(g), out=u)
        p.value -= (lr / (1 - self.b1**t)) * m / (u + self.eps)
        return False


class ShiftAdaMax(AdaMax):
    """Shift-based AdaMax (Hubara et al. 2016, Algorithm 4): AdaMax whose two multiplications by
    non-constant factors become multiplications by powers of two (bit shifts).

    ``p -= AP2(lr * lr_scale / (1 - b1**t)) * m / AP2(u + eps)`` with ``AP2`` = :func:`bitsim.nn.layers.ap2`.

    * Approximated: the step size ``lr * lr_scale / (1 - b1**t)`` (a scalar, in float64, then AP2) and the
      divisor ``u + eps`` (element-wise AP2). So each parameter's update is ``m * 2**k`` exactly (a
      product by a power of two is exact in binary floating point, barring overflow and subnormals).
    * Not approximated: the moment updates ``m = b1 m + (1 - b1) g`` and ``u = max(b2 u, |g|)``; with the
      defaults ``1 - b1 = 2**-3`` and ``1 - b2 = 2**-10`` they are shift-and-subtract operations
      (``b1 * m = m - m * 2**-3``) but they are computed here as the float products written.
    * The state ``u`` is the exact AdaMax state. (The authors' Torch code instead overwrote its state
      with ``AP2(u) + eps``; here only the divisor is approximated.)

    Defaults are the paper's: ``lr = 2**-10``, ``b1 = 1 - 2**-3``, ``b2 = 1 - 2**-10``, and ``eps = 1e-8``.
    """

    def __init__(self, params, lr=2.0**-10, b1=1 - 2.0**-3, b2=1 - 2.0**-10, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, b1, b2, eps, weight_decay)

    def _moments(self, p, g, lr, m, u, t):
        m[...] = self.b1 * m + (1 - self.b1) * g
        np.maximum(self.b2 * u, np.abs(g), out=u)
        step = ap2(np.float64(lr / (1 - self.b1**t)))
        p.value -= (m * p.value.dtype.type(step)) / ap2(u + self.eps)


__all__ = ["Optimizer", "SGD", "Moments", "Adam", "AdaMax", "ShiftAdaMax", "Constant", "ExponentialDecay", "StepDecay"]
