"""Training of compressed LSTM language models: one loop for every method (dense, DKP with or
without CMR, pruning, LMF, HMD, KP), with overlay annealing, checkpoint/resume, per-epoch
metrics, NaN detection, and DDP (gloo) when launched under ``torchrun``.

A run directory holds ``config.json``, ``metrics.json`` (one entry per epoch), ``checkpoint.pt``
(the latest epoch, for resuming), ``best.pt`` (best validation perplexity once annealing has
finished) and ``final.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from doping.compression import parse_factor_shapes
from doping.data import batchify, load_corpus
from doping.errors import DopingError
from doping.fileio import atomic_path, check_input_file
from doping.lm import LanguageModel
from doping.nn.anneal import OverlayAnnealer
from doping.train_config import MAX_VOCAB, TrainConfig, check_config


def build_model(cfg: TrainConfig, vocab_size: int) -> LanguageModel:
    options = {"kp_share": cfg.kp_share, "hmd_split": cfg.hmd_split}
    if cfg.factors:
        options["factor_shapes"] = parse_factor_shapes(cfg.factors)
    return LanguageModel(vocab_size, cfg.hidden, cfg.layers, cfg.dropout, cfg.method, cfg.ratio, cfg.cmr, cfg.cmr_p,
                         cfg.init_scale, gate_options=options)


def resolve_device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def load_run_model(run: str | Path, which: str = "best") -> tuple[LanguageModel, TrainConfig, dict]:
    """The model of a finished (or interrupted) run, its config and its checkpoint dict."""
    run = Path(run)
    cfg_file = run / "config.json"
    ckpt_file = run / f"{which}.pt"
    if not ckpt_file.is_file():
        ckpt_file = run / "checkpoint.pt"
    if not cfg_file.is_file() or not ckpt_file.is_file():
        raise DopingError(f"{run} is not a training run folder (needs config.json and checkpoint.pt)")
    try:
        data = json.loads(check_input_file(cfg_file, "run config", 1 << 20).read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise DopingError(f"{cfg_file} is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(data, dict):
        raise DopingError(f"{cfg_file} must hold an object of training options")
    cfg = TrainConfig.from_dict(data)
    try:
        check_config(cfg, training=False)
    except DopingError as e:
        raise DopingError(f"{cfg_file}: {e}") from None
    ckpt = safe_load(ckpt_file)
    model = build_model(cfg, ckpt["vocab_size"])
    try:
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise DopingError(f"{ckpt_file} does not match its run's config.json: {str(e).splitlines()[0]}") from None
    return model, cfg, ckpt


def safe_load(path: Path) -> dict:
    """A checkpoint read without executing code (``weights_only``): tensors and plain containers only."""
    check_input_file(path, "checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle refusals, truncation, not a zip: all one clear error
        raise DopingError(f"{path} is not a readable doping checkpoint: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or not isinstance(ckpt.get("vocab_size"), int):
        raise DopingError(f"{path} is not a doping checkpoint (no model state and vocabulary size)")
    if not 2 <= ckpt["vocab_size"] <= MAX_VOCAB:
        raise DopingError(f"{path}: vocabulary size {ckpt['vocab_size']} is outside 2..{MAX_VOCAB}")
    return ckpt


@torch.no_grad()
def init_from_dense_run(model: LanguageModel, run: str | Path, overlay_init: str) -> None:
    """Start a compressed model from a trained dense run: embedding and decoder copied, each gate
    from the dense gate (nearest Kronecker + residual overlay, truncated SVD, ...)."""
    dense, dcfg, _ = load_run_model(run)
    if dcfg.method != "dense" or dcfg.hidden != model.lstm.hidden_size or dcfg.layers != model.lstm.num_layers:
        raise DopingError(f"--init-from {run} must be a dense run of the same size")
    model.embed.load_state_dict(dense.embed.state_dict())
    model.decoder.load_state_dict(dense.decoder.state_dict())
    for g, dg in zip(model.lstm.gates, dense.lstm.gates):
        if hasattr(g, "s"):
            g.init_from_dense(dg.w, overlay_init)
        else:
            g.init_from_dense(dg.w)
        g.bias.copy_(dg.bias)


@torch.no_grad()
def rebase_on_dense_run(model: LanguageModel, run: str | Path) -> None:
    """The end of a Kronecker-first warm-up: every doped gate's S = W_dense - kron(A, B)."""
    dense, _, _ = load_run_model(run)
    for g, dg in zip(model.lstm.gates, dense.lstm.gates):
        if getattr(g, "s", None) is not None:
            g.rebase_overlay(dg.w.to(g.a.device))


