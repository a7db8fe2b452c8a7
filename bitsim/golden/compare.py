"""Compare a design-under-test dump with bitsim's golden vectors and say exactly where they differ.

A DUT dump is a directory of files named like the golden ones (``stage3.out.memh`` or ``.bin``); the
golden directory's ``manifest.json`` says what each must hold. Every tensor gets one verdict:

``match``       every word equal
``mismatch``    some words differ: how many, and the first one (index, expected, actual, decoded, bits)
``missing``     no file for it in the DUT directory
``malformed``   a file that cannot be read as the tensor: bad hex, a value wider than the element,
                an unsupported ``@address`` directive, the wrong size (truncated or extra words)
``checksum``    a DUT file whose SHA-256 differs from the one its own manifest lists

Only ``match`` passes; nothing else ever counts as a match. Before any DUT file is read, the whole
golden directory is verified (:func:`bitsim.golden.manifest.verify`): a damaged golden file raises
:class:`~bitsim.errors.GoldenError` and is never reported as a mismatch of the design.
"""

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GoldenError
from .manifest import MANIFEST, element_count, parse_bin, parse_memh, verify
from .mx import mx_word


@dataclass
class Verdict:
    name: str
    status: str
    detail: str = ""
    mismatches: int = 0
    words: int = 0
    first: dict = field(default_factory=dict)


def decode_word(entry, index, value):
    """A readable value for one element: packed ±1 values, a signed integer, a float, or an MX code."""
    dtype, bits = entry["dtype"], entry["bits"]
    if entry.get("mx"):
        return mx_word(entry, value)
    if entry.get("packing"):
        return "packed ±1"
    if dtype.endswith("f4"):
        return repr(float(np.array(value, np.uint32).view(np.float32)))
    if dtype == "bool" or dtype[1] == "u":
        return str(value)
    return str(value - (1 << bits) if value >> (bits - 1) else value)


