"""The README's numbers from the docs they come from (issue 32): every README block between
``<!-- generated: NAME -->`` and ``<!-- /generated -->`` is rewritten from docs/*.json, so that
the README cannot drift from the results.

  python bench/readme_numbers.py            # rewrite README.md
  python bench/readme_numbers.py --check    # exit 1 when README.md is not what the docs give

Blocks: ``ptb-25x`` — the 2x200 PTB methods at 25x under the converged schedule, each priced as
its exported pack on its own balanced design (docs/compare_ptb_h200_conv.json, written by
``doping compare --runs runs/ptb/h200/conv``), with the test perplexities of
docs/ptb_results.json; ``flagship`` — the flagship preset through the standard-cell flow
(docs/stdcell_ppa.json).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
COMPARE = DOCS / "compare_ptb_h200_conv.json"
#: (label, run names of its seeds under h200/conv/) in the table's order; a method without a
#: converged run shows its 12-epoch run (h200/<name>), said in its label
PTB_ROWS = (("magnitude pruning (2 seeds)", ("prune_r25_s0", "prune_r25_s1")),
            ("DKP (rule shares, 2 seeds)", ("dkp_sharerule_none_r25_s0", "dkp_sharerule_none_r25_s1")),
            ("DKP + CMR (50 % Kronecker share, DropConnect ramped)", ("dkp_share0.5_dropconnect-ramp_r25_s0",)),
            ("DKP, Kronecker-first start", ("dkp_sharerule_kpfirst_r25_s0",)),
            ("LMF", ("lmf_r25_s0",)),
            ("HMD (dense-row split 0.25)", ("hmd_split0.25_r25_s0",)))


def _bold_min(values: list[float | None], fmt: str) -> list[str]:
    best = min((v for v in values if v is not None), default=None)
    return ["—" if v is None else (f"**{v:{fmt}}**" if v == best else f"{v:{fmt}}") for v in values]


def ptb_25x() -> str:
    cmp = json.loads(COMPARE.read_text())
    results = {r["run"]: r for r in json.loads((DOCS / "ptb_results.json").read_text())}
    points = {p["run"]: p for p in cmp["points"]}
    dense = results["h200/dense"]["test_ppl"]
    rows = []
    for label, runs in PTB_ROWS:
        names = [f"h200/conv/{r}" for r in runs]
        ppl = [results[n]["test_ppl"] for n in names if n in results]
        if not ppl:  # not run under the converged schedule yet: the 12-epoch run
            ppl = [results[f"h200/{r}"]["test_ppl"] for r in runs if f"h200/{r}" in results]
            label += ", 12-epoch schedule"
            if not ppl:
                continue
        cost = points.get(runs[0])
        rows.append((label, ppl, cost))
    best_ppl = min(min(p) for _, p, _ in rows)
    cols = {k: _bold_min([c[k] if c else None for _, _, c in rows], f)
            for k, f in (("energy_per_token_nj", ".0f"), ("latency_per_token_us", ".2f"), ("area_mm2", ".1f"))}
    out = [f"Priced {cmp.get('date', '')} by `doping compare --runs runs/ptb/h200/conv` "
           f"([docs/compare_ptb_h200_conv.md](docs/compare_ptb_h200_conv.md)): each run's pack on its own balanced "
           f"design, per token through both LSTM layers, weights on chip. Silicon figures: {cmp['silicon_basis']}.",
           "", f"| method at 25× | test ppl (dense {dense:.2f}) | energy / token | latency / token | area |",
           "|---|---|---|---|---|"]
    for i, (label, ppl, cost) in enumerate(rows):
        shown = " / ".join(f"**{p:.2f}**" if p == best_ppl else f"{p:.2f}" for p in ppl)
        if cost is None:
            out.append(f"| {label} | {shown} | — (not an accelerator layer) | — | — |")
        else:
            out.append(f"| {label} | {shown} | {cols['energy_per_token_nj'][i]} nJ | "
                       f"{cols['latency_per_token_us'][i]} µs | {cols['area_mm2'][i]} mm² |")
    prune, dkp = points.get("prune_r25_s0"), points.get("dkp_sharerule_none_r25_s0")
    if prune and dkp:
        diff = {k: 100 * (prune[k] / dkp[k] - 1) for k in ("energy_per_token_nj", "area_mm2", "latency_per_token_us")}
        out += ["", f"Per token, pruning against DKP (seed 0, each on its own design): energy "
                    f"{diff['energy_per_token_nj']:+.0f} %, area {diff['area_mm2']:+.0f} %, latency "
                    f"{diff['latency_per_token_us']:+.0f} %."]
    return "\n".join(out)


def flagship() -> str:
    rows = {(r["config"], r["library"]): r for r in json.loads((DOCS / "stdcell_ppa.json").read_text())
            if r.get("mode", "flat") == "flat"}
    f = rows[("flagship", "nangate45")]["flow"]
    return (f"**{f['fmax_mhz']:.0f} MHz and {f['area_mm2']:.1f} mm²** when mapped to Nangate45 cells (typical corner, "
            "1.1 V, 25 °C) with fakeram45 SRAM macros and timed by OpenSTA")


BLOCKS = {"ptb-25x": ptb_25x, "flagship": flagship}
PATTERN = re.compile(r"(<!-- generated: ([\w-]+) -->)(.*?)(<!-- /generated -->)", re.S)


def render(text: str) -> str:
    def sub(m):
        name = m.group(2)
        if name not in BLOCKS:
            raise SystemExit(f"README block {name!r} has no generator (known: {', '.join(BLOCKS)})")
        body = BLOCKS[name]()
        sep = "\n" if "\n" in body or "\n" in m.group(3) else ""
        return f"{m.group(1)}{sep}{body}{sep}{m.group(4)}"
    return PATTERN.sub(sub, text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when README.md differs from what the docs give")
    a = ap.parse_args(argv)
    text = README.read_text()
    new = render(text)
    if a.check:
        if new != text:
            print("README.md is out of date with docs/: run python bench/readme_numbers.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    print(f"README.md: {len(PATTERN.findall(new))} generated blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
