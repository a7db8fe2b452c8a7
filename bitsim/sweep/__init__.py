"""Design-space sweeps: many bit-exact integer runs of a trained network under different number formats and
accumulators, on ``dask.distributed`` or serially (``bitsim sweep``, ``docs/sweep.md``).

Modules: :mod:`.formats` (the format registry), :mod:`.spec` (the spec file and its points),
:mod:`.network` (trained models as dense layers, and a point's integer run), :mod:`.qonnx_net` (imported QONNX
networks: their quantizers as the knobs), :mod:`.gru_net` (the GRU language model's weight and activation
formats), :mod:`.points` (a point's evaluation, files and the summary), :mod:`.engine` (serial or Dask
execution), :mod:`.run` (a whole sweep).
Importing this package does not import Dask.
"""

from .run import run_sweep

__all__ = ["run_sweep"]
