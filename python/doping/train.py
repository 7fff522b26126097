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
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from doping.data import batchify, load_corpus
from doping.errors import DopingError
from doping.lm import LanguageModel
from doping.nn.anneal import OverlayAnnealer


@dataclass
class TrainConfig:
    data: str = "tiny"
    method: str = "dense"
    ratio: float = 1.0
    hidden: int = 200
    layers: int = 2
    dropout: float = 0.0
    bptt: int = 20
    batch: int = 20
    eval_batch: int = 10
    epochs: int = 13
    # The loss is the mean over all tokens of a batch; Zaremba's lr 1 / clip 5 on a loss summed
    # over the bptt steps is lr 20 / clip 0.25 here (for bptt 20).
    lr: float = 20.0
    lr_decay: float = 0.5
    decay_after: int = 4
    clip: float = 0.25
    init_scale: float = 0.1
    cmr: str = "none"
    cmr_p: float = 0.0
    init_from: str | None = None
    overlay_init: str = "residual"
    anneal_start: float = 0.0
    anneal_end: float = 0.6
    anneal_every: int = 20
    curve_every: int = 0
    curve_tokens: int = 10000
    seed: int = 0
    max_batches: int = 0
    threads: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise DopingError(f"unknown training options: {', '.join(sorted(unknown))}")
        return cls(**d)


def build_model(cfg: TrainConfig, vocab_size: int) -> LanguageModel:
    return LanguageModel(vocab_size, cfg.hidden, cfg.layers, cfg.dropout, cfg.method, cfg.ratio, cfg.cmr, cfg.cmr_p,
                         cfg.init_scale)


def load_run_model(run: str | Path, which: str = "best") -> tuple[LanguageModel, TrainConfig, dict]:
    """The model of a finished (or interrupted) run, its config and its checkpoint dict."""
    run = Path(run)
    cfg_file = run / "config.json"
    ckpt_file = run / f"{which}.pt"
    if not ckpt_file.is_file():
        ckpt_file = run / "checkpoint.pt"
    if not cfg_file.is_file() or not ckpt_file.is_file():
        raise DopingError(f"{run} is not a training run folder (needs config.json and checkpoint.pt)")
    cfg = TrainConfig.from_dict(json.loads(cfg_file.read_text()))
    ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=False)
    model = build_model(cfg, ckpt["vocab_size"])
    model.load_state_dict(ckpt["model"])
    return model, cfg, ckpt


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


def _detach(hidden):
    return tuple(h.detach() for h in hidden)


