"""Data sets: the bundled MNIST digits and Shakespeare corpus, MNIST IDX files, CIFAR-10 and SVHN.

The bundled files live in the repository's ``data/`` directory and are built by
``python data/build.py`` (see ``data/README.md`` for provenance).  Set the
environment variable ``BITSIM_DATA`` to a directory to load them from
elsewhere.

Modules: :mod:`.files` (where the bundled files live, their checksums),
:mod:`.npz` (safe ``.npz`` reading), :mod:`.idx` (the IDX format), :mod:`.mnist`,
:mod:`.text` (Shakespeare, character vocabularies, splits), :mod:`.shifts`
(random translations of images), :mod:`.cifar10`, :mod:`.matfile` (MATLAB 5)
and :mod:`.svhn`.
"""

from .cifar10 import load_cifar10, read_cifar10_batch
from .files import data_dir
from .idx import read_idx
from .mnist import MNIST_IDX_FILES as MNIST_IDX_FILES
from .mnist import MNIST_SHA256, load_mnist, load_mnist_idx
from .shifts import random_shifts, translate
from .svhn import load_svhn, read_svhn_mat
from .text import SHAKESPEARE_SHA256, char_vocab, decode_chars, encode_chars, load_shakespeare, split_text

__all__ = [
    "MNIST_SHA256",
    "SHAKESPEARE_SHA256",
    "char_vocab",
    "data_dir",
    "decode_chars",
    "encode_chars",
    "load_cifar10",
    "load_mnist",
    "load_mnist_idx",
    "load_shakespeare",
    "load_svhn",
    "random_shifts",
    "read_cifar10_batch",
    "read_idx",
    "read_svhn_mat",
    "split_text",
    "translate",
]
