"""Training options (``doping train``) and their checks, without torch: the CLI builds its
parser from ``TrainConfig`` and run folders are validated before any model is built."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from doping.errors import DopingError


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
    # "step": decay by lr_decay every epoch after decay_after; "plateau": decay by lr_decay after an
    # epoch whose validation perplexity is no better than the best so far (counted once annealing
    # has ended), and stop once the lr has fallen below stop_lr; "converge": lr held while the
    # sparse parts anneal, then decayed by lr_decay after every epoch, stopped once the lr falls
    # below stop_lr or two epochs in a row improve validation by less than stop_gain (relative).
    lr_schedule: str = "step"
    stop_lr: float = 0.0
    stop_gain: float = 0.0
    clip: float = 0.25
    init_scale: float = 0.1
    cmr: str = "none"
    cmr_p: float = 0.0
    cmr_schedule: str = "fixed"
    factors: str = ""
    kp_share: float = 0.0
    hmd_split: float = 0.5
    init_from: str | None = None
    overlay_init: str = "residual"
    # Kronecker-first start (DKP with --init-from): for this fraction of all steps the overlay path is
    # off (the factors alone carry the gates); then S is rebased to W_dense - kron(A, B) and annealed.
    kp_warmup: float = 0.0
    anneal_start: float = 0.0
    anneal_end: float = 0.6
    anneal_every: int = 20
    curve_every: int = 0
    curve_tokens: int = 10000
    seed: int = 0
    max_batches: int = 0
    eval_tokens: int = 0  # validation and test perplexity on the first this many tokens (0: all)
    threads: int = 0
    device: str = "cpu"

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise DopingError(f"unknown training options: {', '.join(sorted(unknown))}")
        cfg = cls(**d)
        for f in fields(cls):  # JSON types must be the option's type (ints may stand for floats)
            v, kind = getattr(cfg, f.name), f.type if isinstance(f.type, str) else f.type.__name__
            ok = {"int": isinstance(v, int) and not isinstance(v, bool),
                  "float": isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                  "str": isinstance(v, str), "str | None": v is None or isinstance(v, str)}.get(kind, True)
            if not ok:
                raise DopingError(f"training option {f.name} must be {kind}, got {v!r:.60}")
        return cfg


#: Upper limits of the training options (a 2x1500 LSTM is the largest the PTB recipes use; a seed
#: must fit torch's 64-bit generator).
TRAIN_LIMITS = {"hidden": 4096, "layers": 8, "bptt": 1000, "batch": 4096, "eval_batch": 4096, "epochs": 1000,
                "seed": 2 ** 63 - 1, "threads": 256}


MAX_VOCAB = 1 << 20


def check_config(cfg: TrainConfig, training: bool = True) -> None:
    """One clear error for option values the training loop cannot use (``training=False``: a run
    folder's config checked before its model is built, whatever device it was trained on)."""
    from doping.nn.anneal import CMR_SCHEDULES
    from doping.nn.dkp import CMR_MODES

    if cfg.lr_schedule not in ("step", "plateau", "converge"):
        raise DopingError(f"--lr-schedule must be step, plateau or converge, got {cfg.lr_schedule!r}")
    if not 0.0 <= cfg.kp_warmup <= cfg.anneal_start:
        raise DopingError(f"--kp-warmup must be in [0, --anneal-start], got {cfg.kp_warmup}")
    if cfg.kp_warmup and (cfg.method != "dkp" or not cfg.init_from):
        raise DopingError("--kp-warmup needs --method dkp and --init-from (a dense run to rebase S on)")
    if cfg.stop_gain < 0 or cfg.stop_lr < 0:
        raise DopingError("--stop-gain and --stop-lr must be >= 0")
    if cfg.cmr not in CMR_MODES:
        raise DopingError(f"--cmr must be one of {', '.join(CMR_MODES)}, got {cfg.cmr!r}")
    if cfg.cmr_schedule not in CMR_SCHEDULES:
        raise DopingError(f"--cmr-schedule must be one of {', '.join(CMR_SCHEDULES)}, got {cfg.cmr_schedule!r}")
    if not 0.0 <= cfg.cmr_p < 1.0 or not 0.0 <= cfg.dropout < 1.0:
        raise DopingError("--cmr-p and --dropout must be in [0, 1)")
    if cfg.device not in ("cpu", "cuda", "auto"):
        raise DopingError(f"--device must be cpu, cuda or auto, got {cfg.device!r}")
    if training and cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise DopingError("--device cuda: no CUDA device is available")
    for name in ("epochs", "hidden", "layers", "bptt", "batch", "eval_batch", "anneal_every"):
        if getattr(cfg, name) < 1:
            raise DopingError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    for name, hi in TRAIN_LIMITS.items():
        if getattr(cfg, name) > hi:
            raise DopingError(f"--{name.replace('_', '-')} must be <= {hi}, got {getattr(cfg, name)}")
    for name in ("max_batches", "eval_tokens", "threads", "curve_every", "curve_tokens", "seed"):
        if getattr(cfg, name) < 0:
            raise DopingError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(cfg, name)}")
    if not (cfg.lr > 0 and cfg.clip > 0 and cfg.init_scale > 0):
        raise DopingError("--lr, --clip and --init-scale must be > 0")
    if not 0 < cfg.lr_decay <= 1:
        raise DopingError(f"--lr-decay must be in (0, 1], got {cfg.lr_decay}")
    if not 0.0 <= cfg.anneal_start <= cfg.anneal_end <= 1.0:
        raise DopingError(f"annealing needs 0 <= --anneal-start <= --anneal-end <= 1, got {cfg.anneal_start}, "
                          f"{cfg.anneal_end}")
    if not cfg.ratio >= 1.0:
        raise DopingError(f"--ratio must be >= 1, got {cfg.ratio}")
