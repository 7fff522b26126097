"""doping: doped Kronecker compression from training to silicon numbers.

Sub-packages: ``doping.golden`` (bit-exact NumPy numeric spec), ``doping.hw`` (Amaranth
accelerator generator), ``doping.sim`` (cocotb testbenches); this package holds the model pack,
training, export, estimator and the ``doping`` CLI.
"""

__version__ = "0.1.0"
