"""MNIST as the BNN and Connect trainers split it: training images from the start of the 60,000,
validation images from index 50,000 on, and the 10,000 test images."""

from ..datasets import load_mnist
from ..errors import InputError


def check_split(train_size, validation_size):
    """Raise InputError unless the sizes fit MNIST's training images as :func:`mnist_splits` cuts them.

    Parameters
    ----------
    train_size, validation_size : int
    """
    if not 0 <= validation_size <= 10_000:
        raise InputError(f"validation_size must be 0..10000 (the last 10,000 training images), got {validation_size}")
    most = 60_000 if validation_size == 0 else 50_000
    if not 1 <= train_size <= most:
        raise InputError(f"train_size must be 1..{most} with validation_size {validation_size} (MNIST's classic "
                         f"split: 50,000 train + 10,000 validation; validation_size 0 frees all 60,000)")


def mnist_splits(cfg, data=None):
    """``(x_train, y_train), (x_val, y_val), (x_test, y_test)`` as uint8 images and labels.

    Training images are the first ``cfg.train_size``, validation images the ``cfg.validation_size`` from
    index 50,000 on (empty when it is 0).

    Parameters
    ----------
    cfg : configuration
        Gives ``train_size`` and ``validation_size``.
    data : dict, optional
        MNIST arrays as :func:`bitsim.datasets.load_mnist` returns them (loaded when omitted).

    Returns
    -------
    tuple of three (images, labels) pairs
    """
    data = load_mnist() if data is None else data
    x, y = data["x_train"], data["y_train"]
    train = (x[:cfg.train_size], y[:cfg.train_size])
    val = (x[50_000:50_000 + cfg.validation_size], y[50_000:50_000 + cfg.validation_size])
    return train, val, (data["x_test"], data["y_test"])


__all__ = ["check_split", "mnist_splits"]
