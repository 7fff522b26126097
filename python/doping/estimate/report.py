"""Tables and plots of the estimator: one estimate and a compression-ratio sweep (the design-space
search is ``estimate.dse``)."""

from __future__ import annotations

import csv
from pathlib import Path

from doping.config import AccelConfig
from doping.errors import DopingError
from doping.estimate.baselines import METHODS, price
from doping.estimate.calibration import for_node, silicon_basis
from doping.estimate.results import ModelEstimate
from doping.fileio import atomic_path


def describe_design(cfg: AccelConfig, source: str = "") -> str:
    """One line naming the design a figure belongs to (the same pack costs differently on each)."""
    kib = sum(m.bits for m in cfg.memories.values()) / 8192
    per_beat = f"{cfg.stream_bytes} element{'s' if cfg.stream_bytes > 1 else ''} a beat"
    return (f"design: {cfg.rows}x{cfg.cols} array, {cfg.lanes} lanes, {per_beat}, batch {cfg.batch}, {kib:,.1f} KiB of on-chip memories, {cfg.tech_nm} nm" + (f" ({source})" if source else ""))


def format_estimate(r: ModelEstimate, source: str = "") -> str:
    """The text ``doping estimate`` prints; ``source`` says where the design came from."""
    lines = [describe_design(r.config, source),f"cycles {r.cycles}  latency {r.latency_us:.2f} us  throughput {r.throughput_vectors_per_s:.0f} vectors/s",
             f"steady-state interval {r.interval_cycles} cycles per vector (vectors streamed back to back); busy: "
             f"array {r.utilisation.array_kp:.0%} of its Kronecker phases, lanes {r.utilisation.lanes:.0%} of "
             "the gather",
             f"energy {r.energy_pj / 1e3:.2f} nJ per vector   area {r.area_mm2:.3f} mm^2   power {r.power_mw:.1f} mW",
             "SRAM KiB: " + ", ".join(f"{k} {v:.1f}" for k, v in r.sram_kib.items()),
             "energy pJ: " + ", ".join(f"{k} {v:.0f}" for k, v in r.breakdown.energy_pj.items() if v),
             "area mm^2: " + ", ".join(f"{k} {v:.4f}" for k, v in r.breakdown.area_mm2.items() if v),
             f"clock {r.clock_mhz:.0f} MHz"]
    if t := r.per_token:
        lines.append(f"per token, all {len(t.layers)} layers: {t.cycles_per_token} cycles, "
                     f"{t.energy_per_token_pj / 1e3:.1f} nJ, {t.latency_per_token_us:.2f} us ({t.weights}"
                     + ("" if t.resident else f"; with every layer resident it would be "
                        f"{t.resident_cycles_per_token} cycles, {t.resident_energy_per_token_pj / 1e3:.1f} nJ")
                     + ")")
    if t := r.lstm:
        lines.append(f"LSTM per token, all {len(t.layers)} layers with cell and state: {t.cycles_per_token} cycles, "
                     f"{t.energy_per_token_pj / 1e3:.1f} nJ, {t.latency_per_token_us:.2f} us, "
                     f"{t.tokens_per_s:.0f} tokens/s ({t.weights})")
    return "\n".join(lines)


def sweep(m, n, ratios, methods, base: AccelConfig, out_dir: Path, balanced: bool = False) -> list[dict]:
    """Every (method, ratio) point as that method's pack on the generated accelerator: ``base``
    with its buffers fitted, or (``balanced``) each point on its own balanced design point."""
    for meth in methods:
        if meth not in METHODS:
            raise DopingError(f"unknown method {meth!r}; choose from {', '.join(METHODS)}")
    rows = []
    for ratio in ratios:
        for meth in methods:
            if meth == "dense" and ratio != ratios[0]:
                continue  # dense is ratio 1 whatever the ratio: one row
            r = price(m, n, ratio, meth, base, balanced=balanced)
            c = r.config
            rows.append({"method": meth, "ratio": 1.0 if meth == "dense" else ratio, "params": r.params,
                         "layers": len(r.layers), "cycles": r.cycles, "interval_cycles": r.interval_cycles,
                         "energy_nj": r.energy_pj / 1e3, "area_mm2": r.area_mm2, "power_mw": r.power_mw,
                         "sram_kib": sum(r.sram_bits.values()) / 8192,
                         "design": f"{c.rows}x{c.cols}, {c.lanes} lanes"})
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "sweep.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = ["| method | ratio | params | design | latency cycles | interval cycles | energy nJ/vector | SRAM KiB | "
          "area mm² | power mW |", "|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['method']} | {r['ratio']:g} | {r['params']} | {r['design']} | {r['cycles']} | {r['interval_cycles']} | "
           f"{r['energy_nj']:.1f} | {r['sram_kib']:.0f} | {r['area_mm2']:.3f} | {r['power_mw']:.1f} |" for r in rows]
    md += ["", f"Silicon figures: {silicon_basis(base.tech_nm)}."]
    with atomic_path(out_dir / "sweep.md") as tmp:
        tmp.write_text("\n".join(md) + "\n")
    _plot_sweep(rows, methods, out_dir / "sweep.png", f"{m}x{n}", "each on its balanced design" if balanced
                else "on one design family", for_node(base.tech_nm)[0].library)
    return rows


def _plot_sweep(rows, methods, path, shape, how, library):
    from doping.plotting import pyplot

    plt = pyplot()

    fig, axes = plt.subplots(2, 2, figsize=(8, 5.6), dpi=72)
    for ax, key, label in zip(axes.flat, ("energy_nj", "area_mm2", "power_mw", "interval_cycles"),
                              ("energy per vector (nJ)", "area (mm²)", "power (mW)", "cycles per vector (streaming)")):
        ratios = sorted({r["ratio"] for r in rows if r["method"] != "dense"})
        # doped Kronecker last and on top (it often lies on pruning's line), dense as a reference level
        for meth in sorted(methods, key=lambda k: k == "dkp"):
            pts = [(r["ratio"], r[key]) for r in rows if r["method"] == meth]
            if meth == "dense":
                ax.axhline(pts[0][1], color="grey", ls=":", lw=1, label="dense (ratio 1)")
            else:
                dkp = meth == "dkp"
                ax.plot(*zip(*pts), marker="*" if dkp else "o", ms=7 if dkp else 3, lw=2.2 if dkp else 1,
                        ls="-" if dkp else "--", zorder=3 if dkp else 2, label=meth)
        if ratios:
            ax.set_xlim(ratios[0] / 1.3, ratios[-1] * 1.3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compression ratio (parameters)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{shape} layer, {library}: every method as a pack on the generated accelerator, {how}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
