"""Testbench tools: bitsim as a live reference model in a cocotb testbench.

Stimulus from bitsim's named generators (:class:`Stream`), directed corner cases per format
(:mod:`bitsim.verify.corners`), packed bus words (:mod:`bitsim.verify.words`), a scoreboard that reports
mismatches with ``compare``'s diagnostics (:class:`Scoreboard`), and the three example units of
``examples/hardware`` (:class:`MacUnit`, :class:`ShiftAddUnit`, :class:`BinaryDenseUnit`). Importing this
package does not import cocotb: only :mod:`bitsim.verify.bench` (which runs inside the simulator) and
:func:`bitsim.verify.runner.run_unit` need the ``hw`` extra (``pip install -e ".[hw]"``).
"""

from .binary_dense import BinaryDenseUnit, Layer
from .mac import MacUnit
from .scoreboard import Field, Mismatch, Scoreboard
from .settings import RunSettings
from .shift_add import ShiftAddUnit
from .stimulus import Stream
from .transactions import Batch
from .words import join_words, pack_fields, split_word, to_signed, to_unsigned, unpack_fields

UNITS = {"mac": MacUnit, "shift_add": ShiftAddUnit, "binary_dense": BinaryDenseUnit}

__all__ = ["Stream", "Scoreboard", "Field", "Mismatch", "Batch", "RunSettings", "MacUnit", "ShiftAddUnit",
           "BinaryDenseUnit", "Layer", "UNITS", "pack_fields", "unpack_fields", "to_signed", "to_unsigned",
           "join_words", "split_word"]
