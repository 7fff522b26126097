"""cocotb + Verilator regression of the LSTM top (hw/lstm.py): whole token sequences of random
doped LSTMs against the golden integer LSTM, state reset between sequences, with back-pressure;
clean runs take exactly the model's cycles per token."""

from __future__ import annotations

import numpy as np
import pytest

from doping.config import AccelConfig
from doping.errors import DopingError
from doping.pack import write_pack
from doping.sim.runner import run_lstm
from doping.synth import synth_layer, synth_lstm

LSTM_CFG = AccelConfig(rows=2, cols=3, lanes=2, max_m=64, max_n=64, max_factor=128, max_intermediate=256,
                       max_nnz=4096, resident_layers=2, lstm_cell=1)


def random_lstm_packs(tmp_path, count, seed, cfg=LSTM_CFG):
    """``count`` random LSTM packs that fit ``cfg`` (input 1..24, hidden 1..16, both multiples of
    its ``stream_bytes``; 1 or 2 layers), each gate layer at a random ratio up to what its factors
    allow (at most 6)."""
    from doping.compression import choose_factor_shapes

    from doping.hw.loader import lstm_load_words

    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        w = cfg.stream_bytes
        i, h, n = w * int(rng.integers(1, 24 // w + 1)), w * int(rng.integers(1, 16 // w + 1)), int(rng.integers(1, 3))
        shapes = [(4 * h, (i if l == 0 else h) + h) for l in range(n)]
        most = min(m * c / sum(a * b for a, b in choose_factor_shapes(m, c)) for m, c in shapes)
        ratio = float(rng.uniform(1.0, min(6.0, most)))
        gates, cells = synth_lstm(i, h, n, ratio, seed=int(rng.integers(1 << 30)))
        try:
            lstm_load_words(cells, cfg)
        except DopingError:  # a gate layer's tiling does not fit this config: draw another
            continue
        out.append(write_pack(tmp_path / f"lstm{len(out)}.dpack", gates, lstm=cells))
    return out


@pytest.mark.parametrize("batch,w", [(3, 2), pytest.param(3, 1, marks=pytest.mark.slow),
                                     pytest.param(1, 1, marks=pytest.mark.slow)])
def test_lstm_sequences_with_backpressure_and_cycles(tmp_path, batch, w):
    """Three sequences interleaved (each lane its own sequences and resets; two elements a beat on
    tok, x, y and h, the cell unit two rows a cycle), or one (make sim-full; `make test` runs one
    sequence through the flow's LSTM check)."""
    from dataclasses import replace

    cfg = replace(LSTM_CFG, lstm_batch=batch, stream_bytes=w)
    for pack in random_lstm_packs(tmp_path, 1, seed=21 + batch, cfg=cfg):
        r = run_lstm(pack, cfg, tokens=24, seed=3, tok_gap=0.2, h_stall=0.3)
        assert r.mismatches == 0 and r.tokens == 24 and r.sequences >= 2 * batch, r.mismatch_examples
        clean = run_lstm(pack, cfg, tokens=6 * batch, seed=4)
        assert clean.mismatches == 0 and clean.steps == 6
        assert set(clean.step_intervals) == {clean.model_cycles_per_step}


@pytest.mark.slow
def test_lstm_regression_catches_a_bug(tmp_path):
    """The datapath rounding down instead of half up (a deliberate bug) changes pre-activations:
    the token scoreboard must notice."""
    (pack,) = random_lstm_packs(tmp_path, 1, seed=31)
    r = run_lstm(pack, LSTM_CFG, tokens=12, seed=1, mutation="round_down")
    assert r.mismatches > 0 and r.cocotb["failed"] == 1
    ex = r.mismatch_examples[0]
    assert ex["got"] != ex["want"]


def test_run_lstm_refuses_what_it_cannot_run(tmp_path):
    plain = write_pack(tmp_path / "plain.dpack", [synth_layer((16, 12), 2, seed=1)])
    with pytest.raises(DopingError, match="has no LSTM section"):
        run_lstm(plain, LSTM_CFG, tokens=4)
    gates, cells = synth_lstm(4, 3, 2, 2, seed=1)
    two = write_pack(tmp_path / "two.dpack", gates, lstm=cells)
    from dataclasses import replace

    with pytest.raises(DopingError, match="resident_layers >= 2"):
        run_lstm(two, replace(LSTM_CFG, resident_layers=1), tokens=4)
    with pytest.raises(DopingError, match="lstm_cell = 0"):
        run_lstm(two, replace(LSTM_CFG, lstm_cell=0), tokens=4)
    with pytest.raises(DopingError, match="tokens must give 2..1000000 steps"):
        run_lstm(two, LSTM_CFG, tokens=1)


@pytest.mark.slow
def test_lstm_full_regression(tmp_path):
    """make sim-full: 12 random LSTMs x 200 tokens under back-pressure."""
    for k, pack in enumerate(random_lstm_packs(tmp_path, 12, seed=77)):
        r = run_lstm(pack, LSTM_CFG, tokens=200, seed=k, tok_gap=0.2, h_stall=0.3)
        assert r.mismatches == 0, r.mismatch_examples


@pytest.mark.slow
@pytest.mark.parametrize("config,cycles", [("ptb-h200-lstm", 2899), ("ptb-h200-lstm-w4", 1353), ("ptb-h200-lstm-w8", 752)])
def test_ptb_lstm_pack_on_its_design(config, cycles):
    """make sim-full: the exported 2x200 PTB model's whole LSTM (packs/ptb-h200-dkp-lstm25.dpack)
    on its design points, 60 tokens under stalls, then clean: cycles per token equal the model —
    2,899 at one element a beat (G1 on X's first row band, SEND behind G2's; 3,483 before, 3,693
    with one shadow bank per PE), 1,353 with the cell unit four rows a cycle, 752 on the flow's
    16x16, 64-lane, W 8 point."""
    from pathlib import Path

    from doping.config import load_config

    root = Path(__file__).resolve().parents[2]
    pack, cfg = root / "packs" / "ptb-h200-dkp-lstm25.dpack", load_config(str(root / "configs" / f"{config}.toml"))
    r = run_lstm(pack, cfg, tokens=60, seed=5, tok_gap=0.1, h_stall=0.2)
    assert r.mismatches == 0, r.mismatch_examples
    clean = run_lstm(pack, cfg, tokens=8, seed=6)
    assert clean.mismatches == 0 and set(clean.step_intervals) == {clean.model_cycles_per_step} == {cycles}