def set_overlay_off(model: LanguageModel, off: bool) -> None:
    for g in model.lstm.gates:
        if hasattr(g, "overlay_off"):
            g.overlay_off = off


def _ppl(mean_loss: float) -> float:
    """exp(mean loss), inf where that overflows (a run far off course, not a traceback)."""
    return math.exp(mean_loss) if mean_loss < 700 else math.inf


def _detach(hidden):
    return tuple(h.detach() for h in hidden)


@torch.no_grad()
def evaluate(model: nn.Module, data: torch.Tensor, bptt: int) -> float:
    """Perplexity of ``model`` over batchified ``data`` (steps, batch)."""
    model.eval()
    hidden, count = None, 0
    total = torch.zeros((), dtype=torch.float64, device=data.device)
    for i in range(0, data.shape[0] - 1, bptt):
        seq = min(bptt, data.shape[0] - 1 - i)
        x, y = data[i: i + seq], data[i + 1: i + 1 + seq]
        logits, hidden = model(x, hidden)
        total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
        count += y.numel()
    return _ppl(total.item() / count)


@torch.no_grad()
def evaluate_with_gate_hooks(model, data: torch.Tensor, bptt: int, hook) -> float:
    """Perplexity of ``model`` on ``data`` with ``hook(l, inp, out)`` as a forward hook on layer
    l's gate module, called once per time step (a hook's non-None return replaces the output)."""
    hooks = [gate.register_forward_hook(lambda mod, inp, out, l=l: hook(l, inp[0], out))
             for l, gate in enumerate(model.lstm.gates)]
    model.lstm.per_step_calls = True
    try:
        return evaluate(model, data, bptt)
    finally:
        model.lstm.per_step_calls = False
        for h in hooks:
            h.remove()


class _Dist:
    """torchrun/DDP context: rank, world size, and the model wrapper (a no-op for one process)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo")

    def wrap(self, model):
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)

    def close(self):
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def next_lr(cfg: TrainConfig, metrics: list[dict]) -> float:
    """The learning rate of the epoch after ``metrics`` (a pure function of the history, so a
    resumed run continues exactly)."""
    if cfg.lr_schedule == "step":
        return cfg.lr * cfg.lr_decay ** max(0, len(metrics) + 1 - cfg.decay_after)
    if cfg.lr_schedule == "converge":
        return cfg.lr * cfg.lr_decay ** sum(1 for m in metrics if m["annealed"])
    lr, best = cfg.lr, None
    for m in metrics:
        if not m["annealed"]:
            continue
        if best is not None and m["valid_ppl"] >= best:
            lr = m["lr"] * cfg.lr_decay
        else:
            lr = m["lr"]
        best = m["valid_ppl"] if best is None else min(best, m["valid_ppl"])
    return lr


def _stopped(cfg: TrainConfig, metrics: list[dict]) -> bool:
    if cfg.lr_schedule == "step" or not metrics:
        return False
    if cfg.stop_lr > 0 and next_lr(cfg, metrics) < cfg.stop_lr:
        return True
    if cfg.lr_schedule != "converge" or cfg.stop_gain <= 0:
        return False
    annealed = [m["valid_ppl"] for m in metrics if m["annealed"]]
    gains = [1.0 - b / min(annealed[:i + 1]) for i, b in enumerate(annealed[1:])]
    return len(gains) >= 2 and all(g < cfg.stop_gain for g in gains[-2:])


@torch.no_grad()
def _doped_gates_changed(model: LanguageModel, change) -> LanguageModel:
    """A copy of ``model`` with ``change(gate)`` applied to every gate that has an overlay."""
    import copy

    bare = copy.deepcopy(model)
    for g in bare.lstm.gates:
        if getattr(g, "s", None) is not None:
            change(g)
    return bare


def without_overlay(model: LanguageModel) -> LanguageModel:
    """A copy of ``model`` with every overlay S removed (the Kronecker part alone)."""
    return _doped_gates_changed(model, lambda g: g.mask.zero_())


def without_kronecker(model: LanguageModel) -> LanguageModel:
    """A copy of ``model`` with every Kronecker part removed (A = 0: the overlay S alone)."""
    return _doped_gates_changed(model, lambda g: g.a.zero_())


@torch.no_grad()
def density_by_gate(model: LanguageModel) -> list[dict]:
    """Per LSTM layer with a sparse part (the overlay S, or the pruned matrix): its density
    (nonzeros / entries) in each gate block's rows (torch's order i, f, g, o of [W_ih | W_hh]) and,
    for doped layers, the Kronecker part's share of ||W||^2."""
    out = []
    for layer, g in enumerate(model.lstm.gates):
        mask = getattr(g, "mask", None)
        if mask is None:
            continue
        rows = mask.shape[0] // 4
        row = {"layer": layer, **{name: float(mask[k * rows:(k + 1) * rows].float().mean())
                                  for k, name in enumerate("ifgo")}}
        if hasattr(g, "kp_energy_share"):
            row["kp_energy_share"] = g.kp_energy_share()
        out.append(row)
    return out


