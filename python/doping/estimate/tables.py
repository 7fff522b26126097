"""Per-action energy and per-unit area at 45 nm, from published tables (the estimator's only
constants). Other nodes scale by ``node_scale`` (docs/estimator.md).

Sources:
- [H14] M. Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm: int8 add 0.03 pJ, int32 add
  0.1 pJ, int8 mult 0.2 pJ, int32 mult 3.1 pJ; 64-bit SRAM read 10 pJ (8 KB), 20 pJ (32 KB),
  100 pJ (1 MB); DRAM 1.3-2.6 nJ per 64-bit access.
- [A45] Accelergy/Timeloop reference tables, 45 nm (timeloop-accelergy-exercises,
  simple_weight_stationary): int8 MAC 0.315 pJ and 417 um^2; 128 KiB SRAM with 64-bit access:
  read 32.38 pJ, write 26.16 pJ, 429,746 um^2; LPDDR4 64-bit access 512 pJ; 16-bit register
  read 0.144 pJ.
- [N45] NanGate/FreePDK45 open cell library: NAND2_X1 0.798 um^2 (one gate equivalent),
  DFF_X1 4.522 um^2, MUX2_X1 1.862 um^2, XOR2_X1 1.596 um^2.
"""

from __future__ import annotations

import math

MAC_INT8_PJ = 0.315  # [A45]
MULT_INT32_PJ = 3.1  # [H14]
ADD_INT32_PJ = 0.1  # [H14]
REG16_READ_PJ = 0.144  # [A45]
DRAM_64B_PJ = 512.0  # [A45] LPDDR4, 64-bit access
SRAM_READ_64B_PJ = ((8 * 1024, 10.0), (32 * 1024, 20.0), (128 * 1024, 32.38), (1024 * 1024, 100.0))  # [H14], [A45]
SRAM_WRITE_OVER_READ = 26.16 / 32.38  # [A45]
SRAM_UM2_PER_BIT = 429_746 / (128 * 1024 * 8)  # [A45] 128 KiB macro
MAC_INT8_UM2 = 417.0  # [A45]
CELL_UM2 = {"gate": 0.798, "ff": 4.522, "mux": 1.862, "xor": 1.596}  # [N45]


def sram_read_pj(bytes_in_macro: int, word_bits: int) -> float:
    """Energy of one read of ``word_bits`` from a macro of ``bytes_in_macro``: 64-bit read energy
    interpolated log-log between the published macro sizes, scaled linearly by word width."""
    pts = SRAM_READ_64B_PJ
    size = max(bytes_in_macro, 1)
    if size <= pts[0][0]:
        e64 = pts[0][1] * math.sqrt(size / pts[0][0])
    else:
        e64 = pts[-1][1]
        for (s0, e0), (s1, e1) in zip(pts, pts[1:]):
            if size <= s1:
                t = math.log(size / s0) / math.log(s1 / s0)
                e64 = math.exp(math.log(e0) + t * (math.log(e1) - math.log(e0)))
                break
        else:
            e64 = pts[-1][1] * math.sqrt(size / pts[-1][0])
    return e64 * word_bits / 64.0


def sram_write_pj(bytes_in_macro: int, word_bits: int) -> float:
    return sram_read_pj(bytes_in_macro, word_bits) * SRAM_WRITE_OVER_READ


def node_scale(tech_nm: int) -> tuple[float, float]:
    """(energy, area) factors from 45 nm to ``tech_nm``: classic constant-field scaling,
    energy ~ (node/45)^2 (C and V both scale) and area ~ (node/45)^2; a first-order rule, stated
    as such in docs/estimator.md."""
    s = tech_nm / 45.0
    return s * s, s * s
