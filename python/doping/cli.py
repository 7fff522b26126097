"""The ``doping`` command line. Every subcommand has ``--help``; errors print one line and exit 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from pathlib import Path

import numpy as np

from doping.config import PRESETS
from doping.errors import DopingError
from doping.fileio import check_output_dir, read_npy_header

PRESET_HELP = (f"preset ({', '.join(PRESETS)}), a .json/.toml config file, or 'fit': the default design with its "
               "buffers sized to --pack")


def _config(spec: str | None, pack: str | None, build: bool = False):
    """The accelerator config of a command: ``--config`` as given, or with ``fit`` the default
    design's buffers grown until every layer of ``pack`` fits (what ``doping flow`` does).
    ``build``: the command generates RTL, so a config the generator will not build is refused here."""
    from doping.config import load_config

    if spec != "fit":
        cfg = load_config(spec)
    elif not pack:
        raise DopingError("--config fit sizes the design to a pack: give --pack")
    else:
        from doping.estimate.baselines import fit_layers
        from doping.pack import read_pack

        cfg = fit_layers(PRESETS["default"], read_pack(pack).layers)
    if build:
        cfg.check_buildable()
    return cfg


def _factor_shapes(text: str | None):
    if text is None:
        return None
    from doping.synth import parse_shape

    parts = text.split(",")
    if len(parts) != 2:
        raise DopingError(f"--factors {text!r} must be two shapes 'M1xN1,M2xN2'")
    return tuple(parse_shape(p) for p in parts)


def _load_int8_batch(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise DopingError(f"input file {p} does not exist")
    try:
        with open(p, "rb") as f:  # the header's claim is checked against the file before allocating
            shape, _, dtype = read_npy_header(f)
            body = p.stat().st_size - f.tell()
        if dtype.hasobject or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != body:
            raise DopingError(f"input file {p}: its .npy header ({dtype}, shape {shape}) does not match its "
                              f"{body} data bytes")
        x = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise DopingError(f"input file {p} is not a readable .npy array: {str(e)[:200]}") from None
    if not isinstance(x, np.ndarray):
        raise DopingError(f"input file {p} holds an archive, expected one .npy array")
    if x.size == 0:
        raise DopingError(f"input file {p} holds an empty batch")
    return x


def _save_npy(path: str, arr: np.ndarray) -> None:
    from doping.fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)


def cmd_pack_synth(args) -> int:
    from doping.pack import totals, write_pack
    from doping.synth import parse_shape, synth_method

    layers = synth_method(args.method, parse_shape(args.shape), args.ratio, seed=args.seed, name=args.name,
                          factor_shapes=_factor_shapes(args.factors), order=args.order)
    write_pack(args.output, layers, provenance={"method": args.method, "source": "synthetic", "seed": args.seed,
                                                "target_ratio": args.ratio})
    t = totals(layers)
    parts = "; ".join(f"{l.name} {l.m}x{l.n}" + (f" A {l.a.shape[0]}x{l.a.shape[1]} B {l.b.shape[0]}x{l.b.shape[1]}"
                                                  if l.has_kp else "") + f" nnz {l.nnz}" for l in layers)
    print(f"wrote {args.output} ({args.method}): {parts}; {t['param_ratio']:.2f}x parameters, "
          f"{t['bit_ratio']:.2f}x bits")
    return 0


def format_summary(s: dict) -> str:
    lines = [f"doping pack v{s['version']}  provenance: {json.dumps(s['provenance'], sort_keys=True)}"]
    for e in s["layers"]:
        c = e["compression"]
        if e["factors"] is None:
            kp = "no Kronecker part"
        else:
            (m1, n1), (m2, n2) = e["factors"]["a"], e["factors"]["b"]
            kp = f"A {m1}x{n1}  B {m2}x{n2}  order {e['order']}"
        source = f"  input: the output of {e['input']}" if e.get("input") else ""
        lines += [
            f"layer {e['name']}: {e['shape'][0]}x{e['shape'][1]}  {kp}{source}",
            f"  overlay: {e['overlay']['nnz']} nonzeros (max {e['overlay']['max_row_nnz']} per row, "
            f"{e['overlay']['empty_rows']} empty rows)",
            f"  compression: {c['param_ratio']:.2f}x parameters ({c['params']} of {c['dense_params']}), "
            f"{c['bit_ratio']:.2f}x stored bits ({c['stored_bits']} of {c['dense_bits']}, indices included)",
        ]
    t = s["totals"]
    lines.append(f"total: {t['param_ratio']:.2f}x parameters, {t['bit_ratio']:.2f}x stored bits")
    return "\n".join(lines)


def cmd_pack_synth_lstm(args) -> int:
    from doping.pack import totals, write_pack
    from doping.synth import synth_lstm

    gates, cells = synth_lstm(args.input, args.hidden, args.layers, args.ratio, seed=args.seed)
    write_pack(args.output, gates, provenance={"method": "dkp", "source": "synthetic", "seed": args.seed,
                                               "target_ratio": args.ratio, "model": "lstm", "input": args.input,
                                               "hidden": args.hidden}, lstm=cells)
    t = totals(gates)
    print(f"wrote {args.output}: a {args.layers}-layer doped LSTM, input {args.input}, hidden {args.hidden} (gate "
          f"layers {', '.join(f'{g.m}x{g.n}' for g in gates)}); {t['param_ratio']:.2f}x parameters")
    return 0


def cmd_pack_inspect(args) -> int:
    from doping.pack import read_pack, summary

    s = summary(read_pack(args.pack))
    print(json.dumps(s, indent=2, sort_keys=True) if args.json else format_summary(s))
    return 0


def cmd_pack_words(args) -> int:
    from doping.loadimage import write_load_image
    from doping.pack import read_pack

    layers = read_pack(args.pack).layers
    cfg = _config(args.config, args.pack)
    _check_fits(cfg, layers)
    meta = write_load_image(layers, cfg, Path(args.output))
    print(f"wrote {args.output}/load.hex, load.bin, load.h, load.json: {meta['words']} words of "
          f"{meta['word_bytes']} bytes, " + ", ".join(f"{x['layer']} (region {x['region']}, {x['words']} words)"
                                                     for x in meta["layers"]))
    return 0


def cmd_golden(args) -> int:
    from doping import golden
    from doping.pack import read_pack

    layer = read_pack(args.pack).layer(args.layer)
    x = _load_int8_batch(args.input)
    y = golden.float_forward(layer, x) if args.float else golden.forward(layer, x)
    if x.ndim == 1:
        y = y[0]
    _save_npy(args.output, y)
    print(f"wrote {args.output}: {'float64 real units' if args.float else 'int8'} {y.shape}")
    return 0


def cmd_demo(args) -> int:
    """``doping demo`` = ``make demo``: the whole flow on the shipped corpus (train a small DKP LSTM,
    export, Verilog, Verilator against golden, estimate, report)."""
    from doping.flow import flow, summary_lines

    r = flow(args.output, ratio=args.ratio, quick=args.quick, log=lambda s: print(s, flush=True))
    print("\n".join(["", "doping demo summary", *summary_lines(r)]))
    return 0 if r.passed else 1


def cmd_data_download(args) -> int:
    from doping.data import download_ptb

    print(f"wrote PTB into {download_ptb(check_output_dir(args.dir))}")
    return 0


def cmd_cache(args) -> int:
    from doping.sim import cache
    from doping.sim.runner import cache_root

    root = cache_root()
    if args.cache_command == "clean":
        stale = cache.sweep_stale(root)
        cap = args.max_mb << 20 if args.max_mb is not None else None
        if cap:
            removed = cache.evict(root, cap)
        else:  # everything not being built now
            removed = [b.path for b in cache.builds(root) if cache.remove_build(b.path)]
        print(f"removed {len(removed)} builds and {len(stale)} leftovers of killed builds from {root}")
        return 0
    found = cache.builds(root)
    total = sum(b.bytes for b in found)
    cap = cache.max_bytes()
    print(f"{root}: {len(found)} builds, {total / 2**20:,.0f} MB (cap {cap >> 20:,} MB, DOPING_CACHE_MAX_MB"
          f"{'; no cap' if not cap else ''})")
    for b in reversed(found):  # most recently used first
        print(f"  {b.path.name:<24} {b.bytes / 2**20:8.1f} MB  last used {time.strftime('%Y-%m-%d %H:%M', time.localtime(b.last_used))}")
    return 0


# `doping train --quick`: a smoke run that says within a minute whether a command line works
QUICK_TRAINING = {"epochs": 1, "max_batches": 20, "eval_tokens": 2000, "curve_tokens": 2000}


def cmd_train(args) -> int:
    from dataclasses import fields

    from doping.train import TrainConfig, train

    opts = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    if args.quick:
        opts.update(QUICK_TRAINING)
    summary = train(TrainConfig.from_dict(opts), args.out, resume=args.resume, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_export(args) -> int:
    from doping.export import export_run

    report = export_run(args.run, args.out, calib_vectors=args.calib_vectors, evaluate_test=not args.no_eval,
                        data=args.data)
    c = report["lstm_compression"]
    print(f"wrote {args.out}: {c['param_ratio']:.2f}x parameters, {c['bit_ratio']:.2f}x stored bits (LSTM gates)")
    return 0


def cmd_rtl(args) -> int:
    from doping.hw.verilog import generate

    cfg = _config(args.config, args.pack, build=True)
    if args.pack:
        from doping.pack import read_pack

        _check_fits(cfg, read_pack(args.pack).layers)
    man = generate(cfg, args.output, axi=args.axi)
    files = man["files"] + (man["ip"]["files"] if args.axi else [])
    if args.lint:
        from doping.hw.tools import lint

        for f in files:
            lint(Path(args.output) / f)
    print(f"wrote {', '.join(f'{args.output}/{f}' for f in files)}"
          + (f", {args.output}/{man['ip']['core_file']} (FuseSoC), register map "
             f"{', '.join(man['ip']['registers'])}" if args.axi else "")
          + f" and manifest.json: {cfg.rows}x{cfg.cols} array, {cfg.lanes} lanes, "
          f"{man['sram_bits_total'] / 8192:.1f} KiB of memories" + (", lint clean" if args.lint else ""))
    return 0


def _check_fits(cfg, layers) -> None:
    """Refuse a pack that does not fit ``cfg`` with the fix: the capacities to raise, with values."""
    from dataclasses import asdict

    from doping.estimate.designs import fit_layers

    try:
        for layer in layers:
            cfg.check(layer)
    except DopingError as e:
        fitted = fit_layers(cfg, layers)
        raise_ = ", ".join(f"{k} = {v}" for k, v in asdict(fitted).items() if v != getattr(cfg, k))
        raise DopingError(f"{e} (values that fit: {raise_})") from None


def cmd_synth(args) -> int:
    from doping.fileio import atomic_path
    from doping.hw.tools import fmax_mhz, yosys_synth
    from doping.hw.verilog import TOP, generate

    if args.liberty is None and (args.sram_lib is not None or args.clock_ns is not None or args.activity is not None
                                 or (args.pack is not None and args.config != "fit")):
        raise DopingError("--clock-ns, --sram-lib, --activity and --pack need --liberty (or --pack with --config fit)")
    if args.hierarchical and args.liberty is None:
        raise DopingError("--hierarchical needs --liberty")
    cfg = _config(args.config, args.pack, build=True)
    if args.liberty is not None:
        from doping.ppa.stdcell import resolve_library

        resolve_library(args.liberty, args.sram_lib)  # a missing library: nothing written
    out = Path(args.output)
    man = generate(cfg, out)
    if args.liberty is not None:
        return _synth_stdcell(args, cfg, out, out / man["files"][0], TOP)
    cells, levels = yosys_synth(out / man["files"][0], TOP, out / "yosys_stat.json")
    fmax = fmax_mhz(levels, cfg.tech_nm)
    report = {"config": cfg.as_dict(), "top": TOP, "modules": cells, "critical_path_levels": levels,
              "fmax_mhz": fmax,
              "tool": "yosys (Debian), synth -run begin:fine + techmap + abc -fast; memories kept as $mem_v2; "
                      "critical path: flatten, memories removed, ltp -noff"}
    with atomic_path(out / "cells.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps({"critical_path_levels": levels, "fmax_mhz": fmax, "clock_mhz": cfg.clock_mhz,
                          "cells": {k: v["cells"] for k, v in cells.items()}, "report": str(out / "cells.json")},
                         indent=2))
        return 0
    for name, mod in cells.items():
        print(f"{name:28s} {mod['cells']:8d} cells")
    print(f"critical path {levels} gate levels -> fmax ~{fmax:.0f} MHz at {cfg.tech_nm} nm "
          f"(config clock {cfg.clock_mhz:g} MHz)")
    print(f"wrote {out / 'cells.json'}")
    return 0


def _synth_stdcell(args, cfg, out: Path, verilog: Path, top: str) -> int:
    from doping.fileio import atomic_path
    from doping.ppa.stdcell import resolve_library, synthesize

    lib = resolve_library(args.liberty, args.sram_lib)
    clock_ns = args.clock_ns if args.clock_ns is not None else lib.target_ns
    activity, source, rates = 0.1 if args.activity is None else args.activity, "assumed", None
    if args.pack is not None and args.activity is None:
        from doping.ppa.activity import pack_activity

        activity, source, rates = pack_activity(args.pack, cfg, args.vectors)
    r = synthesize(verilog, top, lib, clock_ns, out / f"stdcell_{lib.name}", activity=activity,
                   sram_accesses_per_cycle=rates, activity_source=source, hierarchical=args.hierarchical)
    report = r.as_dict()
    with atomic_path(out / f"stdcell_{lib.name}.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    cp = r.critical_path
    print(f"{lib.name} ({r.corner}): {r.cells} cells, {r.cell_area_um2:,.0f} um2 of cells + {r.sram_area_um2:,.0f} um2 "
          f"of SRAM = {r.area_mm2:.4f} mm2")
    print(f"clock {r.clock_ns:g} ns: worst slack {r.worst_slack_ns:+.3f} ns -> fmax {r.fmax_mhz:.0f} MHz; critical path "
          f"{cp['start']} -> {cp['end']} ({cp['levels']} cells)")
    p = r.power_mw
    print(f"power at activity {r.activity:.4g} ({r.activity_source}): {p['total']:.3f} mW (internal {p['internal']:.3f}, switching "
          f"{p['switching']:.3f}, leakage {p['leakage']:.4f}, SRAM {p['sram']:.3f})")
    print(f"wrote {out / f'stdcell_{lib.name}.json'}")
    return 0


def cmd_sim(args) -> int:
    cfg = _config(args.config, args.pack, build=True)
    if args.tokens is not None:
        return _sim_tokens(args, cfg)
    if cfg.lstm_cell:
        raise DopingError("this config is the LSTM top (lstm_cell = 1), which runs whole LSTM steps: give --tokens N")
    from doping.sim.runner import run

    r = run([args.pack], cfg, simulator=args.sim, vectors=args.vectors, seed=args.seed, x_gap=args.x_gap,
            y_stall=args.y_stall, layer=args.layer, resident=args.resident)
    cyc = r.latency_cycles
    runs = [i for i in r.interval_cycles if i is not None]
    interval = float(np.median(runs)) if runs else None
    summary = {"vectors": r.vectors, "mismatches": r.mismatches, "latency_cycles": cyc, "total_cycles": r.total_cycles,
               "interval_cycles": interval, "busy_cycles": r.busy_cycles, "simulator": r.simulator,
               "wall_seconds": r.wall_seconds}
    every = f"; one every {interval:.1f} cycles streaming" if interval is not None else ""
    return _sim_verdict(args.json, summary, r, f"{r.vectors} vectors on {r.simulator}, {r.mismatches} "
                        f"mismatching; latency median {int(np.median(cyc))} cycles (min {min(cyc)}, max {max(cyc)})"
                        f"{every}; {r.total_cycles} cycles in all; {r.wall_seconds:.1f} s",
                        lambda ex: f"vector {ex['vector']} element {ex['element']}: got {ex['got']}, want "
                                   f"{ex['want']} ({ex['elements_wrong']} elements of that vector wrong)")


def _sim_verdict(as_json: bool, summary: dict, r, headline: str, describe) -> int:
    """Print a simulation's summary (JSON, or PASS/FAIL, the headline and the first mismatches);
    exit status 1 on any mismatch."""
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{'PASS' if r.mismatches == 0 else 'FAIL'}: {headline}")
        for ex in r.mismatch_examples[:5]:
            print(f"mismatch: {describe(ex)}")
    return 0 if r.mismatches == 0 else 1


def _sim_tokens(args, cfg) -> int:
    """``doping sim --tokens``: the LSTM top on an LSTM pack (the config as the LSTM top: cell
    unit on, every layer resident)."""
    from doping.estimate.lstm import lstm_config
    from doping.pack import read_pack
    from doping.sim.runner import run_lstm

    if args.layer or args.resident or args.x_gap or args.y_stall:
        raise DopingError("--tokens runs the whole LSTM: --layer, --resident, --x-gap and --y-stall do not apply "
                          "(use --tok-gap and --h-stall)")
    cells = read_pack(args.pack).lstm
    if cells is None:
        raise DopingError(f"{args.pack} has no LSTM section: --tokens needs an LSTM pack (doping pack synth-lstm, or "
                          "doping export of a trained run)")
    r = run_lstm(args.pack, lstm_config(cfg, len(cells)), simulator=args.sim, tokens=args.tokens, seed=args.seed,
                 tok_gap=args.tok_gap, h_stall=args.h_stall)
    summary = {k: getattr(r, k) for k in ("tokens", "steps", "sequences", "mismatches", "cycles_per_token",
                                          "model_cycles_per_token", "cycles_per_step", "model_cycles_per_step",
                                          "simulator", "wall_seconds")}
    return _sim_verdict(args.json, summary, r, f"{r.tokens} tokens in {r.sequences} sequences on "
                        f"{r.simulator}, {r.mismatches} mismatching; cycles per token {r.cycles_per_token} "
                        f"(model {r.model_cycles_per_token}"
                        + ("; the model assumes no gaps or stalls: --tok-gap/--h-stall add cycles"
                           if args.tok_gap or args.h_stall else "") + f"); {r.wall_seconds:.1f} s",
                        lambda ex: f"token {ex['token']} element {ex['element']}: got {ex['got']}, want {ex['want']}")


def cmd_estimate(args) -> int:
    from doping.estimate.baselines import price
    from doping.estimate.price import price_layers
    from doping.estimate.report import format_estimate

    base = _config(args.config, args.pack)
    if args.pack:
        if args.layer or args.ratio:
            raise DopingError("give either a PACK or --layer/--ratio, not both")
        from doping.pack import read_pack

        pack = read_pack(args.pack)
        if pack.lstm is not None:  # the whole LSTM on the LSTM top
            from doping.estimate.lstm import lstm_config

            base = lstm_config(base, len(pack.lstm))
        # check(): a pack that does not fit is an error; the per-token mat-vec stack of an LSTM pack
        # is its gate layers alone, so an LSTM pack reports the whole LSTM instead
        r = price_layers(pack.layers, base, cells=pack.lstm, tokens=pack.lstm is None)
    else:
        if not (args.layer and args.ratio):
            raise DopingError("give a PACK, or --layer MxN and --ratio R")
        from doping.synth import parse_shape

        m, n = parse_shape(args.layer)
        r = price(m, n, args.ratio, args.method, base)
    from doping.estimate.calibration import silicon_basis

    if args.json:
        print(json.dumps({**r.to_json(), "silicon_basis": silicon_basis(base.tech_nm)}, indent=2))
    else:
        source = ("config fit: the default design's buffers sized to the pack" if args.config == "fit" else
                  f"config {args.config or 'default'}")
        print(format_estimate(r, source))
        print(f"({silicon_basis(base.tech_nm)})")
    return 0


def cmd_sweep(args) -> int:
    from doping.config import load_config
    from doping.estimate.report import sweep
    from doping.synth import parse_shape

    m, n = parse_shape(args.layer)
    try:
        ratios = [float(r) for r in args.ratios.split(",")]
    except ValueError:
        raise DopingError(f"--ratios {args.ratios!r} must be comma-separated numbers") from None
    rows = sweep(m, n, ratios, args.methods.split(","), load_config(args.config), Path(args.output),
                 balanced=args.balanced)
    print((Path(args.output) / "sweep.md").read_text())
    print(f"wrote {args.output}/sweep.csv, sweep.md, sweep.png ({len(rows)} points)")
    return 0


def cmd_compare(args) -> int:
    from doping.config import load_config
    from doping.estimate.compare import compare

    r = compare(Path(args.results) if args.results else None, Path(args.packs),
                Path(args.runs) if args.runs else None, load_config(args.config),
                Path(args.output), hidden=args.hidden, balanced=not args.base_design,
                reference_ratio=args.reference_ratio, log=lambda s: print(s, flush=True))
    print((Path(args.output) / "compare.md").read_text())
    print(f"wrote {args.output}/compare.json, compare.md, compare.png ({len(r['points'])} runs priced)")
    return 0


def cmd_dse(args) -> int:
    from doping.config import load_config
    from doping.estimate.dse import dse
    from doping.pack import read_pack

    layer = read_pack(args.pack).layer(args.layer)
    cfg = load_config(args.config)
    r = dse(layer, cfg, Path(args.output), latency_us=args.latency_us)

    def design(p):
        return f"{p.rows}x{p.cols} array, {p.lanes} lanes, {p.stream_bytes} elements a beat, batch {p.batch}"

    b, s, z, q = r.best_edp, r.smallest_area_meeting_latency, r.balanced, r.square_balanced
    print(f"min energy x delay: {design(b)}: {b.latency_us:.2f} us, {b.energy_nj:.1f} nJ, {b.area_mm2:.3f} mm^2")
    print(f"balanced (most vectors/s per mm^2 when streaming): {design(z)}: {z.interval_cycles:g} cycles per vector, "
          f"{z.area_mm2:.3f} mm^2; busy share of the interval: "
          + ", ".join(f"{k} {v:.0%}" for k, v in z.busy.items()) + f" (bound by {z.binding})")
    if ns := r.search.get("non_square"):
        print(f"searched {r.search['square_points']} square-array points and {ns['candidates']} non-square ones "
              f"({ns['estimated']} estimated, {ns['pruned']} ruled out by their interval bound x area) in "
              f"{r.search['seconds']:.0f} s; best square: {design(q)}: {q.interval_cycles:g} cycles, "
              f"{q.area_mm2:.3f} mm^2")
    if args.latency_us is not None:
        print(f"smallest area meeting {args.latency_us} us: {design(s)}: {s.area_mm2:.3f} mm^2, {s.latency_us:.2f} us"
              if s else f"no design point meets {args.latency_us} us")
    from doping.fileio import atomic_path

    print(f"({r.silicon_basis})")
    with atomic_path(Path(args.output) / "dse.json") as tmp:
        tmp.write_text(json.dumps(r.to_json(), indent=2))
    print(f"wrote {args.output}/dse.json and dse.png ({len(r.pareto)} Pareto points)")
    return 0


def cmd_flow(args) -> int:
    from doping.flow import flow, summary_lines

    r = flow(args.output, checkpoint=args.checkpoint, pack=args.pack, ratio=args.ratio, config=args.config,
             vectors=args.vectors, tokens=args.tokens, quick=args.quick, log=lambda s: print(s, flush=True))
    print("\n".join(["", "doping flow summary", *summary_lines(r)]))
    return 0 if r.passed else 1


def _add_train_parser(sub) -> None:
    from dataclasses import MISSING, fields

    from doping.train_config import TrainConfig

    t = sub.add_parser("train", help="train a (compressed) LSTM language model",
                       description="Train a 2-layer LSTM LM on a PTB-format corpus with compressed gate matrices. "
                                   "Writes config.json, metrics.json, checkpoint.pt, best.pt and final.json into OUT. "
                                   "Runs under torchrun as DDP (gloo).")
    t.add_argument("-o", "--out", required=True, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--quick", action="store_true", help="smoke run: 1 epoch of at most 20 batches, validation and test "
                                                        "on 2,000 tokens (overrides those options)")
    helps = {
        "data": "corpus folder with ptb.{train,valid,test}.txt, or 'tiny' (shipped)",
        "ratio": "compression ratio of the LSTM gate matrices",
        "method": "dense, dkp, kp, kp_sum (sum of Kronecker products), prune, lmf or hmd",
        "cmr": "co-matrix regularisation: none, dropout (elementwise on S x), path (overlay path dropped per sample "
               "and step), seq (per sample for the whole sequence), seq-unscaled (the same without the "
               "1/(1-p) rescaling of the kept S), dropconnect (overlay entries dropped)",
        "cmr_schedule": "fixed (cmr-p throughout), ramp (raised with the pruned fraction, off after annealing) or "
                        "fall (full until annealing starts, lowered linearly to 0 at its end)",
        "factors": "Kronecker factor shapes M1xN1,M2xN2 (dkp, kp, kp_sum; default: the rule or --kp-share)",
        "kp_share": "dkp: pick factor shapes giving the Kronecker part about this fraction of the budget (0: rule)",
        "hmd_split": "hmd: fraction of the budget in dense rows (spread over the four gates by row norm)",
        "lr_schedule": "step (decay every epoch after decay-after), plateau (decay when validation stops improving) "
                       "or converge (held while annealing, then decayed every epoch)",
        "stop_lr": "plateau, converge: stop once the lr falls below this (0: run all epochs)",
        "stop_gain": "converge: stop once two epochs in a row improve validation by less than this fraction",
        "kp_warmup": "dkp with --init-from: fraction of all steps with the overlay path off (Kronecker-first), "
                     "then S = W_dense - kron(A, B) and annealing (needs --anneal-start >= it)",
        "device": "cpu, cuda or auto",
        "init_from": "start from this dense run (nearest Kronecker / SVD / copy init)",
        "overlay_init": "initial overlay with --init-from: residual or zero",
        "anneal_start": "annealing start, fraction of all steps", "anneal_end": "annealing end, fraction of all steps",
        "max_batches": "limit batches per epoch (0: all)", "threads": "torch threads (0: default)",
        "eval_tokens": "validation and test perplexity on the first this many tokens of each split (0: all)",
        "decay_after": "epochs at full lr before decaying by lr_decay each epoch",
        "hidden": "LSTM hidden units per layer (200: PTB small, 650: medium)", "layers": "LSTM layers",
        "dropout": "dropout on the embeddings, between LSTM layers and before the softmax",
        "bptt": "time steps per truncated back-propagation window",
        "batch": "training sequences per batch", "eval_batch": "sequences per batch when evaluating",
        "epochs": "passes over the training text (the most; plateau and converge may stop earlier)",
        "lr": "SGD learning rate", "lr_decay": "factor the lr is multiplied by at each decay",
        "clip": "gradient-norm clipping threshold", "init_scale": "weights initialised uniform in +-this",
        "cmr_p": "co-matrix regularisation probability (0: off)",
        "anneal_every": "training steps between two tightenings of the overlay's sparsity mask",
        "curve_every": "steps between two CMA-curve points (test ppl with and without S; 0: none)",
        "curve_tokens": "tokens each CMA-curve point evaluates", "seed": "random seed (data order, init, masks)",
    }
    for f in fields(TrainConfig):
        kind = {"int": int, "float": float}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
        default = f.default if f.default is not MISSING else None
        t.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=None,
                       help=f"{helps[f.name]} (default {default})")
    t.set_defaults(func=cmd_train)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block): ``doping sim: error: ...``, exit 2;
    an unknown option gets the closest option of the command it was given to ("did you mean")."""

    argv: list[str] = []  # the command line being parsed (set by ``main``)

    def error(self, message):
        hint = ""
        if message.startswith("unrecognized arguments:"):
            hint = _did_you_mean(self, message.split(":", 1)[1].split())
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")