def cma_rise(curve: list[dict], start: int, end: int) -> float | None:
    """Co-matrix adaptation: the relative rise of validation perplexity over the last 20 % of
    annealing, ppl(end) / ppl(start + 0.8 (end - start)) - 1, from the nearest curve samples."""
    if not curve or end <= start:
        return None
    at = lambda step: min(curve, key=lambda c: abs(c["step"] - step))["valid_ppl"]  # noqa: E731
    return at(end) / at(start + 0.8 * (end - start)) - 1.0


@dataclass
class _Splits:
    """The corpus on the device, batchified, and the step counts of the schedule."""

    train: torch.Tensor  # this process's columns
    valid: torch.Tensor
    test: torch.Tensor
    curve: torch.Tensor  # a prefix of valid, for the CMA curve
    n_batches: int
    total_steps: int
    anneal: tuple[int, int]  # first and last annealing step


@dataclass
class _Progress:
    """What a checkpoint carries besides the model and optimiser."""

    metrics: list = field(default_factory=list)
    epoch: int = 0
    best: dict | None = None
    curve: list = field(default_factory=list)


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
          log=print, stop_after: int | None = None) -> dict | None:
    """Train (or resume) a run; returns the final summary written to ``final.json``.

    ``stop_after`` ends the process after that epoch's checkpoint, as an interruption would
    (returns None); ``resume=True`` later continues from it.
    """
    check_config(cfg)
    run = Path(run_dir)
    dist = _Dist()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch % dist.world:
        raise DopingError(f"batch {cfg.batch} must be divisible by the {dist.world} processes")
    device = resolve_device(cfg)
    if os.environ.get("DOPING_DISABLE_CUDNN") == "1":  # bench/gpu_ptb.sh's fallback
        torch.backends.cudnn.enabled = False
    corpus = load_corpus(cfg.data)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, corpus.vocab_size)
    data = _splits(cfg, corpus, dist, device)
    optim, annealer, done = _start(cfg, run, model, device, data, resume, dist, log)
    net = dist.wrap(model)
    t_start = time.time() - sum(m["seconds"] for m in done.metrics)
    for epoch in range(done.epoch, cfg.epochs):
        if _stopped(cfg, done.metrics):
            break
        entry = _train_epoch(cfg, net, model, optim, annealer, data, epoch, next_lr(cfg, done.metrics), done.curve,
                             progress and dist.rank == 0, run / "checkpoint.pt")
        done.metrics.append(entry)
        done.epoch = epoch + 1
        if entry["annealed"] and (done.best is None or entry["valid_ppl"] < done.best["valid_ppl"]):
            done.best = dict(entry)
            if dist.rank == 0:
                _atomic_save({"model": model.state_dict(), "vocab_size": corpus.vocab_size, "epoch": epoch + 1},
                             run / "best.pt")
        if dist.rank == 0:
            _checkpoint(run, model, optim, done, corpus.vocab_size, device)
            log(f"epoch {epoch + 1}: lr {entry['lr']:.4g} train ppl {entry['train_ppl']:.2f} valid ppl "
                f"{entry['valid_ppl']:.2f} lstm params {entry['lstm_params']} ({entry['seconds']:.0f} s)")
        if stop_after is not None and epoch + 1 >= stop_after and epoch + 1 < cfg.epochs:
            dist.close()
            return None
    if done.best is None:
        raise DopingError("annealing never reached the target sparsity; lower --anneal-end")
    summary = None
    if dist.rank == 0:
        summary = _summarise(cfg, run, done.metrics, done.best, done.curve, data.anneal, data.test, device)
        summary["wall_seconds"] = time.time() - t_start
        summary["world_size"] = dist.world
        _atomic_text(run / "final.json", json.dumps(summary, indent=2))
    dist.close()
    return summary


