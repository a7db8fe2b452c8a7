"""bitsim's exceptions: one base class, and each class also the built-in one a Python user would catch.

Every error bitsim raises on purpose is a :class:`BitsimError`. Each subclass also derives from the
built-in exception of its kind, so ``except ValueError`` keeps working in user code:

=======================  ======================  ==========================================================
class                    also a                  raised for
=======================  ======================  ==========================================================
:class:`InputError`      ``ValueError``          a value, option or argument bitsim cannot use
:class:`InputTypeError`  ``TypeError``           an argument of the wrong type or dtype
:class:`RangeError`      ``OverflowError``       a value outside a format's range where the mode is ``'error'``
:class:`MissingFileError` ``FileNotFoundError``  a file or directory that should be there is not
:class:`OutputExistsError` ``FileExistsError``   output that bitsim will not replace (see the overwrite rule)
:class:`DamagedFileError` ``ValueError``         a file that fails its checksum, schema or consistency checks
:class:`GoldenError`     ``ValueError``          a golden directory that is missing, damaged or inconsistent
:class:`CheckFailed`     ``ArithmeticError``     a bit-exactness check of bitsim's own models failed
:class:`MissingExtra`    ``ImportError``         a command needs an optional extra that is not installed
=======================  ======================  ==========================================================

The ``bitsim`` command turns them into exit statuses (:data:`EXIT_STATUSES`): a damaged file is
always status 2, never status 1, which means the design under test differs.
"""

EXIT_STATUSES = {
    0: "success: every check passed, every compared tensor matched",
    1: "a difference: the design under test (or a checked model) differs from bitsim's result",
    2: "bad input: a wrong option or value, a missing, damaged or inconsistent file, or refused output",
    3: "internal error in bitsim: please report it with the command that caused it",
    130: "interrupted (Ctrl-C)",
    141: "the reader of the output went away (broken pipe, e.g. `| head`)",
}


class BitsimError(Exception):
    """Base class of every error bitsim raises on purpose; ``exit_status`` is the command's exit status."""

    exit_status = 2


class InputError(BitsimError, ValueError):
    """A value, option or argument that bitsim cannot use; the message says what would work."""


class InputTypeError(BitsimError, TypeError):
    """An argument of the wrong type or dtype; the message says which type to give."""


class RangeError(BitsimError, OverflowError):
    """A value outside a format's range (too large or too small) where the overflow or underflow mode is ``'error'``."""


class MissingFileError(BitsimError, FileNotFoundError):
    """A file or directory that should exist does not."""


class OutputExistsError(BitsimError, FileExistsError):
    """An output path that bitsim refuses to replace (it is not bitsim's output of the same kind, or is in use)."""


class DamagedFileError(BitsimError, ValueError):
    """A file that fails its checksum, its schema or a consistency check.

    Parameters
    ----------
    path : str or Path
        The damaged file.
    problem : str
        What is wrong, naming the field and what was expected.
    """

    def __init__(self, path, problem):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


class GoldenError(BitsimError, ValueError):
    """A golden directory that is missing, damaged, inconsistent or not a bitsim golden export."""


class CheckFailed(BitsimError, ArithmeticError):
    """A bit-exactness check of bitsim's own result failed (exit status 1, like a design mismatch)."""

    exit_status = 1


class MissingExtra(BitsimError, ImportError):
    """A feature needs an optional dependency; the message names the extra to install."""


def one_line(err):
    """``TYPE: first line of the message`` of an exception, for one-line reports of errors bitsim did not raise."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


__all__ = ["one_line", "EXIT_STATUSES", "BitsimError", "InputError", "InputTypeError", "RangeError", "MissingFileError",
           "OutputExistsError", "DamagedFileError", "GoldenError", "CheckFailed", "MissingExtra"]