def describe_difference(entry, flat_index, expected, actual):
    """The first mismatch: multi-index, expected and actual in hex, decoded values, and the differing bits."""
    shape = entry["shape"]
    index = [int(i) for i in np.unravel_index(flat_index, shape)] if shape else []
    digits = max(1, -(-entry["bits"] // 4))
    diff = expected ^ actual
    bits = [b for b in range(entry["bits"]) if diff >> b & 1]
    first = {"index": index, "expected": f"0x{expected:0{digits}x}", "actual": f"0x{actual:0{digits}x}",
             "bits": bits, "expected_value": decode_word(entry, index, expected),
             "actual_value": decode_word(entry, index, actual)}
    packing = entry.get("packing")
    if packing and shape:
        word = index[-1]
        elements = [word * packing["word_bits"] + b for b in bits]
        first["elements"] = [
            {"element": e, "expected": "+1" if expected >> (e % 64) & 1 else "-1",
             "actual": "+1" if actual >> (e % 64) & 1 else "-1",
             "padding": packing.get("length") is not None and e >= packing["length"]}
            for e in elements]
    return first


def dut_checksums(dut_dir):
    """``{file name: sha256}`` from a manifest in the DUT directory (a copy of the golden one), if it has one.

    A DUT manifest that cannot be read lists nothing: the DUT's files are then compared word by word.
    """
    path = Path(dut_dir) / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_bytes())
        return {spec["path"]: spec["sha256"] for entry in manifest["tensors"] for spec in entry["files"].values()
                if isinstance(spec.get("sha256"), str) and isinstance(spec.get("path"), str)}
    except (ValueError, UnicodeDecodeError, RecursionError, TypeError, KeyError, AttributeError):
        return {}


def compare(golden_dir, dut_dir, patterns=None, formats=("memh", "bin")):
    """Compare every selected golden tensor with the DUT's file for it.

    Parameters
    ----------
    golden_dir, dut_dir : str or Path
    patterns : list of str, optional
        Shell patterns of tensor names to compare (e.g. ``'stage3.*'``); all tensors by default.
    formats : tuple of {'memh', 'bin'}
        File kinds looked for in the DUT directory, in this order.

    Returns
    -------
    list of Verdict
    """
    manifest, golden = verify(golden_dir)
    dut_dir = Path(dut_dir)
    if not dut_dir.is_dir():
        raise GoldenError(f"DUT directory {dut_dir} does not exist")
    sums = dut_checksums(dut_dir)
    entries = [e for e in manifest["tensors"]
               if not patterns or any(fnmatch.fnmatchcase(e["name"], p) for p in patterns)]
    if patterns and not entries:
        names = ", ".join(e["name"] for e in manifest["tensors"])
        raise GoldenError(f"no tensor matches {patterns}; the tensors are: {names}")
    return [compare_one(golden[entry["name"]], dut_dir, entry, sums, formats) for entry in entries]


def compare_one(expected, dut_dir, entry, sums, formats=("memh", "bin")):
    """The :class:`Verdict` for one tensor: its verified golden words ``expected`` against the DUT's file."""
    name = entry["name"]
    count, bits = element_count(entry), entry["bits"]
    for kind in formats:
        path = dut_dir / f"{name}.{kind}"
        if path.is_file():
            break
    else:
        tried = " or ".join(f"{name}.{k}" for k in formats)
        return Verdict(name, "missing", f"no {tried} in {dut_dir}", words=count)
    data = path.read_bytes()
    if path.name in sums and hashlib.sha256(data).hexdigest() != sums[path.name]:
        return Verdict(name, "checksum", f"{path.name} does not match the SHA-256 in the DUT's {MANIFEST}", words=count)
    try:
        if kind == "bin":
            actual = parse_bin(data, count, max(1, bits // 8))
        else:
            actual = parse_memh(data.decode("ascii", errors="strict"), count, bits)
    except UnicodeDecodeError:
        return Verdict(name, "malformed", f"{path.name}: not ASCII text", words=count)
    except ValueError as err:
        return Verdict(name, "malformed", f"{path.name}: {err}", words=count)
    wrong = [i for i, (e, a) in enumerate(zip(expected, actual)) if e != a]
    if not wrong:
        return Verdict(name, "match", path.name, words=count)
    first = describe_difference(entry, wrong[0], expected[wrong[0]], actual[wrong[0]])
    return Verdict(name, "mismatch", path.name, mismatches=len(wrong), words=count, first=first)


def format_report(verdicts):
    """A human-readable report: one line per tensor, details for the first mismatch, a summary."""
    lines = []
    for v in verdicts:
        if v.status == "match":
            lines.append(f"MATCH      {v.name} ({v.words} words, {v.detail})")
        elif v.status == "mismatch":
            f = v.first
            lines.append(f"MISMATCH   {v.name}: {v.mismatches} of {v.words} words differ ({v.detail})")
            lines.append(f"           first at index {f['index']}: expected {f['expected']} ({f['expected_value']}), "
                         f"got {f['actual']} ({f['actual_value']}); differing bits {f['bits']}")
            for e in f.get("elements", []):
                where = " (a padding bit: must be 0)" if e["padding"] else ""
                lines.append(f"           element {e['element']} of the row: expected {e['expected']}, "
                             f"got {e['actual']}{where}")
        else:
            lines.append(f"{v.status.upper():10s} {v.name}: {v.detail}")
    counts = {s: sum(v.status == s for v in verdicts) for s in ("match", "mismatch", "missing", "malformed", "checksum")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    verdict = "PASS" if counts["match"] == len(verdicts) else "FAIL"
    lines.append(f"{verdict}: {len(verdicts)} tensors compared: {summary}")
    return "\n".join(lines)


def passed(verdicts):
    """True only if every tensor matched."""
    return bool(verdicts) and all(v.status == "match" for v in verdicts)
