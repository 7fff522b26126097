"""The main job end to end: model -> pack -> Verilog -> simulation against golden -> estimate ->
report (``doping flow``). Each stage records a fingerprint of its inputs in ``OUT/.stages`` and is
skipped when they are unchanged and its outputs exist."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from doping.arch import PHASES
from doping.config import AccelConfig, load_config
from doping.errors import DopingError
from doping.estimate.calibration import silicon_basis
from doping.flow_report import FlowReport, LayerRow, LayerSim, LSTMReport, LSTMSim, PerVector, Verification
from doping.hw import source_digest

#: Base accelerator for the flow when no config is given: buffers grow to fit the pack.
FLOW_BASE = AccelConfig(rows=4, cols=4, lanes=4, max_m=64, max_n=64, max_factor=64, max_intermediate=64,
                        max_nnz=1024)
TINY_TRAINING = dict(data="tiny", method="dkp", hidden=32, bptt=20, batch=20, eval_batch=10, epochs=4, lr=20.0,
                     decay_after=2, cmr="dropout", cmr_p=0.3, anneal_start=0.0, anneal_end=0.5, threads=2)
QUICK_CHECKS = 4  # --quick: vectors per layer and tokens through the LSTM in simulation


def _digest(*parts) -> str:
    h = hashlib.sha1()
    for p in parts:
        if isinstance(p, Path) and p.is_file():
            h.update(p.read_bytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()


class Stages:
    """The flow's stages: each recorded with the fingerprint of its inputs in ``OUT/.stages`` and
    reused when unchanged; a running stage says so every ``HEARTBEAT_S`` seconds, so that no stage
    is silent for longer (a Verilator build, an export's evaluation)."""

    HEARTBEAT_S = 5.0

    def __init__(self, out: Path, log):
        self.dir = out / ".stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = log

    @contextlib.contextmanager
    def _heartbeat(self, name: str, t0: float):
        import threading

        done = threading.Event()

        def beat():
            while not done.wait(self.HEARTBEAT_S):
                self.log(f"[{name}] still running ({time.time() - t0:.0f} s)")

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def run(self, name: str, fingerprint: str, outputs: list[Path], fn):
        stamp = self.dir / f"{name}.json"
        if stamp.is_file() and all(p.exists() for p in outputs):
            try:
                saved = json.loads(stamp.read_text())
                fresh = isinstance(saved, dict) and saved.get("fingerprint") == fingerprint and "result" in saved
            except (ValueError, UnicodeDecodeError, OSError):
                fresh = False  # a truncated or foreign record: the stage simply runs again
            if fresh:
                self.log(f"[{name}] unchanged, reused")
                return saved["result"]
        t0 = time.time()
        self.log(f"[{name}] running ...")
        with self._heartbeat(name, t0):
            result = fn()
        from doping.fileio import atomic_path

        with atomic_path(stamp) as tmp:
            tmp.write_text(json.dumps({"fingerprint": fingerprint, "result": result}, default=str))
        self.log(f"[{name}] done in {time.time() - t0:.1f} s")
        return result


def flow(out: str | Path, checkpoint: str | None = None, pack: str | None = None, ratio: float | None = None,
         config: str | None = None, vectors: int = 20, tokens: int = 20, quick: bool = False, log=print) -> FlowReport:
    """The whole job into folder ``out``, stage by stage (each skipped when its inputs are
    unchanged): the model and its pack, the design, the Verilog, the gate mat-vecs and the LSTM in
    simulation against golden, the estimate, the report. Returns the report. ``quick``: a smoke
    run, one training epoch (when it trains) and ``QUICK_CHECKS`` vectors and tokens at most."""
    if quick:
        vectors, tokens = min(vectors, QUICK_CHECKS), min(tokens, QUICK_CHECKS)
    out = Path(out)
    _check_inputs(out, checkpoint, pack, ratio, config)
    st = Stages(out, log)
    pack_path, train_info = _model_and_pack(st, out, checkpoint, pack, ratio, log, epochs=1 if quick else None)
    from doping.pack import read_pack, summary

    pk = read_pack(pack_path)
    cells = _lstm_to_run(pk, log)
    cfg = _design(pk.layers, cells, config)
    rtl_dir = out / "rtl"
    verilog = rtl_dir / "doping_accel.v"
    st.run("rtl", _digest(cfg.as_dict(), source_digest()), [verilog], lambda: _rtl(cfg, rtl_dir))
    sim = [LayerSim.from_json(d) for d in st.run(
        "sim", _digest(pack_path, cfg.as_dict(), vectors, source_digest()), [verilog],
        lambda: [r.to_json() for r in _simulate_layers(pack_path, pk.layers, replace(cfg, lstm_cell=0), vectors, log)])]
    sim_lstm = None if cells is None else LSTMSim.from_json(st.run(
        "sim-lstm", _digest(pack_path, cfg.as_dict(), tokens, source_digest()), [verilog],
        lambda: _simulate_lstm(pack_path, cfg, tokens, log).to_json()))
    from doping.estimate.results import FlowEstimate

    est = FlowEstimate.from_json(st.run("estimate", _digest(pack_path, cfg.as_dict(), source_digest()), [],
                                        lambda: _estimate(pk.layers, cells, cfg).to_json()))
    report = build_report(summary(pk), cfg, sim, est, train_info, str(pack_path), sim_lstm,
                          training_curve=_training_curve(None if pack else Path(checkpoint) if checkpoint
                                                         else out / "run"),
                          outputs={"verilog": str(verilog), "report": str(out / "report.html"), "pack": str(pack_path)})
    write_report(out, report)
    log(f"[report] {out / 'report.md'}, {out / 'report.html'}, {out / 'report.json'}")
    return report


def _training_curve(run: Path | None) -> list[dict] | None:
    """Per epoch: train and validation perplexity of the run the pack came from (None without one)."""
    try:
        metrics = json.loads((run / "metrics.json").read_text()) if run else None
        return [{"epoch": int(m["epoch"]), "train_ppl": float(m["train_ppl"]), "valid_ppl": float(m["valid_ppl"])}
                for m in metrics] if metrics else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_inputs(out: Path, checkpoint, pack, ratio, config) -> None:
    """Every input validated, and OUT made writable, before anything is created under it."""
    if checkpoint and pack:
        raise DopingError("give --checkpoint or --pack, not both")
    if pack:
        from doping.pack import read_pack

        read_pack(pack)
        if ratio is not None:
            raise DopingError("--ratio applies when the flow trains or exports a model, not to a given --pack")
    elif checkpoint:
        from doping.train import load_run_model

        load_run_model(checkpoint)
    if config:
        load_config(config).check_buildable()  # up front: before training or export
    existed = out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        # a fresh name opened without following links: nothing outside the folder is touched
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        if not existed:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise DopingError(f"output folder {out} is not writable ({e.strerror}); pick another with -o") from None


def _model_and_pack(st: Stages, out: Path, checkpoint, pack, ratio, log, epochs=None) -> tuple[Path, dict | None]:
    """Stages 1-2: the given pack; or the run (given, or a small one trained on the shipped corpus)
    exported to ``out/model.dpack``. Returns (pack path, training result or None)."""
    if pack:
        return Path(pack), None
    train_info = None
    run_dir = Path(checkpoint) if checkpoint else out / "run"
    if not checkpoint:
        cfg_train = dict(TINY_TRAINING, ratio=ratio or 4.0, **({"epochs": epochs} if epochs else {}))

        def do_train():
            from doping.train import TrainConfig, train

            return train(TrainConfig(**cfg_train), run_dir, progress=False, log=lambda m: log(f"[train] {m}"))

        train_info = st.run("train", _digest(cfg_train), [run_dir / "best.pt"], do_train)
    elif not (run_dir / "config.json").is_file():
        raise DopingError(f"--checkpoint {run_dir} is not a training run folder (no config.json)")
    pack_path = out / "model.dpack"

    def do_export():
        from doping.export import export_run

        return export_run(run_dir, pack_path, log=lambda m: log(f"[export] {m}"))

    st.run("export", _digest(run_dir / "best.pt", run_dir / "config.json"), [pack_path], do_export)
    return pack_path, train_info


def _lstm_to_run(pk, log):
    """The pack's LSTM when the LSTM top can run it (one gate layer per LSTM layer), else None."""
    if pk.lstm is not None and any(len(c.gates) != 1 for c in pk.lstm):
        log("[flow] the pack's LSTM has chained gate layers, which the LSTM top does not run: verifying the gate "
            "mat-vecs only")
        return None
    return pk.lstm


def _design(layers, cells, config) -> AccelConfig:
    """The given config, or one sized to the pack with every layer resident (a token switches layers
    by registers alone); for an LSTM, the LSTM top at the design point with the least cycles per
    token x area."""
    from doping.config import MAX_RESIDENT_LAYERS
    from doping.estimate.baselines import fit_layers

    cfg = load_config(config) if config else fit_layers(
        replace(FLOW_BASE, resident_layers=min(len(layers), MAX_RESIDENT_LAYERS)), layers)
    if cells is not None:
        from doping.estimate.lstm import lstm_config, lstm_design

        cfg = lstm_config(cfg, len(cells)) if config else lstm_design(FLOW_BASE, cells, layers)[0]
    for layer in layers:
        try:
            cfg.check(layer)
        except DopingError as e:
            raise DopingError(f"{e}. Pick a larger --config, or leave --config out to size the buffers to the pack")
    return cfg


def _rtl(cfg: AccelConfig, rtl_dir: Path) -> dict:
    """Stage 3: the Verilog, linted."""
    from doping.hw.tools import lint
    from doping.hw.verilog import generate

    man = generate(cfg, rtl_dir)
    lint(rtl_dir / man["files"][0])
    return {"sram_bits_total": man["sram_bits_total"], "lint": "clean"}


def _simulate_layers(pack_path: Path, layers, cfg: AccelConfig, vectors: int, log) -> list[LayerSim]:
    """Stage 4: every layer alone on the mat-vec top (``cfg`` without the cell unit) under
    Verilator: ``vectors`` with gaps and stalls, then 2 clean ones whose cycles must equal the
    model's (each rounded up to whole batches of the config's ``batch``)."""
    from doping.estimate import schedule
    from doping.sim.runner import run

    res = []
    for layer in layers:
        per = cfg.batch
        stress = run([pack_path], cfg, vectors=-(-vectors // per) * per, seed=1, x_gap=0.1, y_stall=0.1,
                     layer=layer.name)
        clean = run([pack_path], cfg, vectors=-(-2 // per) * per, seed=2, layer=layer.name)
        r = LayerSim(layer=layer.name, vectors=stress.vectors + clean.vectors,
                     mismatches=stress.mismatches + clean.mismatches, cycles_measured=clean.latency_cycles[0],
                     cycles_model=schedule(layer, cfg).cycles, busy_cycles=clean.busy_cycles[0],
                     wall_seconds=stress.wall_seconds + clean.wall_seconds)
        res.append(r)
        log(f"[sim] {layer.name}: {r.vectors} vectors, {r.mismatches} mismatching, {r.cycles_measured} "
            f"cycles (model {r.cycles_model}), {r.wall_seconds:.0f} s")
    return res


def _simulate_lstm(pack_path: Path, cfg: AccelConfig, tokens: int, log) -> LSTMSim:
    """Stage 4b: the whole LSTM token by token on the LSTM top against the golden integer LSTM:
    ``tokens`` with gaps and stalls, then 4 clean steps whose cycles must equal the model's."""
    from doping.sim.runner import run_lstm

    stress = run_lstm(pack_path, cfg, tokens=tokens, seed=1, tok_gap=0.1, h_stall=0.1)
    clean = run_lstm(pack_path, cfg, tokens=4 * cfg.lstm_batch, seed=2)
    log(f"[sim-lstm] {stress.tokens + clean.tokens} tokens, {stress.mismatches + clean.mismatches} "
        f"mismatching, {clean.cycles_per_step} cycles per step of {cfg.lstm_batch} (model "
        f"{clean.model_cycles_per_step})")
    return LSTMSim(tokens=stress.tokens + clean.tokens, sequences=stress.sequences + clean.sequences,
                   mismatches=stress.mismatches + clean.mismatches,
                   cycles_per_step_measured=tuple(sorted(set(clean.step_intervals))),
                   cycles_per_step_model=clean.model_cycles_per_step,
                   wall_seconds=stress.wall_seconds + clean.wall_seconds)


def _estimate(layers, cells, cfg: AccelConfig):
    """Stage 5: every layer, its dense counterpart priced the same way, per token, the LSTM."""
    from doping.estimate.baselines import price
    from doping.estimate.price import price_layers
    from doping.estimate.results import FlowEstimate

    r = price_layers(layers, cfg, cells=cells)
    # a dense layer's B is one column, so its X beats hold one row: it runs at one element a beat
    dense_cfg = replace(cfg, stream_bytes=1)
    return FlowEstimate(layers=r.layers, dense=tuple(price(l.m, l.n, 1.0, "dense", dense_cfg) for l in layers),
                        per_token=r.per_token, lstm=r.lstm)


def build_report(pack_summary, cfg, sim: list[LayerSim], est, train_info, pack_path,
                 sim_lstm: LSTMSim | None = None, **extra) -> FlowReport:
    """The flow's report: verification, compression, accuracy, hardware per vector and per layer,
    per token, the LSTM; ``est`` is the estimate stage's ``FlowEstimate``; ``extra``: the training
    curve and the output paths."""
    layers = est.layers
    clock = layers[0].clock_mhz
    cycles = sum(l.cycles for l in layers)
    energy = sum(l.energy_pj for l in layers)
    dense_energy = sum(d.energy_pj for d in est.dense)
    streaming = sum(l.interval_cycles for l in layers) / (clock * 1e6)
    verified = all(s.mismatches == 0 for s in sim) and (sim_lstm is None or sim_lstm.mismatches == 0)
    return FlowReport(
        pack=pack_path, config=cfg, training=train_info,
        verification=Verification(passed=verified, vectors=sum(s.vectors for s in sim),
                                  mismatches=sum(s.mismatches for s in sim),
                                  cycle_model_matches_rtl=all(s.cycles_measured == s.cycles_model for s in sim),
                                  simulator="verilator", per_layer=tuple(sim)),
        compression=pack_summary["totals"],
        # test perplexity the export measured (a pack from elsewhere may not say)
        accuracy={k: pack_summary["provenance"][k] for k in ("test_ppl_float", "test_ppl_golden_int8",
                                                             "test_ppl_int_lstm") if k in pack_summary["provenance"]},
        per_vector=PerVector(cycles=cycles, clock_mhz=clock, latency_us=cycles / clock, energy_nj=energy / 1e3,
                             interval_cycles=sum(l.interval_cycles for l in layers),
                             power_mw=energy * 1e-12 / streaming * 1e3),
        sram_kib=sum(layers[0].sram_bits.values()) / 8192, area_mm2=layers[0].area_mm2,
        silicon_basis=silicon_basis(cfg.tech_nm),
        dense_energy_nj=dense_energy / 1e3, energy_saving_vs_dense=dense_energy / energy,
        layers=tuple(LayerRow(name=l.layer.name, shape=tuple(l.layer.shape), cycles=l.cycles,
                              interval_cycles=l.interval_cycles, phase_cycles=l.phase_cycles, energy_pj=l.energy_pj,
                              energy_breakdown=l.breakdown.energy_pj) for l in layers),
        area_breakdown_mm2=layers[0].breakdown.area_mm2, sram_bits=layers[0].sram_bits,
        per_token=est.per_token,
        lstm=None if sim_lstm is None else LSTMReport(sim=sim_lstm, estimate=est.lstm), **extra)


def summary_lines(r: FlowReport) -> list[str]:
    v, c, p, a = r.verification, r.compression, r.per_vector, r.accuracy
    lines = [
        f"verification: {'PASSED' if v.passed else 'FAILED'} ({v.vectors} vectors on {v.simulator}, "
        f"{v.mismatches} mismatches; cycle model {'equals' if v.cycle_model_matches_rtl else 'DIFFERS from'} the RTL)",
        f"compression:  {c['param_ratio']:.2f}x parameters, {c['bit_ratio']:.2f}x stored bits"]
    if a:
        lines.append("accuracy:     test perplexity " + ", ".join(
            f"{name} {a[k]:.2f}" for k, name in (("test_ppl_float", "float"), ("test_ppl_golden_int8",
                                                                              "int8 gate mat-vecs"),
                                                 ("test_ppl_int_lstm", "integer LSTM")) if k in a))
    lines += [
        f"cycles:       {p.cycles} per vector (all layers, weights resident), {p.latency_us:.2f} us at "
        f"{p.clock_mhz:g} MHz",
        f"SRAM:         {r.sram_kib:.1f} KiB",
        f"energy:       {p.energy_nj:.2f} nJ per vector ({r.energy_saving_vs_dense:.1f}x less than dense int8 "
        f"priced the same way on the same design)",
        f"area:         {r.area_mm2:.3f} mm^2 ({r.silicon_basis})",
        f"power:        {p.power_mw:.1f} mW"]
    if (t := r.per_token) is not None:
        lines.append(f"per token:    {t.cycles_per_token} cycles, {t.energy_per_token_pj / 1e3:.1f} nJ; weights "
                     f"{t.weights}")
    if (l := r.lstm) is not None:
        s, e = l.sim, l.estimate
        lines += [
            f"LSTM:         {'PASSED' if l.passed else 'FAILED'} ({s.tokens} tokens in {s.sequences} sequences "
            f"through the LSTM top, {s.mismatches} mismatching; cycle model "
            f"{'equals' if s.cycle_model_matches_rtl else 'DIFFERS from'} the RTL)",
            f"LSTM token:   {e.cycles_per_token} cycles, {e.energy_per_token_pj / 1e3:.1f} nJ, "
            f"{e.latency_per_token_us:.2f} us, {e.tokens_per_s:.0f} tokens/s, {e.power_mw:.1f} mW (cell, state "
            f"and recurrence on chip)"]
    if (o := r.outputs) is not None:
        lines.append(f"outputs:      Verilog {o['verilog']}, report {o['report']}")
    return lines


def _plots(r: FlowReport) -> dict[str, bytes]:
    from doping.plotting import plain, pyplot

    plt = pyplot()

    out = {}
    if curve := r.training_curve:
        fig, ax = plt.subplots(figsize=(6, 2.8), dpi=90)
        epochs = [m["epoch"] for m in curve]
        for key, label in (("train_ppl", "train"), ("valid_ppl", "validation")):
            ax.plot(epochs, [m[key] for m in curve], marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("perplexity")
        ax.set_xticks(epochs if len(epochs) <= 12 else epochs[:: -(-len(epochs) // 12)])
        ax.legend(fontsize=7, frameon=False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        out["training"] = buf.getvalue()
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.0), dpi=90)
    names = [plain(l.name) for l in r.layers]
    units = PHASES
    h = 0.8 / len(units)
    for u, unit in enumerate(units):  # the units overlap in time: one bar each, not stacked
        ax.barh([i + u * h for i in range(len(names))], [l.phase_cycles.get(unit, 0) for l in r.layers],
                height=h, label=unit)
    ax.set_yticks([i + 0.4 - h / 2 for i in range(len(names))], names)
    ax.set_xlabel("busy cycles per vector, per unit")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)  # below the axes
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    out["cycles"] = buf.getvalue()
    plt.close(fig)
    for key, data, label in (("energy", r.layers[0].energy_breakdown, "pJ per vector (first layer)"),
                             ("area", r.area_breakdown_mm2, "mm²")):
        fig, ax = plt.subplots(figsize=(6, 2.8), dpi=90)
        items = sorted(((k, v) for k, v in data.items() if v > 0), key=lambda kv: -kv[1])
        ax.barh([k for k, _ in items], [v for _, v in items], color="tab:green" if key == "area" else "tab:orange")
        ax.set_xlabel(label)
        ax.invert_yaxis()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        out[key] = buf.getvalue()
        plt.close(fig)
    return out


def write_report(out: Path, r: FlowReport) -> None:
    """report.md, report.html (one document model, two templates: ``doping.report``), their
    figures and report.json."""
    from doping.fileio import atomic_path
    from doping.report import document, render

    plots = _plots(r)
    md, html = render(document(r, summary_lines(r), list(plots)), plots)
    for name in plots:
        with atomic_path(out / f"{name}.png") as tmp:
            tmp.write_bytes(plots[name])
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(md)
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(html)
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(r.to_json(), indent=2, default=str))