def _splits(cfg: TrainConfig, corpus, dist, device) -> _Splits:
    train_data = batchify(corpus.train, cfg.batch)
    per = cfg.batch // dist.world
    train_data = train_data[:, dist.rank * per: (dist.rank + 1) * per].to(device)
    n_batches = math.ceil((train_data.shape[0] - 1) / cfg.bptt)
    if cfg.max_batches:
        n_batches = min(n_batches, cfg.max_batches)
    total_steps = cfg.epochs * n_batches

    def bounded(split):
        return split[: cfg.eval_tokens] if cfg.eval_tokens else split

    return _Splits(train=train_data, valid=batchify(bounded(corpus.valid), cfg.eval_batch).to(device),
                   test=batchify(bounded(corpus.test), cfg.eval_batch).to(device),
                   curve=batchify(corpus.valid[: cfg.curve_tokens], cfg.eval_batch).to(device),
                   n_batches=n_batches, total_steps=total_steps,
                   anneal=(int(cfg.anneal_start * total_steps), int(cfg.anneal_end * total_steps)))


def _start(cfg: TrainConfig, run: Path, model, device, data: _Splits, resume: bool, dist, log):
    """The model's starting weights (a checkpoint, a dense run, or its own initialisation), the
    optimiser and annealer, and the progress so far. A new run writes its config.json."""
    ckpt_file = run / "checkpoint.pt"
    resumed = None
    if resume and ckpt_file.is_file():
        resumed = safe_load(ckpt_file)
        try:
            model.load_state_dict(resumed["model"])
        except (RuntimeError, TypeError, ValueError) as e:
            raise DopingError(f"{ckpt_file} is not a checkpoint of this run's model (another size or method?): "
                              f"{str(e).splitlines()[0][:200]}") from None
    elif cfg.init_from:
        init_from_dense_run(model, cfg.init_from, cfg.overlay_init)
    model.to(device)
    annealer = OverlayAnnealer(model, *data.anneal, cfg.anneal_every, cfg.cmr_schedule)
    optim = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    done = _Progress()
    if resumed is not None:
        try:
            optim.load_state_dict(resumed["optim"])
            torch.set_rng_state(resumed["rng"])
            if device.type == "cuda" and "cuda_rng" in resumed:
                torch.cuda.set_rng_state(resumed["cuda_rng"])
            done = _Progress(list(resumed["metrics"]), int(resumed["epoch"]), resumed["best"],
                             list(resumed.get("curve", [])))
        except (KeyError, RuntimeError, TypeError, ValueError) as e:
            raise DopingError(f"{ckpt_file} cannot resume training (no or mismatched optimiser, random-state or "
                              f"progress record: {type(e).__name__} {str(e)[:120]})") from None
        log(f"resumed {run} after epoch {done.epoch}")
    elif dist.rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        _atomic_text(run / "config.json", json.dumps(asdict(cfg), indent=2))
    return optim, annealer, done