def _did_you_mean(root: argparse.ArgumentParser, unknown: list[str]) -> str:
    """"; did you mean --x?" for the first unknown option close to one of the options of the
    (sub)command the command line names."""
    import difflib

    parser = root
    for token in _Parser.argv:  # follow the subcommands named on the command line
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or token not in sub.choices:
            continue
        parser = sub.choices[token]
    options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    for bad in unknown:
        if bad.startswith("-"):
            close = difflib.get_close_matches(bad.split("=", 1)[0], options, n=1, cutoff=0.6)
            if close:
                return f"; did you mean {close[0]}?"
    return ""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="doping", description="Doped Kronecker compression, from training to silicon numbers.")
    p.add_argument("--version", action="version", version=f"doping {__import__('doping').__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pk = sub.add_parser("pack", help="create and inspect model packs", description="Create and inspect model packs.")
    pks = pk.add_subparsers(dest="pack_command", required=True, metavar="SUBCOMMAND")
    s = pks.add_parser("synth", help="make a random layer of a method meeting a compression ratio",
                       description="Make a valid random layer whose parameter count meets RATIO: doped Kronecker "
                                   "(dkp) or a baseline on the same hardware (kp: factors only; prune: sparse only; "
                                   "dense: ratio 1; lmf: two chained low-rank layers).")
    s.add_argument("--method", choices=["dkp", "kp", "prune", "dense", "lmf"], default="dkp",
                   help="compression method (default dkp)")
    s.add_argument("--shape", required=True, help="layer shape MxN, e.g. 2600x1300")
    s.add_argument("--ratio", required=True, type=ratio_float, help="parameter compression ratio, e.g. 25")
    s.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    s.add_argument("--factors", help="explicit factor shapes 'M1xN1,M2xN2' (default: the documented rule)")
    s.add_argument("--order", choices=["AX", "XB"], help="GEMM association order (default: fewer MACs)")
    s.add_argument("--name", default="synth", help="layer name (default synth)")
    s.add_argument("-o", "--output", required=True, help="pack file to write")
    s.set_defaults(func=cmd_pack_synth)
    sl = pks.add_parser("synth-lstm", help="make a random doped LSTM (gate layers and integer cells)",
                        description="Make a random doped LSTM stack: per layer a DKP gate layer (4H x (I+H)) at RATIO "
                                    "and its integer cell (bias, activation tables, requantisations), calibrated like "
                                    "an exported model (docs/numerics.md §9).")
    sl.add_argument("--input", required=True, type=positive_int, help="input size I of the first layer")
    sl.add_argument("--hidden", required=True, type=positive_int, help="hidden size H of every layer")
    sl.add_argument("--layers", type=positive_int, default=1, help="LSTM layers (default 1)")
    sl.add_argument("--ratio", required=True, type=ratio_float, help="parameter compression ratio of each gate layer")
    sl.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    sl.add_argument("-o", "--output", required=True, help="pack file to write")
    sl.set_defaults(func=cmd_pack_synth_lstm)
    i = pks.add_parser("inspect", help="summarise a pack", description="Validate a pack and summarise it.")
    i.add_argument("pack", help="pack file")
    i.add_argument("--json", action="store_true", help="print machine-readable JSON")
    i.set_defaults(func=cmd_pack_inspect)

    w = pks.add_parser("words", help="write a pack's load stream as $readmemh hex, binary and a C array",
                       description="Write the load words that program a pack into the accelerator (every layer in "
                                   "its own resident region when the config holds them all, else the first) as "
                                   "load.hex ($readmemh, one 96-bit word a line), load.bin, load.h (C array) and "
                                   "load.json (which layer is where), for a testbench or firmware without Python.")
    w.add_argument("pack", help="pack file")
    w.add_argument("--config", default="fit", help=PRESET_HELP + " (default: fit)")
    w.add_argument("-o", "--output", required=True, help="output folder")
    w.set_defaults(func=cmd_pack_words)

    g = sub.add_parser("golden", help="run the golden model on a batch of int8 vectors",
                       description="Run the bit-exact golden model (or the float reference) of a pack's layer.")
    g.add_argument("pack", help="pack file")
    g.add_argument("--input", required=True, help=".npy int8 array, shape (batch, n) or (n,)")
    g.add_argument("--output", required=True, help=".npy file to write: int8 (batch, m), or float64 with --float")
    g.add_argument("--float", action="store_true", help="run the float reference instead (real units)")
    g.add_argument("--layer", help="layer name (default: the first)")
    g.set_defaults(func=cmd_golden)

    dt = sub.add_parser("data", help="corpora", description="Fetch the corpora training reads.")
    dts = dt.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    dd = dts.add_parser("download", help="fetch PTB (Mikolov's simple-examples) into DIR",
                        description="Download Mikolov's simple-examples archive and extract ptb.{train,valid,test}.txt "
                                    "into DIR (needs network; otherwise copy the three files there by hand).")
    dd.add_argument("dir", help="folder to write ptb.train.txt, ptb.valid.txt, ptb.test.txt into")
    dd.set_defaults(func=cmd_data_download)
    ca = sub.add_parser("cache", help="the simulator-build cache: info, clean",
                        description="Simulator builds are cached per user ($DOPING_CACHE, else ~/.cache/doping/sim) "
                                    "and kept under $DOPING_CACHE_MAX_MB (default 8192; least recently used first).")
    cas = ca.add_subparsers(dest="cache_command", required=True, metavar="SUBCOMMAND")
    cas.add_parser("info", help="where the cache is, its builds and their sizes").set_defaults(func=cmd_cache)
    cc = cas.add_parser("clean", help="remove builds (all, or the least recently used down to --max-mb) and what "
                                      "killed builds left")
    cc.add_argument("--max-mb", type=non_negative_int, help="keep the most recently used builds up to this many MB")
    cc.set_defaults(func=cmd_cache)
    _add_train_parser(sub)
    e = sub.add_parser("export", help="export a trained dkp/kp run to a model pack",
                       description="Quantise a trained run's LSTM gate matrices to int8, write a model pack, and report "
                                   "test perplexity in float and through the golden model's integer arithmetic.")
    e.add_argument("run", help="run folder written by `doping train`")
    e.add_argument("--out", required=True, help="pack file to write")
    e.add_argument("--calib-vectors", type=positive_int, default=4096, help="gate input vectors for calibration (default 4096)")
    e.add_argument("--no-eval", action="store_true", help="skip the test-set perplexity evaluation")
    e.add_argument("--data", help="corpus folder (default: the one the run's config names; a shipped model's "
                                  "path may not exist here)")
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("rtl", help="generate the accelerator's Verilog and design manifest",
                       description="Generate deterministic Verilog (doping_accel.v) and manifest.json for a config.")
    r.add_argument("--config", help=PRESET_HELP)
    r.add_argument("--pack", help="check that this pack fits the config before generating")
    r.add_argument("--lint", action="store_true", help="run verilator --lint-only on the result")
    r.add_argument("--axi", action="store_true", help="also write the AXI IP (doping_accel_axi.v: aclk / aresetn, "
                                                      "AXI4-Stream s_axis_load, s_axis_x, m_axis_y, AXI4-Lite "
                                                      "s_axil registers), its FuseSoC core file and register map "
                                                      "(csr.md, csr.json, doping_csr.h)")
    r.add_argument("-o", "--output", required=True, help="output folder")
    r.set_defaults(func=cmd_rtl)
    y = sub.add_parser("synth", help="yosys cell counts and critical path of the generated accelerator",
                       description="Generate the Verilog, count gate-level cells per module with yosys "
                                   "(memories kept as macros) and measure the longest register-to-register "
                                   "gate chain (critical_path_levels) and the clock it allows (fmax_mhz: one "
                                   "FO4 delay per level plus 3 for the register, docs/hardware.md); writes "
                                   "cells.json.")
    y.add_argument("--config", help=PRESET_HELP)
    y.add_argument("-o", "--output", default="build/synth", help="output folder (default build/synth)")
    y.add_argument("--json", action="store_true", help="print critical_path_levels, fmax_mhz and cell counts as JSON")
    y.add_argument("--liberty", help="map to a real cell library and time it with OpenSTA: sky130 (shipped), nangate45 "
                                     "(from DOPING_PDK), osu018 (Debian qflow-tech-osu018) or a Liberty file")
    y.add_argument("--clock-ns", type=float, help="with --liberty: clock period to map and time at (default: the "
                                                   "library's target, 3 ns nangate45, 10 ns sky130 and osu018, "
                                                   "5 ns a .lib)")
    y.add_argument("--sram-lib", nargs="*", help="with --liberty: SRAM macro Liberty files to build memories from "
                                                 "(default: the library's own; none: flip-flops)")
    y.add_argument("--activity", type=float, help="with --liberty: toggles per net per clock for the power report "
                                                  "(default 0.1)")
    y.add_argument("--pack", help="with --liberty: measure the activity from a Verilator run of this pack (waveforms; "
                                  "unless --activity is given) and the SRAM accesses from its cycle model; with "
                                  "--config fit: the pack the design is sized to")
    y.add_argument("--vectors", type=vectors_int, default=8, help="with --pack: vectors of the activity run (default 8)")
    y.add_argument("--hierarchical", action="store_true",
                   help="with --liberty: map each module (unit, lane, array) on its own instead of the flattened "
                        "design: faster, but nets crossing modules are not buffered (a pessimistic clock)")
    y.set_defaults(func=cmd_synth)

    sm = sub.add_parser("sim", help="simulate the generated Verilog on a pack and check it against golden",
                        description="Build the accelerator for a config (cached), run N random vectors of the pack's "
                                    "layer through it under cocotb, compare every output with the golden model.")
    sm.add_argument("--pack", required=True, help="model pack")
    sm.add_argument("--config", help=PRESET_HELP)
    sm.add_argument("--sim", choices=["verilator", "icarus"], default="verilator", help="simulator (default verilator)")
    sm.add_argument("--vectors", type=vectors_int, default=10, help="random int8 input vectors (default 10)")
    sm.add_argument("--seed", type=seed_int, default=0)
    sm.add_argument("--x-gap", type=probability, default=0.0, help="probability of an idle cycle on the x stream, "
                                                                    "in [0, 1)")
    sm.add_argument("--y-stall", type=probability, default=0.0, help="probability of y.ready low in a cycle, in [0, 1)")
    sm.add_argument("--layer", help="run only this layer (default: every layer in order; a chained layer takes "
                                    "the design's outputs of its input layer)")
    sm.add_argument("--resident", action="store_true", help="load every layer of the pack once into its own region "
                                                            "(the config's resident_layers must hold them) and "
                                                            "switch between them by register words")
    sm.add_argument("--tokens", type=positive_int, help="run the pack's whole LSTM on the LSTM top: this many tokens "
                                                        "in random sequences (state reset between them), checked "
                                                        "against the golden integer LSTM")
    sm.add_argument("--tok-gap", type=probability, default=0.0, help="with --tokens: probability of an idle cycle on "
                                                                     "the token stream")
    sm.add_argument("--h-stall", type=probability, default=0.0, help="with --tokens: probability of h.ready low")
    sm.add_argument("--json", action="store_true", help="print JSON: vectors, mismatches, latency_cycles (each "
                                                        "vector's first x to last y; vectors overlap), total_cycles, "
                                                        "interval_cycles (median over layer runs of the mean cycles "
                                                        "between consecutive vectors' last y), busy_cycles (per unit, "
                                                        "per pack), simulator; with --tokens: "
                                                        "tokens, mismatches, cycles_per_token (median interval "
                                                        "between tokens; with lstm_batch B, steps of B tokens: "
                                                        "cycles_per_step / B), model_cycles_per_token, "
                                                        "cycles_per_step, model_cycles_per_step, simulator")
    sm.set_defaults(func=cmd_sim)

    es = sub.add_parser("estimate", help="cycles, SRAM, energy, area, power of a pack or a (shape, ratio, method)",
                        description="Estimate a pack on the generated accelerator, or a method's synthetic pack of "
                                    "a shape and ratio (dkp, kp, prune, dense, lmf: every method runs on the same "
                                    "design, priced the same way). A pack with an LSTM section is priced on the LSTM top "
                                    "(the config with lstm_cell = 1 and every layer resident).")
    es.add_argument("pack", nargs="?", help="model pack (all its layers, one after another)")
    es.add_argument("--layer", help="layer shape MxN (instead of a pack)")
    es.add_argument("--ratio", type=ratio_float, help="compression ratio (with --layer)")
    es.add_argument("--method", default="dkp", help="method of the synthetic pack with --layer: dkp, kp, prune, "
                                                    "dense or lmf (default dkp)")
    es.add_argument("--config", help="preset or config file (with --layer, buffers grow to fit)")
    es.add_argument("--json", action="store_true", help="JSON (doping.estimate.results.ModelEstimate) with keys "
                                                        "cycles (one vector from idle), interval_cycles (steady "
                                                        "state), latency_cycles, utilisation (array_kp, lanes, "
                                                        "interval), clock_mhz, sram_bits, sram_kib, energy_pj, "
                                                        "area_mm2, power_mw (streaming), breakdown, latency_us, "
                                                        "throughput_vectors_per_s, config, layers (each layer's "
                                                        "estimate), per_token (multi-layer packs: every layer per "
                                                        "token), lstm (an LSTM pack: the whole LSTM on the LSTM top) "
                                                        "and cycles_per_token (of either, else null)")
    es.set_defaults(func=cmd_estimate)
    sw = sub.add_parser("sweep", help="estimate across compression ratios and methods (CSV, markdown, plots)",
                        description="Sweep compression ratios for several methods on one layer shape; every point "
                                    "is the method's synthetic pack on the generated accelerator.")
    sw.add_argument("--layer", required=True, help="layer shape MxN")
    sw.add_argument("--ratios", default="5,10,25,50,100,200", help="comma-separated ratios")
    sw.add_argument("--methods", default="dkp,dense,prune,lmf,kp", help="comma-separated methods")
    sw.add_argument("--config", help="base preset or config file")
    sw.add_argument("--balanced", action="store_true", help="each point on its own balanced design (array shape "
                                                            "and lanes with the least interval x area), not the "
                                                            "base config with its buffers fitted")
    sw.add_argument("-o", "--output", default="build/sweep", help="output folder")
    sw.set_defaults(func=cmd_sweep)
    cp = sub.add_parser("compare", help="cost per token against test perplexity for every trained run (yours or the "
                                        "PTB table)",
                        description="Price every finished run under --runs (or every run of a PTB table, --results) "
                                    "as its exported pack on the generated "
                                    "accelerator (each on its own balanced design, per token through every layer, all "
                                    "layers resident: a layer switch is its register words) and set it against its test perplexity: table, Pareto fronts, plot, and "
                                    "what each method costs at the best DKP run's perplexity.")
    cp.add_argument("--results", help="a PTB table's results, e.g. docs/ptb_results.json from bench/ptb_table.py "
                                      "(default: every finished run under --runs)")
    cp.add_argument("--packs", default="build/packs", help="folder of <run>.dpack (missing ones are exported)")
    cp.add_argument("--runs", help="folder of training runs (its runs are the rows without --results; missing packs "
                                   "are exported from them)")
    cp.add_argument("--hidden", type=positive_int, help="LSTM hidden size to compare (default: 200 for a table, the "
                                                        "runs' own size without one)")
    cp.add_argument("--reference-ratio", type=ratio_float, default=25.0,
                    help="compare at the best DKP run of this ratio (default 25)")
    cp.add_argument("--config", help="base preset or config file (tech node, clock, capacities)")
    cp.add_argument("--base-design", action="store_true", help="price every run on the base config with fitted "
                                                                "buffers, not on its own balanced design")
    cp.add_argument("-o", "--output", default="build/compare", help="output folder")
    cp.set_defaults(func=cmd_compare)
    ds = sub.add_parser("dse", help="array shape, lane count, stream width and batch for a pack's layer (energy x "
                                    "delay, Pareto, balanced)",
                        description="Design-space exploration over array shapes (square, and non-square ones "
                                    "pruned by a bound on interval x area), lane counts and stream widths "
                                    "(elements a beat), and batches 2, 4, 8 where the Kronecker GEMMs or the gather "
                                    "lanes bind.")
    ds.add_argument("pack")
    ds.add_argument("--layer", help="layer name (default: the first)")
    ds.add_argument("--latency-us", type=finite_float, help="latency bound for the smallest-area design")
    ds.add_argument("--config", help="base preset or config file")
    ds.add_argument("-o", "--output", default="build/dse", help="output folder")
    ds.set_defaults(func=cmd_dse)

    fl = sub.add_parser("flow", help="the whole job: model -> pack -> Verilog -> simulation -> estimate -> report",
                        description="Export (or train a small DKP model on the shipped corpus), generate and lint the "
                                    "Verilog, verify it under Verilator against the golden model, estimate, and write "
                                    "report.md/.html/.json. Stages whose inputs are unchanged are reused.")
    src = fl.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="training run folder to export")
    src.add_argument("--pack", help="model pack to use as is")
    fl.add_argument("--ratio", type=ratio_float, help="compression ratio when the flow trains (default 4)")
    fl.add_argument("--config", help="accelerator preset or config file (default: sized to the pack)")
    fl.add_argument("--vectors", type=vectors_int, default=20, help="random vectors per layer in simulation (default 20)")
    fl.add_argument("--tokens", type=positive_int, default=20, help="tokens through the LSTM top when the pack has an "
                                                                    "LSTM section (default 20)")
    fl.add_argument("--quick", action="store_true", help="smoke run: one training epoch when it trains, 4 vectors "
                                                         "per layer and 4 tokens")
    fl.add_argument("-o", "--output", default="build/flow", help="output folder (default build/flow)")
    fl.set_defaults(func=cmd_flow)

    d = sub.add_parser("demo", help="the main job on embedded defaults (what `make demo` runs)",
                       description="The whole flow on the shipped corpus: train a small DKP LSTM at RATIO, export its "
                                   "pack with the integer LSTM, generate and lint the Verilog, check it under Verilator "
                                   "against the golden model (gate mat-vecs and the LSTM token by token), estimate, and "
                                   "write report.{md,html,json}. Same as `doping flow -o OUT --ratio RATIO`.")
    d.add_argument("-o", "--output", default="build/demo", help="output folder (default build/demo)")
    d.add_argument("--ratio", type=ratio_float, default=4.0, help="compression ratio (default 4)")
    d.add_argument("--quick", action="store_true", help="smoke run: one training epoch, 4 vectors per layer, 4 tokens")
    d.set_defaults(func=cmd_demo)
    return p


