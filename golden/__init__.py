"""The golden model: the bit-exact numeric specification of the doping accelerator.

Everything that computes what the accelerator computes (RTL tests, cocotb scoreboards, export's
quantised evaluation) imports it from here; nothing re-implements this arithmetic.
See docs/numerics.md.
"""

from doping.golden.fixedpoint import Requant, requantise, saturate, shift_round
from doping.golden.layer import ORDERS, QuantLayer, cheaper_order, kp_macs
from doping.golden.model import Trace, check_input, forward, forward_chain, kron_path, overlay_path, trace
from doping.golden.reference import dequantise_output, error_bound, float_forward

__all__ = [
    "ORDERS", "QuantLayer", "Requant", "Trace", "cheaper_order", "check_input", "dequantise_output",
    "error_bound", "float_forward", "forward", "forward_chain", "kp_macs", "kron_path", "overlay_path", "requantise",
    "saturate", "shift_round", "trace",
]
