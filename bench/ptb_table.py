"""The PTB accuracy table (issue 10): a regularised dense baseline, then every compressed method
fine-tuned from it on one schedule, at 10x, 25x and 50x of the LSTM gate matrices.

  python bench/ptb_table.py run    --data ../shared/data/ptb --runs runs/ptb --hidden 200 --jobs 2
  python bench/ptb_table.py report --runs runs/ptb --json docs/ptb_results.json --md docs/ptb_table.md

``run`` starts every run whose inputs exist (the dense run first; 10x/50x and the second seed
once the 25x runs say which DKP variant and HMD split are best, by validation perplexity),
``--jobs`` at a time, each a ``doping train`` process with one thread; an existing run resumes
from its checkpoint, a finished one is skipped. ``--deadline`` stops starting and ends running
jobs after that many seconds (their checkpoints stay). ``--only`` limits the plan to names
matching a pattern.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Every run: BPTT 35, mean token loss with lr 20 / clip 0.25 (Zaremba's lr 1 / clip 5 on the
# summed loss), dropout on the non-recurrent connections.
COMMON = ["--bptt", "35", "--clip", "0.25", "--batch", "20", "--eval-batch", "10"]
DROPOUT = {200: "0.3", 650: "0.5"}
INIT_SCALE = {200: "0.1", 650: "0.05"}
# Dense baseline: lr 20, /4 on a validation plateau, stopped once the lr falls below 0.1.
DENSE = ["--method", "dense", "--lr", "20", "--lr-schedule", "plateau", "--lr-decay", "0.25", "--stop-lr", "0.1",
         "--anneal-end", "0"]
DENSE_EPOCHS = {200: 30, 650: 39}
# Every compressed run and the dense control: 12 epochs from the dense run, lr 5 held while the
# sparse parts anneal (first half of the steps), then /4 on each validation plateau.
FINETUNE = ["--epochs", "12", "--lr", "5", "--lr-schedule", "plateau", "--lr-decay", "0.25", "--anneal-start", "0",
            "--anneal-end", "0.5", "--anneal-every", "20", "--curve-every", "100"]
# The converged schedule (issue 28), the same for every method: lr 5 held while the sparse parts
# anneal (first half), then halved after every epoch; stopped early once two epochs in a row improve
# validation by < 0.3 %. Its runs live under h<H>/conv/.
CONVERGE = ["--epochs", "12", "--lr", "5", "--lr-schedule", "converge", "--lr-decay", "0.5", "--stop-gain", "0.003",
            "--anneal-start", "0", "--anneal-end", "0.5", "--anneal-every", "20", "--curve-every", "100"]
# From scratch (no dense start): the dense run's lr 20, /4 on a validation plateau once annealing is
# over; the sparse parts anneal from 8 % to 60 % of the steps.
SCRATCH = ["--epochs", "12", "--lr", "20", "--lr-schedule", "plateau", "--lr-decay", "0.25", "--anneal-start", "0.08",
           "--anneal-end", "0.6", "--anneal-every", "20", "--curve-every", "100"]
# From scratch under the converged schedule: lr 20 held while the sparse parts anneal (8 % to 50 % of
# the steps), then halved after every epoch; stopped once two epochs in a row improve validation by
# < 0.3 %. 16 epochs at most (a 2-core session's two side-by-side runs).
SCRATCH_CONVERGE = ["--epochs", "16", "--lr", "20", "--lr-schedule", "converge", "--lr-decay", "0.5",
                    "--stop-gain", "0.003", "--anneal-start", "0.08", "--anneal-end", "0.5", "--anneal-every", "20",
                    "--curve-every", "100"]
# Kronecker-first: the first 1/6 of the steps (2 of 12 epochs) with the overlay path off, then S
# rebased to W_dense - kron(A, B) and annealed to the end of the first half.
KP_FIRST = ["--kp-warmup", "0.1667", "--anneal-start", "0.1667"]
CMR_SHARE = "0.5"  # the Kronecker share the CMR ablation runs at
CMR_P = "0.3"
CMR = {  # variant name: training options
    "none": [],
    "seq-ramp": ["--cmr", "seq", "--cmr-p", CMR_P, "--cmr-schedule", "ramp"],
    "seq-fixed": ["--cmr", "seq", "--cmr-p", CMR_P, "--cmr-schedule", "fixed"],
    "dropconnect-ramp": ["--cmr", "dropconnect", "--cmr-p", CMR_P, "--cmr-schedule", "ramp"],
    "dropconnect-fixed": ["--cmr", "dropconnect", "--cmr-p", CMR_P, "--cmr-schedule", "fixed"],
    # elementwise dropout on S x varies per time step: the Python step loop, not the fused kernel
    # (1.4-1.9x the time per training step: bench/cmr_train_speed.py)
    "dropout-ramp": ["--cmr", "dropout", "--cmr-p", CMR_P, "--cmr-schedule", "ramp"],
    "dropout-fixed": ["--cmr", "dropout", "--cmr-p", CMR_P, "--cmr-schedule", "fixed"],
}
SHARES = ("rule", "0.25", "0.5", "0.75")
MODELS = Path(__file__).resolve().parent.parent / "models"
HMD_SPLITS = ("0.25", "0.5", "0.75")


@dataclass
class Job:
    name: str  # also the run folder under --runs
    meta: dict  # method, ratio, seed, cmr, kp_share option, hmd_split
    args: list | None = None  # None: decided by ``resolve`` once its inputs have finished
    after: list = field(default_factory=list)
    resolve: object = None


def _finished(runs: Path, name: str) -> dict | None:
    f = runs / name / "final.json"
    return json.loads(f.read_text()) if f.is_file() else None


def _best(runs: Path, names: list[str]) -> str | None:
    """The finished run of ``names`` with the lowest validation perplexity (None until all finished)."""
    done = [(r["valid_ppl"], n) for n in names if (r := _finished(runs, n))]
    return min(done)[1] if done and len(done) == len(names) else None


def plan(h: int, runs: Path) -> list[Job]:
    """Every run of the table for hidden size ``h``."""
    base = COMMON + ["--hidden", str(h), "--dropout", DROPOUT[h], "--init-scale", INIT_SCALE[h]]
    dense = f"h{h}/dense"
    ft = base + ["--init-from", str(runs / dense)] + FINETUNE
    jobs = [Job(dense, dict(method="dense", ratio=1, seed=0, cmr="none"),
                base + DENSE + ["--epochs", str(DENSE_EPOCHS[h])])]

    def add(name, meta, extra, after=(dense,), resolve=None):
        jobs.append(Job(f"h{h}/{name}", meta, None if resolve else ft + extra, [f"h{h}/{a}" if a != dense else a
                                                                                  for a in after], resolve))

    add("dense_ft", dict(method="dense_ft", ratio=1, seed=0, cmr="none"), ["--method", "dense"])
    dkp25 = []
    for share in SHARES:
        opt = [] if share == "rule" else ["--kp-share", share]
        name = f"dkp_share{share}_none_r25_s0"
        dkp25.append(name)
        add(name, dict(method="dkp", ratio=25, seed=0, cmr="none", share=share),
            ["--method", "dkp", "--ratio", "25", *opt])
    for variant, opts in CMR.items():
        if variant == "none":
            continue
        name = f"dkp_share{CMR_SHARE}_{variant}_r25_s0"
        dkp25.append(name)
        add(name, dict(method="dkp", ratio=25, seed=0, cmr=variant, share=CMR_SHARE),
            ["--method", "dkp", "--ratio", "25", "--kp-share", CMR_SHARE, *opts])
    add("kp_r25_s0", dict(method="kp", ratio=25, seed=0, cmr="none"), ["--method", "kp", "--ratio", "25"])
    add("kp_sum_r25_s0", dict(method="kp_sum", ratio=25, seed=0, cmr="none"), ["--method", "kp_sum", "--ratio", "25"])
    hmd25 = []
    for split in HMD_SPLITS:
        hmd25.append(f"hmd_split{split}_r25_s0")
        add(hmd25[-1], dict(method="hmd", ratio=25, seed=0, cmr="none", hmd_split=split),
            ["--method", "hmd", "--ratio", "25", "--hmd-split", split])
    for seed in (0, 1):
        add(f"prune_r25_s{seed}", dict(method="prune", ratio=25, seed=seed, cmr="none"),
            ["--method", "prune", "--ratio", "25", "--seed", str(seed)])
    add("lmf_r25_s0", dict(method="lmf", ratio=25, seed=0, cmr="none"), ["--method", "lmf", "--ratio", "25"])

    conv = base + ["--init-from", str(runs / dense)] + CONVERGE

    def add_conv(name, meta, extra):
        jobs.append(Job(f"h{h}/conv/{name}", dict(meta, schedule="converge"), conv + extra, [dense]))

    add_conv("dense_ft", dict(method="dense_ft", ratio=1, seed=0, cmr="none"), ["--method", "dense"])
    for ratio in (25, 10, 50):
        for seed in ((0, 1) if ratio == 25 else (0,)):
            add_conv(f"prune_r{ratio}_s{seed}", dict(method="prune", ratio=ratio, seed=seed, cmr="none"),
                     ["--method", "prune", "--ratio", str(ratio), "--seed", str(seed)])
            add_conv(f"dkp_sharerule_none_r{ratio}_s{seed}",
                     dict(method="dkp", ratio=ratio, seed=seed, cmr="none", share="rule"),
                     ["--method", "dkp", "--ratio", str(ratio), "--seed", str(seed)])
    add_conv("dkp_sharerule_kpfirst_r25_s0", dict(method="dkp", ratio=25, seed=0, cmr="none", share="rule",
                                                  start="kp-first"), ["--method", "dkp", "--ratio", "25", *KP_FIRST])
    # the screens' best (S removed <= 200 at 4 epochs): the unscaled per-sequence drop of S, full length
    for cmr_p in ("0.5", "0.25"):
        add_conv(f"dkp_sharerule_kpfirst_seq-unscaled{cmr_p}_r25_s0",
                 dict(method="dkp", ratio=25, seed=0, cmr=f"seq-unscaled{cmr_p}", share="rule", start="kp-first"),
                 ["--method", "dkp", "--ratio", "25", *KP_FIRST, "--cmr", "seq-unscaled", "--cmr-p", cmr_p])
    # screens (issue 28: "screen with short runs"): 4 epochs, the first with the overlay path off,
    # annealing over the next two; the unscaled per-sequence drop of S against no CMR
    screen = base + ["--init-from", str(runs / dense)] + CONVERGE + ["--epochs", "4", "--kp-warmup", "0.25",
                                                                      "--anneal-start", "0.25", "--anneal-end", "0.75"]
    for variant, extra in (("none", []), ("seq-unscaled0.5", ["--cmr", "seq-unscaled", "--cmr-p", "0.5"]),
                           ("seq-unscaled0.25", ["--cmr", "seq-unscaled", "--cmr-p", "0.25"]),
                           ("seq-unscaled0.5-fall", ["--cmr", "seq-unscaled", "--cmr-p", "0.5", "--cmr-schedule", "fall"])):
        jobs.append(Job(f"h{h}/screen/dkp_sharerule_kpfirst_{variant}_r25_s0_e4",
                        dict(method="dkp", ratio=25, seed=0, cmr=variant, share="rule", start="kp-first",
                             schedule="screen-4"), screen + ["--method", "dkp", "--ratio", "25", *extra], [dense]))
    # from scratch (issue 28 (c), the seed's doping): random init, S dense at first and annealed over
    # most of training, against Zhu & Gupta pruning over the same epochs; 12-epoch screens
    for name, meta, extra in (
            ("prune_r25_s0", dict(method="prune", cmr="none"), ["--method", "prune"]),
            ("dkp_sharerule_none_r25_s0", dict(method="dkp", cmr="none", share="rule"), ["--method", "dkp"]),
            ("dkp_sharerule_seq-fall0.3_r25_s0", dict(method="dkp", cmr="seq-fall", share="rule"),
             ["--method", "dkp", "--cmr", "seq", "--cmr-p", "0.3", "--cmr-schedule", "fall"]),
            # the fine-tune's best at carrying the model without S (192 with S removed), from scratch
            ("dkp_sharerule_seq-unscaled0.25_r25_s0", dict(method="dkp", cmr="seq-unscaled0.25", share="rule"),
             ["--method", "dkp", "--cmr", "seq-unscaled", "--cmr-p", "0.25"])):
        jobs.append(Job(f"h{h}/scratch/{name}_e12", dict(meta, ratio=25, seed=0, schedule="scratch-12"),
                        base + SCRATCH + ["--ratio", "25", *extra]))
        jobs.append(Job(f"h{h}/scratch/{name}_conv16", dict(meta, ratio=25, seed=0, schedule="scratch-converge"),
                        base + SCRATCH_CONVERGE + ["--ratio", "25", *extra]))
    add_conv(f"dkp_share{CMR_SHARE}_dropconnect-ramp_r25_s0",
             dict(method="dkp", ratio=25, seed=0, cmr="dropconnect-ramp", share=CMR_SHARE),
             ["--method", "dkp", "--ratio", "25", "--kp-share", CMR_SHARE, *CMR["dropconnect-ramp"]])
    add_conv("lmf_r25_s0", dict(method="lmf", ratio=25, seed=0, cmr="none"), ["--method", "lmf", "--ratio", "25"])
    add_conv("hmd_split0.25_r25_s0", dict(method="hmd", ratio=25, seed=0, cmr="none", hmd_split="0.25"),
             ["--method", "hmd", "--ratio", "25", "--hmd-split", "0.25"])

    def best_dkp(ratio, seed):
        def resolve(candidates):
            best = _best(runs, candidates)
            if best is None:
                return None
            cfg = json.loads((runs / best / "config.json").read_text())
            return ft + _variant_args(cfg) + ["--ratio", str(ratio), "--seed", str(seed)]
        return resolve

    def best_hmd(ratio):
        def resolve(candidates):
            best = _best(runs, candidates)
            if best is None:
                return None
            split = json.loads((runs / best / "config.json").read_text())["hmd_split"]
            return ft + ["--method", "hmd", "--ratio", str(ratio), "--hmd-split", str(split)]
        return resolve

    add("dkp_best_r25_s1", dict(method="dkp", ratio=25, seed=1, best=True), None, dkp25, best_dkp(25, 1))
    for ratio in (10, 50):
        add(f"dkp_best_r{ratio}_s0", dict(method="dkp", ratio=ratio, seed=0, best=True), None, dkp25,
            best_dkp(ratio, 0))
        add(f"prune_r{ratio}_s0", dict(method="prune", ratio=ratio, seed=0, cmr="none"),
            ["--method", "prune", "--ratio", str(ratio)])
        add(f"lmf_r{ratio}_s0", dict(method="lmf", ratio=ratio, seed=0, cmr="none"),
            ["--method", "lmf", "--ratio", str(ratio)])
        add(f"hmd_best_r{ratio}_s0", dict(method="hmd", ratio=ratio, seed=0, best=True), None, hmd25, best_hmd(ratio))
    return jobs


def _variant_args(cfg: dict) -> list[str]:
    """The method options of a finished DKP run's config (share and CMR), to repeat elsewhere."""
    out = ["--method", "dkp"]
    if cfg.get("kp_share"):
        out += ["--kp-share", str(cfg["kp_share"])]
    if cfg.get("cmr", "none") != "none":
        out += ["--cmr", cfg["cmr"], "--cmr-p", str(cfg["cmr_p"]), "--cmr-schedule", cfg["cmr_schedule"]]
    return out