def _train_epoch(cfg: TrainConfig, net, model, optim, annealer, data: _Splits, epoch: int, lr: float, curve: list,
                 show_bar: bool, ckpt_file: Path) -> dict:
    """One epoch of truncated BPTT at ``lr`` (annealing the overlay as it goes, appending CMA curve
    points to ``curve``); returns its metrics entry."""
    for group in optim.param_groups:
        group["lr"] = lr
    net.train()
    hidden, t0 = None, time.time()
    device = data.train.device
    total = torch.zeros((), device=device)
    count = 0
    bar = range(data.n_batches)
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(bar, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None)
    warm_end = int(cfg.kp_warmup * data.total_steps)
    for b in bar:
        step = epoch * data.n_batches + b
        if warm_end:
            set_overlay_off(model, step < warm_end)
            if step == warm_end:
                rebase_on_dense_run(model, cfg.init_from)
        annealer.step(step)
        i = b * cfg.bptt
        seq = min(cfg.bptt, data.train.shape[0] - 1 - i)
        x, y = data.train[i: i + seq], data.train[i + 1: i + 1 + seq]
        hidden = None if hidden is None else _detach(hidden)
        logits, hidden = net(x, hidden)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optim.step()
        annealer.enforce()
        total += loss.detach() * y.numel()
        count += y.numel()
        # a check every 100 steps keeps the GPU from waiting on the host every step
        if (b % 100 == 99 or b == data.n_batches - 1) and not torch.isfinite(total):
            raise DopingError(f"training diverged: the loss is not finite at epoch {epoch + 1}, batch {b + 1}; "
                              f"the last good state is {ckpt_file} (try a lower --lr or --clip)")
        if cfg.curve_every and (step % cfg.curve_every == 0 or step == data.total_steps - 1):
            # validation perplexity on a prefix of the valid split as S is sparsified (CMA)
            curve.append({"step": step, "lstm_params": model.lstm_accounting()["params"],
                          "valid_ppl": evaluate(model, data.curve, cfg.bptt)})
            net.train()
    # annealing has ended (and the lr schedule may decay) only once its end step is reached,
    # also for runs without anything to anneal, so every run of a table shares one lr schedule
    last = (epoch + 1) * data.n_batches - 1
    annealed = last >= data.anneal[1] and (annealer.done(last) or not annealer.modules)
    entry = {"epoch": epoch + 1, "lr": lr, "train_ppl": _ppl(total.item() / count),
             "valid_ppl": evaluate(model, data.valid, cfg.bptt), "seconds": time.time() - t0,
             "lstm_params": model.lstm_accounting()["params"], "annealed": annealed}
    doped = [g for g in model.lstm.gates if getattr(g, "s", None) is not None]
    if doped:  # how much the Kronecker part carries, per epoch (on the CMA curve's valid prefix)
        entry["kp_energy_share"] = sum(g.kp_energy_share() for g in doped) / len(doped)
        entry["curve_ppl_without_overlay"] = evaluate(without_overlay(model), data.curve, cfg.bptt)
    return entry


def _checkpoint(run: Path, model, optim, done: _Progress, vocab_size: int, device) -> None:
    """checkpoint.pt (everything a resume needs), metrics.json and curve.json, atomically."""
    state = {"model": model.state_dict(), "optim": optim.state_dict(), "rng": torch.get_rng_state(),
             "metrics": done.metrics, "epoch": done.epoch, "best": done.best, "vocab_size": vocab_size,
             "curve": done.curve}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state()
    _atomic_save(state, run / "checkpoint.pt")
    _atomic_text(run / "metrics.json", json.dumps(done.metrics, indent=2))
    if done.curve:
        _atomic_text(run / "curve.json", json.dumps(done.curve, indent=2))


def _atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _atomic_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _summarise(cfg, run, metrics, best, curve, anneal, test_data, device) -> dict:
    """final.json: the best epoch's model on test, compression, overlay density and CMA measures."""
    final_model, _, _ = load_run_model(run)
    final_model.to(device)
    acct = final_model.lstm_accounting()
    summary = {
        "method": cfg.method, "ratio": cfg.ratio, "cmr": cfg.cmr, "cmr_p": cfg.cmr_p,
        "cmr_schedule": cfg.cmr_schedule, "hidden": cfg.hidden, "seed": cfg.seed, "epochs": len(metrics),
        "best_epoch": best["epoch"], "valid_ppl": best["valid_ppl"],
        "test_ppl": evaluate(final_model, test_data, cfg.bptt), "lstm": acct,
        "kp_share": acct.get("kp_share"), "overlay_density": acct.get("overlay_density"),
        "init_from": cfg.init_from, "device": str(device),
    }
    if any(getattr(g, "s", None) is not None for g in final_model.lstm.gates):
        summary["test_ppl_without_overlay"] = evaluate(without_overlay(final_model), test_data, cfg.bptt)
        summary["test_ppl_without_kp"] = evaluate(without_kronecker(final_model), test_data, cfg.bptt)
        summary["cma_rise"] = cma_rise(curve, *anneal)
    summary["density_by_gate"] = density_by_gate(final_model) or None
    return summary
