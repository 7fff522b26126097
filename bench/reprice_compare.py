"""Re-price a ``doping compare`` result with the current estimator's clock and area, keeping each
point's design, cycles and energy (issue 27: the PTB cost table under the calibrated estimator).

  python bench/reprice_compare.py docs/compare_ptb_h200.json --md docs/compare_ptb_h200_calibrated.md

Cycles per token and energy do not depend on the calibration (cycles are exact; energy stays on
the 45 nm per-action tables); latency is cycles / the calibrated clock and area is the calibrated
area of the point's design. The designs themselves were chosen (least interval x area) under the
old area rule: with the calibrated area a different design may win for some points. Re-running
``doping compare`` re-chooses them but needs every run's exported pack.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from doping.config import AccelConfig
from doping.estimate.calibration import silicon_basis
from doping.estimate.model import area_mm2, clock_mhz


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("compare_json")
    ap.add_argument("--md", required=True)
    a = ap.parse_args()
    r = json.loads(Path(a.compare_json).read_text())
    ref = r["reference"]
    rows = []
    for p in sorted(r["points"], key=lambda p: p["test_ppl"]):
        cfg = AccelConfig(**p["config"])
        clock = clock_mhz(cfg)
        rows.append((p, p["cycles_per_token"] / clock, sum(area_mm2(cfg).values()), clock))
    md = [f"Re-priced by `python bench/reprice_compare.py {a.compare_json} --md {a.md}` from "
          f"[{Path(a.compare_json).name}]({Path(a.compare_json).name}) (2×{r['hidden']} PTB, each run on the design "
          f"that compare chose for it). Silicon figures: {silicon_basis(rows[0][0]['config']['tech_nm'])}. "
          "Old: the uncalibrated rules (SRAM at one density, clock min(500 MHz, gate-level rule)). Reference: "
          f"{ref['run']} (test ppl {ref['test_ppl']:.2f}).", "",
          "| run | method | ratio | test ppl | design | cycles/token | energy/token nJ | clock MHz | latency/token µs "
          "(old) | area mm² (old) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p, lat, area, clock in rows:
        md.append(f"| {p['run']} | {p['method']} | {p['ratio']:g} | {p['test_ppl']:.2f} | {p['design']} | "
                  f"{p['cycles_per_token']} | {p['energy_per_token_nj']:.1f} | {clock:.0f} | {lat:.2f} "
                  f"({p['latency_per_token_us']:.2f}) | {area:.2f} ({p['area_mm2']:.2f}) |")
    Path(a.md).write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
