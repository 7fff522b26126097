"""Cost at equal accuracy (issue 12): every trained run of the PTB table as its exported pack on
the generated accelerator, priced per token, against its test perplexity.

Input: the table's results (``docs/ptb_results.json``, one object per run with ``run``,
``method``, ``ratio``, ``test_ppl``...) or, without them, every finished run found under a runs
folder (its ``final.json``), and a folder of packs named ``<run>.dpack`` (exported on demand from
``<runs>/<run>`` when missing). Every point is priced the same way: its own balanced
design (``baselines.balanced_config``) holding every layer of the model (``resident_layers``), the
whole model per token (``model.per_token``: a layer switch is its register words), 45 nm
tables. Runs whose method has no accelerator form (HMD, sums of Kronecker products) are listed as
not priced.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from doping.config import AccelConfig
from doping.errors import DopingError
from doping.estimate.baselines import balanced_config, fit_layers
from doping.estimate.model import per_token
from doping.estimate.price import price_layers
from doping.fileio import atomic_path

METRICS = (("energy_per_token_nj", "energy per token (nJ)"), ("latency_per_token_us", "latency per token (µs)"),
           ("area_mm2", "area (mm²)"))


def load_results(path: Path, hidden: int) -> list[dict]:
    try:
        rows = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise DopingError(f"cannot read the PTB results {path}: {e}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"run", "method", "test_ppl"} <= set(r)
                                              for r in rows):
        raise DopingError(f"{path} is not a list of run results with keys run, method, test_ppl")
    return [r for r in rows if r.get("hidden", hidden) == hidden]


MAX_RUNS = 1000


def discover_runs(runs: Path) -> list[dict]:
    """One results row per finished training run under ``runs`` (a folder holding ``final.json``
    and ``best.pt``, at any depth), named by its path below ``runs``."""
    if not Path(runs).is_dir():
        raise DopingError(f"--runs {runs} is not a folder")
    rows = []
    for final in sorted(Path(runs).rglob("final.json")):
        if final.is_symlink() or not (final.parent / "best.pt").is_file():
            continue
        try:
            f = json.loads(final.read_text())
        except (OSError, ValueError) as e:
            raise DopingError(f"cannot read {final}: {str(e)[:120]}") from None
        ok = (isinstance(f, dict) and isinstance(f.get("method"), str) and isinstance(f.get("hidden"), int)
              and all(isinstance(f.get(k), (int, float)) and not isinstance(f.get(k), bool) for k in ("ratio", "test_ppl")))
        if not ok:
            raise DopingError(f"{final} is not a training run's summary (method, ratio, hidden, test_ppl)")
        rows.append({"run": final.parent.relative_to(runs).as_posix(), "method": f["method"], "ratio": f["ratio"],
                     "hidden": f["hidden"], "cmr": f.get("cmr"), "test_ppl": f["test_ppl"]})
        if len(rows) > MAX_RUNS:
            raise DopingError(f"more than {MAX_RUNS} runs under {runs}")
    if not rows:
        raise DopingError(f"no finished training run (final.json and best.pt) under {runs}")
    return rows


def run_pack(row: dict, packs: Path, runs: Path | None, log=print) -> Path | None:
    """The pack of a run: ``<packs>/<run>.dpack``, exported from ``<runs>/<run>`` when missing;
    None for a method the accelerator cannot run."""
    from doping.export import EXPORTABLE, export_run

    if row["method"] not in EXPORTABLE and row["method"] != "dense_ft":
        return None
    run = str(row["run"])
    # a results row names its run folder; it must stay below --packs and --runs
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*", run) or any(p in (".", "..") for p in run.split("/")):
        raise DopingError(f"results row run {run[:80]!r} is not a relative run name (letters, digits, '_.+-', '/')")
    pack = packs / f"{run}.dpack"
    if not pack.is_file():
        if runs is None or not (runs / row["run"] / "best.pt").is_file():
            raise DopingError(f"no pack {pack} and no run {row['run']} under --runs to export it from")
        log(f"[compare] exporting {row['run']}")
        pack.parent.mkdir(parents=True, exist_ok=True)
        export_run(runs / row["run"], pack, evaluate_test=False, log=lambda *_: None)
    return pack


def price_pack(layers, base: AccelConfig, balanced: bool = True) -> dict:
    """Per-token cost of a pack's layers, all resident, on its balanced design (or ``base`` fitted)."""
    from dataclasses import replace

    from doping.config import MAX_RESIDENT_LAYERS

    base = replace(base, resident_layers=min(len(layers), MAX_RESIDENT_LAYERS))
    cfg = balanced_config(base, layers) if balanced else fit_layers(base, layers)
    parts = list(price_layers(layers, cfg, tokens=False).layers)
    t = per_token(layers, cfg, parts)
    return {"design": f"{cfg.rows}x{cfg.cols}, {cfg.lanes} lanes, W {cfg.stream_bytes}", "config": cfg.as_dict(),
            "cycles_per_token": t.cycles_per_token, "energy_per_token_nj": t.energy_per_token_pj / 1e3,
            "latency_per_token_us": t.latency_per_token_us, "area_mm2": parts[0].area_mm2, "weights": t.weights}