def train_cmd(args, job_args: list, out: Path) -> list[str]:
    return [sys.executable, "-m", "doping.cli", "train", "--no-progress", "--data", args.data, "--device", args.device,
            "--threads", str(args.threads), *map(str, job_args), "-o", str(out)]


def read_parts(folder: Path, name: str) -> bytes | None:
    """``folder/name.part00, .part01, ...`` (a file kept in pieces of <= 16 MiB: committed, or
    returned by a GPU slot) joined; None when there are no parts."""
    parts = sorted(folder.glob(f"{name}.part[0-9][0-9]"))
    return b"".join(p.read_bytes() for p in parts) if parts else None


def run(args):
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    for h in args.hidden:  # a committed dense baseline (models/ptb-h<H>-dense) stands in for its run
        seed, dense = Path(args.models) / f"ptb-h{h}-dense", runs / f"h{h}" / "dense"
        if not (dense / "best.pt").is_file() and (seed / "final.json").is_file():
            shutil.copytree(seed, dense, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.part*"))
            if (best := read_parts(seed, "best.pt")) is not None:
                (dense / "best.pt").write_bytes(best)
            shutil.copy(seed / "command.txt", runs / f"h{h}" / "dense.cmd")
    jobs = [j for h in args.hidden for j in plan(h, runs)]
    if args.only:
        jobs = [j for j in jobs if any(fnmatch.fnmatch(j.name, pat) for pat in args.only)]
    if args.skip:
        jobs = [j for j in jobs if not any(fnmatch.fnmatch(j.name, pat) for pat in args.skip)]
    if args.late:  # queued after every other run, in plan order
        jobs.sort(key=lambda j: any(fnmatch.fnmatch(j.name, pat) for pat in args.late))
    names = {j.name for j in jobs}
    for j in jobs:  # a choice among runs ("best of") is made among those this invocation has or makes
        if j.resolve is not None:
            j.after = [a for a in j.after if a in names or _finished(runs, a)]
    t0 = time.time()
    pending = [j for j in jobs if not _finished(runs, j.name)]
    active: list[tuple[Job, subprocess.Popen, object]] = []
    while pending or active:
        over = args.deadline and time.time() - t0 > args.deadline
        if over:
            for job, proc, log in active:
                proc.send_signal(signal.SIGTERM)
                print(f"deadline: stopped {job.name}", flush=True)
            for job, proc, log in active:
                proc.wait()
                log.close()
            break
        for job in list(pending):
            if len(active) >= args.jobs:
                break
            if not all(_finished(runs, a) for a in job.after):
                if any(a not in {j.name for j in jobs} and not _finished(runs, a) for a in job.after):
                    pending.remove(job)  # an input outside this plan that does not exist
                    print(f"skipped {job.name}: missing inputs {job.after}", flush=True)
                continue
            job_args = job.args if job.resolve is None else job.resolve(job.after)
            if job_args is None:
                continue
            out = runs / job.name
            out.parent.mkdir(parents=True, exist_ok=True)
            smoke = (["--max-batches", str(args.max_batches)] if args.max_batches else []) + \
                (["--eval-tokens", str(args.eval_tokens)] if args.eval_tokens else [])
            cmd = train_cmd(args, job_args + smoke, out)
            if (out / "checkpoint.pt").is_file():
                cmd.append("--resume")
            (runs / f"{job.name}.cmd").write_text(" ".join(cmd[1:]) + "\n")
            log = open(runs / f"{job.name}.log", "a")
            print(f"[{time.time() - t0:6.0f} s] start {job.name}", flush=True)
            active.append((job, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
            pending.remove(job)
        time.sleep(1)
        for item in list(active):
            job, proc, log = item
            if proc.poll() is not None:
                log.close()
                print(f"[{time.time() - t0:6.0f} s] {job.name} finished with status {proc.returncode}", flush=True)
                active.remove(item)
                if proc.returncode:
                    print((runs / f"{job.name}.log").read_text()[-1500:], flush=True)
    left = [j.name for j in pending]
    if left:
        print(f"not run: {', '.join(left)}", flush=True)


def results(runs: Path, hidden: int) -> list[dict]:
    """One object per finished run of the table (the keys of docs/ptb_results.json)."""
    rows = []
    for job in plan(hidden, runs):
        final = _finished(runs, job.name)
        if final is None:
            continue
        cfg = json.loads((runs / job.name / "config.json").read_text())
        cmd_file = runs / f"{job.name}.cmd"
        command = cmd_file.read_text().strip().replace("-m doping.cli ", "doping ", 1) if cmd_file.is_file() else ""
        cmr = "none"
        if cfg["cmr"] != "none" and cfg["cmr_p"] > 0:
            cmr = f"{cfg['cmr']}-{cfg['cmr_schedule']}"
            if cfg["cmr_p"] != float(CMR_P):
                cmr += f" p{cfg['cmr_p']:g}"
        acct = final["lstm"]
        rows.append({
            "method": job.meta["method"], "ratio": cfg["ratio"], "seed": cfg["seed"], "cmr": cmr,
            "kp_share": final.get("kp_share"), "overlay_density": final.get("overlay_density"),
            "epochs": final["epochs"], "valid_ppl": final["valid_ppl"], "test_ppl": final["test_ppl"],
            "param_ratio": acct["param_ratio"], "bit_ratio": acct["bit_ratio"], "command": command,
            "hidden": hidden, "run": job.name, "hmd_split": cfg["hmd_split"] if cfg["method"] == "hmd" else None,
            "factors": _factors(runs / job.name) if cfg["method"] in ("dkp", "kp", "kp_sum") else None,
            "test_ppl_without_overlay": final.get("test_ppl_without_overlay"), "cma_rise": final.get("cma_rise"),
            "test_ppl_without_kp": final.get("test_ppl_without_kp"), "density_by_gate": final.get("density_by_gate"),
            "device": final.get("device"), "wall_seconds": final.get("wall_seconds"),
            "schedule": job.meta.get("schedule", "converge" if cfg["lr_schedule"] == "converge" else "plateau-12"),
            "kp_warmup": cfg.get("kp_warmup", 0.0),
        })
    return rows


def _factors(run: Path) -> str | None:
    from doping.train import TrainConfig, build_model

    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    (m1, n1), (m2, n2) = build_model(cfg, 10).lstm.gates[0].factor_shapes
    return f"{m1}x{n1},{m2}x{n2}"


def _label(r: dict) -> str:
    sched = {"converge": ", converged", "screen-4": ", 4-epoch screen",
             "scratch-12": ", from scratch (12-epoch screen)", "scratch-converge": ", from scratch, converged"}.get(r.get("schedule"), "")
    return _method_label(r) + sched


def _method_label(r: dict) -> str:
    m = r["method"]
    if m == "dkp":
        share = f"KP share {r['kp_share']:.0%}" if r["kp_share"] is not None else ""
        first = ", Kronecker-first" if r.get("kp_warmup") else ""
        return f"DKP ({share}, CMR {r['cmr']}{first})"
    if m == "hmd":
        return f"HMD (dense-row split {r['hmd_split']})"
    return {"dense": "dense (regularised)", "dense_ft": "dense, fine-tuned like the others (control)",
            "prune": "magnitude pruning", "lmf": "LMF (low rank, SVD init)", "kp": "KP alone (natural ratio)",
            "kp_sum": "sum of Kronecker products"}[m]


def table(rows: list[dict]) -> str:
    dense = {r["hidden"]: r for r in rows if r["method"] == "dense"}
    out = []
    for h in sorted({r["hidden"] for r in rows}):
        d = dense.get(h)
        out += [f"### 2 x {h} LSTM", "",
                "| model | ratio (params) | stored-bit ratio | seed | KP share | overlay density | valid ppl | test ppl | "
                "loss vs dense | test ppl, overlay removed | test ppl, A⊗B removed | CMA rise | epochs |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted((r for r in rows if r["hidden"] == h), key=lambda r: (r["ratio"], r["method"] != "dense",
                                                                               r["method"], r["test_ppl"])):
            loss = f"{100 * (r['test_ppl'] / d['test_ppl'] - 1):+.1f} %" if d else "—"
            pct = lambda v: "—" if v is None else f"{100 * v:.1f} %"  # noqa: E731
            num = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
            out.append(f"| {_label(r)} | {r['param_ratio']:.2f}× | {r['bit_ratio']:.2f}× | {r['seed']} | "
                       f"{pct(r['kp_share'])} | {pct(r['overlay_density'])} | {r['valid_ppl']:.2f} | "
                       f"{r['test_ppl']:.2f} | {loss} | {num(r['test_ppl_without_overlay'])} | "
                       f"{num(r.get('test_ppl_without_kp'))} | "
                       f"{pct(r['cma_rise'])} | {r['epochs']} |")
        out.append("")
    return "\n".join(out)


def _save_ppl_plot(plt, fig, ax, path: Path, xlabel: str, ylabel: str) -> None:
    """The perplexity plots' common finish: log y, grid, legend, written to ``path``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_cma(runs: Path, rows: list[dict], path: Path, partial=()) -> None:
    """Validation perplexity (first 10 k valid tokens) against training steps while the sparse
    parts anneal, for every 25x DKP and pruning run: co-matrix adaptation shows as the rise at the
    end of annealing, and CMR as its absence."""
    from doping.plotting import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4), dpi=90)
    for r in rows:
        f = runs / r["run"] / "curve.json"
        if r["ratio"] != 25 or r["method"] not in ("dkp", "prune") or not f.is_file():
            continue
        curve = json.loads(f.read_text())
        ax.plot([c["step"] for c in curve], [c["valid_ppl"] for c in curve], lw=1,
                label=f"h{r['hidden']} {_label(r)} s{r['seed']}")
    for run in partial:  # unfinished runs (not in the table), dashed
        f = Path(run) / "curve.json"
        if f.is_file():
            curve = json.loads(f.read_text())
            ax.plot([c["step"] for c in curve], [c["valid_ppl"] for c in curve], "--", lw=1,
                    label=f"{Path(run).parent.name}/{Path(run).name} (unfinished)")
    _save_ppl_plot(plt, fig, ax, path, "training step (annealing over the first half)", "valid ppl, first 10k tokens")


def plot_epochs(runs: Path, rows: list[dict], path: Path) -> None:
    """Per-epoch validation perplexity of the converged-schedule runs (solid), and for doped runs
    the perplexity with the overlay removed (dotted, first 10 k valid tokens): whether the
    Kronecker part carries the model."""
    from doping.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=90)
    for r in rows:
        f = runs / r["run"] / "metrics.json"
        if r.get("schedule") not in ("converge", "scratch-converge") or not f.is_file():
            continue
        m = json.loads(f.read_text())
        line, = ax.plot([e["epoch"] for e in m], [e["valid_ppl"] for e in m], lw=1.2,
                        label=f"{_label(r)} s{r['seed']}")
        without = [(e["epoch"], e["curve_ppl_without_overlay"]) for e in m if "curve_ppl_without_overlay" in e]
        if without:
            ax.plot(*zip(*without), ":", color=line.get_color(), lw=1.2, label="  … overlay removed")
    _save_ppl_plot(plt, fig, ax, path, "epoch", "valid ppl")


def merged(old: list[dict], fresh: list[dict], order: list[str]) -> list[dict]:
    """The table's rows: every finished run found now, and every row of the previous record whose
    run folder is not here (runs/ does not travel between checkouts), in plan order."""
    rows = {r["run"]: r for r in old}
    rows.update({r["run"]: r for r in fresh})
    rank = {name: i for i, name in enumerate(order)}
    return sorted(rows.values(), key=lambda r: rank.get(r["run"], len(rank)))


def with_anatomy(rows: list[dict], path: Path) -> list[dict]:
    """Rows whose run predates final.json's ``test_ppl_without_kp`` take it from
    ``bench/ptb_anatomy.py``'s record of the same run folder (same model, same test text)."""
    if not path.is_file():
        return rows
    measured = {"/".join(Path(a["run"]).parts[-3:]): a for a in json.loads(path.read_text())}
    for r in rows:
        a = measured.get(r["run"])
        if a is not None and r.get("test_ppl_without_kp") is None and "test_ppl_without_kronecker" in a:
            r["test_ppl_without_kp"] = a["test_ppl_without_kronecker"]
    return rows


def report(args):
    runs = Path(args.runs)
    fresh = [r for h in args.hidden for r in results(runs, h)]
    old = json.loads(Path(args.json).read_text()) if Path(args.json).is_file() else []
    order = [j.name for h in sorted({*args.hidden, *(r["hidden"] for r in old)}) for j in plan(h, runs)]
    rows = with_anatomy(merged(old, fresh, order), Path(args.anatomy))
    carried = len(rows) - len(fresh)
    if carried:
        print(f"{carried} rows carried over from {args.json} (their run folders are not in {runs})")
    if args.plot:
        plot_cma(runs, rows, Path(args.plot), args.partial or ())
    if args.epochs_plot and any(r.get("schedule") in ("converge", "scratch-converge") for r in fresh):
        plot_epochs(runs, fresh, Path(args.epochs_plot))
    Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    head = ("Generated by `python bench/ptb_table.py report` from the runs of `bench/ptb_table.py run` "
            "(commands per run in docs/ptb_results.json). Loss is against the regularised dense baseline of "
            "the same size. Ratios count the LSTM gate matrices (biases not counted); stored bits count "
            "8-bit values plus sparse indices.\n\n")
    Path(args.md).write_text(head + table(rows))
    print(table(rows))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", default="../shared/data/ptb")
    r.add_argument("--runs", default="runs/ptb")
    r.add_argument("--hidden", type=int, nargs="+", default=[200], choices=sorted(DROPOUT))
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--device", default="cpu")
    r.add_argument("--deadline", type=float, default=0, help="seconds; 0: none")
    r.add_argument("--only", nargs="*", help="run names (glob) to run")
    r.add_argument("--skip", nargs="*", help="run names (glob) to leave out")
    r.add_argument("--late", nargs="*", help="run names (glob) to queue after all others")
    r.add_argument("--max-batches", type=int, default=0, help="smoke tests only")
    r.add_argument("--eval-tokens", type=int, default=0, help="smoke tests only: evaluation on this many tokens")
    r.add_argument("--models", default=str(MODELS), help="committed dense baselines (ptb-h<H>-dense) to start from")
    rep = sub.add_parser("report")
    rep.add_argument("--runs", default="runs/ptb")
    rep.add_argument("--hidden", type=int, nargs="+", default=[200, 650])
    rep.add_argument("--json", default="docs/ptb_results.json")
    rep.add_argument("--md", default="docs/ptb_table.md")
    rep.add_argument("--anatomy", default="docs/ptb_anatomy.json",
                     help="bench/ptb_anatomy.py's measurements, for rows older than final.json's A⊗B-removed ppl")
    rep.add_argument("--plot", default="docs/cma.png", help="CMA curves of the runs found in --runs ('' for none)")
    rep.add_argument("--epochs-plot", default="docs/ptb_epochs.png",
                     help="per-epoch curves of the converged-schedule runs found in --runs ('' for none)")
    rep.add_argument("--partial", nargs="*", help="unfinished run folders whose curves the plot adds, dashed")
    a = p.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    (run if a.cmd == "run" else report)(a)


if __name__ == "__main__":
    main()