@torch.no_grad()
def evaluate(model: nn.Module, data: torch.Tensor, bptt: int) -> float:
    """Perplexity of ``model`` over batchified ``data`` (steps, batch)."""
    model.eval()
    hidden, total, count = None, 0.0, 0
    for i in range(0, data.shape[0] - 1, bptt):
        seq = min(bptt, data.shape[0] - 1 - i)
        x, y = data[i: i + seq], data[i + 1: i + 1 + seq]
        logits, hidden = model(x, hidden)
        total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    return math.exp(total / count)


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


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
          log=print, stop_after: int | None = None) -> dict | None:
    """Train (or resume) a run; returns the final summary written to ``final.json``.

    ``stop_after`` ends the process after that epoch's checkpoint, as an interruption would
    (returns None); ``resume=True`` later continues from it.
    """
    run = Path(run_dir)
    dist = _Dist()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch % dist.world:
        raise DopingError(f"batch {cfg.batch} must be divisible by the {dist.world} processes")
    corpus = load_corpus(cfg.data)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, corpus.vocab_size)
    train_data = batchify(corpus.train, cfg.batch)
    per = cfg.batch // dist.world
    train_data = train_data[:, dist.rank * per: (dist.rank + 1) * per]
    valid_data, test_data = batchify(corpus.valid, cfg.eval_batch), batchify(corpus.test, cfg.eval_batch)
    curve_data = batchify(corpus.valid[: cfg.curve_tokens], cfg.eval_batch)
    n_batches = math.ceil((train_data.shape[0] - 1) / cfg.bptt)
    if cfg.max_batches:
        n_batches = min(n_batches, cfg.max_batches)
    total_steps = cfg.epochs * n_batches
    annealer = OverlayAnnealer(model, int(cfg.anneal_start * total_steps), int(cfg.anneal_end * total_steps),
                               cfg.anneal_every)
    optim = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    metrics, start_epoch, best, curve = [], 0, None, []
    ckpt_file = run / "checkpoint.pt"
    if resume and ckpt_file.is_file():
        ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        optim.load_state_dict(ckpt["optim"])
        torch.set_rng_state(ckpt["rng"])
        metrics, start_epoch, best = ckpt["metrics"], ckpt["epoch"], ckpt["best"]
        curve = ckpt.get("curve", [])
        log(f"resumed {run} after epoch {start_epoch}")
    else:
        if cfg.init_from:
            init_from_dense_run(model, cfg.init_from, cfg.overlay_init)
        if dist.rank == 0:
            run.mkdir(parents=True, exist_ok=True)
            (run / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    net = dist.wrap(model)
    acct = model.lstm_accounting()
    t_start = time.time() - sum(m["seconds"] for m in metrics)
    for epoch in range(start_epoch, cfg.epochs):
        lr = cfg.lr * cfg.lr_decay ** max(0, epoch + 1 - cfg.decay_after)
        for group in optim.param_groups:
            group["lr"] = lr
        net.train()
        hidden, total, count, t0 = None, 0.0, 0, time.time()
        bar = range(n_batches)
        if progress and dist.rank == 0:
            from tqdm import tqdm

            bar = tqdm(bar, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None)
        for b in bar:
            step = epoch * n_batches + b
            annealer.step(step)
            i = b * cfg.bptt
            seq = min(cfg.bptt, train_data.shape[0] - 1 - i)
            x, y = train_data[i: i + seq], train_data[i + 1: i + 1 + seq]
            hidden = None if hidden is None else _detach(hidden)
            logits, hidden = net(x, hidden)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            if not torch.isfinite(loss):
                raise DopingError(f"training diverged: loss is {loss.item()} at epoch {epoch + 1}, batch {b + 1}; "
                                  f"the last good state is {ckpt_file} (try a lower --lr or --clip)")
            optim.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            optim.step()
            annealer.enforce()
            total += loss.item() * y.numel()
            count += y.numel()
            if cfg.curve_every and (step % cfg.curve_every == 0 or step == total_steps - 1):
                # validation perplexity on a prefix of the valid split as S is sparsified (CMA)
                curve.append({"step": step, "lstm_params": model.lstm_accounting()["params"],
                              "valid_ppl": evaluate(model, curve_data, cfg.bptt)})
                net.train()
        annealed = annealer.done((epoch + 1) * n_batches - 1) or not annealer.modules
        entry = {
            "epoch": epoch + 1, "lr": lr, "train_ppl": math.exp(total / count),
            "valid_ppl": evaluate(model, valid_data, cfg.bptt), "seconds": time.time() - t0,
            "lstm_params": model.lstm_accounting()["params"], "annealed": annealed,
        }
        metrics.append(entry)
        if annealed and (best is None or entry["valid_ppl"] < best["valid_ppl"]):
            best = dict(entry)
            if dist.rank == 0:
                torch.save({"model": model.state_dict(), "vocab_size": corpus.vocab_size, "epoch": epoch + 1},
                           run / "best.pt")
        if dist.rank == 0:
            torch.save({"model": model.state_dict(), "optim": optim.state_dict(), "rng": torch.get_rng_state(),
                        "metrics": metrics, "epoch": epoch + 1, "best": best, "vocab_size": corpus.vocab_size,
                        "curve": curve},
                       run / "checkpoint.tmp")
            os.replace(run / "checkpoint.tmp", ckpt_file)
            (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
            if curve:
                (run / "curve.json").write_text(json.dumps(curve, indent=2))
            log(f"epoch {epoch + 1}: lr {lr:.4g} train ppl {entry['train_ppl']:.2f} valid ppl {entry['valid_ppl']:.2f} "
                f"lstm params {entry['lstm_params']} ({entry['seconds']:.0f} s)")
        if stop_after is not None and epoch + 1 >= stop_after and epoch + 1 < cfg.epochs:
            dist.close()
            return None
    if best is None:
        raise DopingError("annealing never reached the target sparsity; lower --anneal-end")
    final_model, _, _ = load_run_model(run) if dist.rank == 0 else (model, None, None)
    acct = final_model.lstm_accounting()
    summary = {
        "method": cfg.method, "ratio": cfg.ratio, "cmr": cfg.cmr, "cmr_p": cfg.cmr_p, "hidden": cfg.hidden,
        "epochs": cfg.epochs, "best_epoch": best["epoch"], "valid_ppl": best["valid_ppl"],
        "test_ppl": evaluate(final_model, test_data, cfg.bptt), "lstm": acct,
        "wall_seconds": time.time() - t_start, "world_size": dist.world, "init_from": cfg.init_from,
    }
    if dist.rank == 0:
        (run / "final.json").write_text(json.dumps(summary, indent=2))
    dist.close()
    return summary
