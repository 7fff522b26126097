"""The one pricing path: a pack's layers (and its LSTM section) on one accelerator config."""

from __future__ import annotations

from dataclasses import replace

from doping.config import AccelConfig
from doping.estimate.lstm import lstm_per_token
from doping.estimate.model import combine, estimate, per_token, runs_one_sequence
from doping.estimate.results import ModelEstimate
from doping.golden import QuantLayer


def price_layers(layers: list[QuantLayer], cfg: AccelConfig, cells=None, tokens: bool = True) -> ModelEstimate:
    """The one pricing path (``doping estimate``, the flow, compare, sweep and the baselines):
    every layer on ``cfg`` (``check``: a layer that does not fit is an error), run one after
    another (``combine``); with ``tokens``, per token when the layers are one sequence's stack
    (``runs_one_sequence``); with ``cells`` (golden ``LSTMLayerQuant`` per layer, the pack's LSTM
    section) the whole LSTM per token on the LSTM top."""
    parts = [estimate(layer, cfg) for layer in layers]
    r = combine(parts)
    if tokens and len(layers) > 1 and runs_one_sequence(layers, cfg):
        r = replace(r, per_token=per_token(layers, cfg, parts))
    if cells is not None:
        r = replace(r, lstm=lstm_per_token(cells, cfg))
    return r
