"""The settings of one testbench run, passed from the runner to the simulator's Python through the environment.

The simulator (Icarus Verilog with cocotb) runs in its own process; the runner writes these settings as
JSON into ``BITSIM_VERIFY`` and the testbench reads them back, so a run is described by plain data:
seed, generator, number of random transactions, planted bug, the last transaction to run (a replay),
where to write the report, and the unit's configuration.
"""

import json
import os
from dataclasses import asdict, dataclass, field

from ..errors import InputError, one_line

__all__ = ["RunSettings", "ENV"]

ENV = "BITSIM_VERIFY"


@dataclass
class RunSettings:
    """One run of a unit's testbench.

    Parameters
    ----------
    seed : int
        Seed of the random stimulus.
    generator : {'philox', 'xorshift32'}
    count : int
        Random transactions (after the directed ones).
    bug : int
        The planted bug (the design's ``BUG`` parameter); 0 for none.
    until : int, optional
        Run transactions 0..until only (replay up to a reported mismatch).
    report : str
        Path of the JSON report the testbench writes.
    unit : dict
        The unit's configuration (its dataclass fields).
    replay : str
        The command that replays this run, ``{transaction}`` standing for a mismatch's number.
    batch : int
        Transactions decoded and checked at a time (at most 256 with ``stop``).
    stop : bool
        Stop driving after the batch in which the first mismatch is found (the scoreboard's report
        still names it); a planted-bug run need not go on.
    directed : bool
        Run the directed cases before the random transactions (True), or the random ones alone.
    """

    seed: int = 1
    generator: str = "philox"
    count: int = 10_000
    bug: int = 0
    until: int = None
    report: str = "report.json"
    unit: dict = field(default_factory=dict)
    replay: str = ""
    batch: int = 4096
    stop: bool = False
    directed: bool = True

    def to_env(self):
        """The settings as the environment variable the testbench reads (``{ENV: JSON}``)."""
        return {ENV: json.dumps(asdict(self))}

    @classmethod
    def from_env(cls, environ=None):
        """The settings a runner passed in ``environ`` (``os.environ`` by default).

        Raises
        ------
        InputError
            If ``BITSIM_VERIFY`` is not set: the testbench was not started by a runner.
        """
        environ = os.environ if environ is None else environ
        text = environ.get(ENV)
        if text is None:
            raise InputError(f"{ENV} is not set: start the testbench with bitsim.verify.runner.run_unit "
                             "(or examples/hardware/cocotb_run.py), which passes the run's settings")
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError) as err:
            raise InputError(f"{ENV} does not hold a run's settings ({one_line(err)}); start the testbench with "
                             "bitsim.verify.runner.run_unit, which writes them") from None