def pareto(points: list[dict], key: str) -> list[dict]:
    """Points no other point beats in both test perplexity and ``key`` (lower is better)."""
    return sorted([p for p in points if not any(q is not p and q["test_ppl"] <= p["test_ppl"] and q[key] <= p[key]
                                                and (q["test_ppl"], q[key]) != (p["test_ppl"], p[key])
                                                for q in points)], key=lambda p: p["test_ppl"])


def at_reference(points: list[dict], reference: dict) -> list[dict]:
    """Per method, the cheapest run (energy per token) at or below the reference's perplexity."""
    out = []
    for method in sorted({p["method"] for p in points}):
        mine = [p for p in points if p["method"] == method]
        ok = [p for p in mine if p["test_ppl"] <= reference["test_ppl"]]
        best = min(ok, key=lambda p: p["energy_per_token_nj"]) if ok else None
        out.append({"method": method, "reaches": best is not None, "run": (best or {}).get("run"),
                    "best_test_ppl": min(p["test_ppl"] for p in mine), **({k: best[k] for k, _ in METRICS}
                                                                        if best else {})})
    return out


def compare(results: Path | None, packs: Path, runs: Path | None, base: AccelConfig, out_dir: Path,
            hidden: int | None = None, balanced: bool = True, reference_ratio: float = 25, log=print) -> dict:
    """Price every run of ``results`` (or, when None, every finished run under ``runs``) of one
    hidden size (``hidden``; default 200 for a results table, the runs' own when they share one)."""
    from doping.estimate.calibration import silicon_basis
    from doping.pack import read_pack

    if results is not None:
        hidden = 200 if hidden is None else hidden
        rows = load_results(results, hidden)
        source = f"the PTB table {results}"
    elif runs is None:
        raise DopingError("compare needs --results (a PTB table) or --runs (a folder of training runs)")
    else:
        rows = discover_runs(runs)
        sizes = sorted({r["hidden"] for r in rows})
        if hidden is None and len(sizes) > 1:
            raise DopingError(f"runs under {runs} have hidden sizes {', '.join(map(str, sizes))}: pick one with --hidden")
        hidden = sizes[0] if hidden is None else hidden
        rows = [r for r in rows if r["hidden"] == hidden]
        source = f"the runs under {runs}"
    points, skipped = [], []
    for row in rows:
        pack = run_pack(row, packs, runs, log)
        if pack is None:
            skipped.append({"run": row["run"], "method": row["method"], "test_ppl": row["test_ppl"]})
            continue
        log(f"[compare] pricing {row['run']}")
        cost = price_pack(read_pack(pack).layers, base, balanced)
        points.append({"run": row["run"], "method": row["method"], "ratio": row.get("ratio"), "cmr": row.get("cmr"),
                       "test_ppl": row["test_ppl"], "pack": str(pack), **cost})
    dkp = [p for p in points if p["method"] == "dkp" and p["ratio"] == reference_ratio]
    if not dkp:
        raise DopingError(f"{source} has no DKP run at {reference_ratio:g}x for hidden size {hidden} to compare at "
                          "(--reference-ratio picks another)")
    reference = min(dkp, key=lambda p: p["test_ppl"])
    from datetime import date

    report = {"date": str(date.today()), "source": source, "hidden": hidden, "balanced": balanced, "reference": {"run": reference["run"], "ratio": reference_ratio,
                                                                     "test_ppl": reference["test_ppl"]},
              "points": points, "not_priced": skipped, "pareto": {k: [p["run"] for p in pareto(points, k)]
                                                                  for k, _ in METRICS},
              "at_reference": at_reference(points, reference), "silicon_basis": silicon_basis(base.tech_nm)}
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "compare.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    with atomic_path(out_dir / "compare.md") as tmp:
        tmp.write_text(markdown(report))
    _plot(report, out_dir / "compare.png")
    return report