def _on_sigint(signum, frame):
    from doping.fileio import deferred

    if not deferred(signum):
        raise KeyboardInterrupt


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``finally`` and atomic write cleans up."""


def _on_sigterm(signum, frame):
    from doping.fileio import deferred

    if deferred(signum):  # inside fileio.signals_held: raised when the held step ends
        return
    # an object interrupted half way through its constructor (e.g. zipfile.ZipFile) may fail in its
    # finaliser while the stack unwinds: the process is terminating, "doping: terminated" says so
    sys.unraisablehook = lambda unraisable: None
    raise Terminated()


def main(argv=None) -> int:
    import signal

    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):  # `doping` alone: the help, not an error
        parser.print_help()
        return 0
    _Parser.argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    from doping.progress import enable

    enable()
    previous, unraisable, terminated = None, sys.unraisablehook, False
    if threading.current_thread() is threading.main_thread():
        # SIGINT only where Python's own handler has it (an ignored SIGINT, `cmd &`, stays ignored)
        sigint = _on_sigint if signal.getsignal(signal.SIGINT) is signal.default_int_handler else None
        previous = signal.signal(signal.SIGTERM, _on_sigterm), sigint and signal.signal(signal.SIGINT, sigint)
    try:
        for name in ("output", "out"):
            value = getattr(args, name, None)
            if isinstance(value, str) and not value.strip():
                raise DopingError(f"the --{name} path is empty")
            if value is not None and name in OUTPUT_FOLDERS.get(args.command, ()):
                check_output_dir(value)
        return args.func(args)
    except DopingError as e:
        print(f"doping: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `doping ... | head`: the reader has what it wanted; no error, no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # read-only folder, disk full, a path that is not what it should be
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"doping: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except MemoryError:
        print("doping: error: out of memory", file=sys.stderr)
        return 2
    except Terminated:
        terminated = True
        kill_descendants()
        print("doping: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        kill_descendants()
        print("doping: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous[0])
            if previous[1] is not None:
                signal.signal(signal.SIGINT, previous[1])
        if not terminated:  # once terminated, finalisers stay quiet until the process ends
            sys.unraisablehook = unraisable


def kill_descendants() -> None:
    """SIGTERM every process below this one (a simulator build's make and compilers): a stopped
    doping leaves no orphans. Linux /proc; elsewhere nothing to do."""
    import os
    import signal

    children: dict[int, list[int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(d.name))
        except (OSError, IndexError, ValueError):
            continue
    todo, seen = list(children.get(os.getpid(), [])), []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += children.get(pid, [])
    for pid in seen:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def _one_line(text: str) -> str:
    """Messages are one line: a multi-line tool log is cut to its first lines, joined."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[:6])[:2000] if lines else text


#: commands whose -o/--output/--out is a folder (the others write one file)
OUTPUT_FOLDERS = {"rtl": ("output",), "synth": ("output",), "sweep": ("output",), "dse": ("output",),
                  "compare": ("output", "packs"),
                  "flow": ("output",), "demo": ("output",), "train": ("out",)}


def positive_int(text: str) -> int:
    v = _int_arg(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def non_negative_int(text: str) -> int:
    v = _int_arg(text)
    if not 0 <= v <= 1 << 30:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..2^30, got {text!r}")
    return v


#: The most random vectors one simulation or flow takes (a run of this many takes minutes).
MAX_VECTORS = 100_000


def vectors_int(text: str) -> int:
    v = positive_int(text)
    if v > MAX_VECTORS:
        raise argparse.ArgumentTypeError(f"at most {MAX_VECTORS} vectors, got {text!r}")
    return v


def seed_int(text: str) -> int:
    v = _int_arg(text)
    if not 0 <= v < 2 ** 32:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..2^32-1, got {text!r}")
    return v


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def probability(text: str) -> float:
    """A per-cycle probability in [0, 1): 1 would stall a stream forever."""
    v = finite_float(text)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1), got {text!r}")
    return v


def finite_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def ratio_float(text: str) -> float:
    v = finite_float(text)
    if v < 1.0:
        raise argparse.ArgumentTypeError(f"compression ratio must be >= 1, got {text!r}")
    return v


if __name__ == "__main__":
    sys.exit(main())