def markdown(r: dict) -> str:
    ref = r["reference"]
    md = [f"Every run of {r.get('source', 'the PTB table')} (hidden {r['hidden']}) as its exported pack on "
          f"{'its own balanced design' if r['balanced'] else 'the base design'}; per token through the whole LSTM "
          "stack, every layer's weights resident on chip (a layer switch is its register words). Reference: the "
          f"best DKP run at {ref['ratio']:g}x, {ref['run']} (test ppl {ref['test_ppl']:.2f}). Silicon figures: "
          f"{r.get('silicon_basis', '45 nm estimator rules')}.", "",
          "| run | method | ratio | test ppl | design | cycles/token | energy/token nJ | latency/token µs | area mm² |",
          "|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(r["points"], key=lambda p: p["test_ppl"]):
        md.append(f"| {p['run']} | {p['method']} | {p['ratio']:g} | {p['test_ppl']:.2f} | {p['design']} | "
                  f"{p['cycles_per_token']} | {p['energy_per_token_nj']:.1f} | {p['latency_per_token_us']:.2f} | "
                  f"{p['area_mm2']:.3f} |")
    for s in r["not_priced"]:
        md.append(f"| {s['run']} | {s['method']} | — | {s['test_ppl']:.2f} | not an accelerator layer | — | — | — | — |")
    md += ["", f"At the reference perplexity ({ref['test_ppl']:.2f}), the cheapest run of each method:", "",
           "| method | reaches it | run | energy/token nJ | latency/token µs | area mm² | its best test ppl |",
           "|---|---|---|---|---|---|---|"]
    for a in r["at_reference"]:
        if a["reaches"]:
            md.append(f"| {a['method']} | yes | {a['run']} | {a['energy_per_token_nj']:.1f} | "
                      f"{a['latency_per_token_us']:.2f} | {a['area_mm2']:.3f} | {a['best_test_ppl']:.2f} |")
        else:
            md.append(f"| {a['method']} | no | — | — | — | — | {a['best_test_ppl']:.2f} |")
    md += ["", "Pareto front (test ppl and each cost): " + "; ".join(f"{k}: {', '.join(v)}"
                                                                    for k, v in r["pareto"].items())]
    return "\n".join(md) + "\n"


def _plot(r: dict, path: Path) -> None:
    from doping.plotting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), dpi=80)
    methods = sorted({p["method"] for p in r["points"]})
    for ax, (key, label) in zip(axes, METRICS):
        for meth in methods:
            pts = [p for p in r["points"] if p["method"] == meth]
            ax.scatter([p[key] for p in pts], [p["test_ppl"] for p in pts], s=18, label=meth)
        front = pareto(r["points"], key)
        ax.plot([p[key] for p in front], [p["test_ppl"] for p in front], "k--", lw=0.8, label="Pareto front")
        ax.axhline(r["reference"]["test_ppl"], color="grey", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test perplexity")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"LSTM LM, hidden {r['hidden']}: cost per token on the generated accelerator vs accuracy", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
