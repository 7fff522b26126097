"""Training on the shipped tiny corpus: determinism, resume, DDP, NaN, bad input, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from doping import golden
from doping.data import load_corpus
from doping.errors import DopingError
from doping.export import collect_gate_inputs, export_run
from doping.pack import read_pack
from doping.train import TrainConfig, load_run_model, train

SMALL = dict(data="tiny", hidden=16, bptt=10, batch=8, eval_batch=4, epochs=3, max_batches=12, decay_after=2,
             threads=1)


def _train(tmp_path, name, **kw):
    cfg = TrainConfig(**{**SMALL, **kw})
    return train(cfg, tmp_path / name, progress=False, log=lambda *_: None), tmp_path / name


def test_tiny_corpus_loads():
    c = load_corpus("tiny")
    assert c.vocab_size < 100 and c.train.numel() > 10_000 and "<eos>" in c.words and "<unk>" in c.words


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(DopingError, match="lacks ptb.train.txt, ptb.valid.txt, ptb.test.txt"):
        load_corpus(tmp_path)


def test_deterministic_and_resume_reproduces(tmp_path):
    kw = dict(method="dkp", ratio=4.0, cmr="dropout", cmr_p=0.3, anneal_end=0.5)
    full, run_full = _train(tmp_path, "full", **kw)
    again, _ = _train(tmp_path, "again", **kw)
    assert full["test_ppl"] == again["test_ppl"]
    # interrupted after 2 of 3 epochs, then resumed
    cfg = TrainConfig(**{**SMALL, **kw})
    assert train(cfg, tmp_path / "cut", progress=False, log=lambda *_: None, stop_after=2) is None
    assert not (tmp_path / "cut" / "final.json").exists()
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False, log=lambda *_: None)
    m_full = json.loads((run_full / "metrics.json").read_text())
    m_cut = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert [e["valid_ppl"] for e in m_full] == [e["valid_ppl"] for e in m_cut]
    assert resumed["test_ppl"] == full["test_ppl"]


def test_annealed_run_meets_ratio(tmp_path):
    s, run = _train(tmp_path, "dkp", method="dkp", ratio=4.0, anneal_end=0.5)
    assert s["lstm"]["param_ratio"] == pytest.approx(4.0, rel=1e-3)
    model, _, _ = load_run_model(run)
    for g in model.lstm.gates:
        assert int(g.mask.sum()) == g.target_nnz and g.s[~g.mask].abs().sum() == 0


@pytest.mark.parametrize("method", ["prune", "lmf", "hmd", "kp"])
def test_baselines_train_from_dense(tmp_path, method):
    _, dense = _train(tmp_path, "dense", epochs=1)
    s, _ = _train(tmp_path, method, method=method, ratio=4.0, init_from=str(dense), epochs=2, anneal_end=0.5)
    assert np.isfinite(s["test_ppl"]) and s["lstm"]["param_ratio"] >= 3.5


def test_nan_stops_with_clear_message(tmp_path, monkeypatch):
    import doping.train as train_mod

    real = train_mod.nn.functional.cross_entropy
    # a loss that turns NaN, as a diverging run's does (lr NaN is now refused before training)
    monkeypatch.setattr(train_mod.nn.functional, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(DopingError, match="training diverged: the loss is not finite"):
        _train(tmp_path, "nan")
    monkeypatch.undo()
    with pytest.raises(DopingError, match="--lr, --clip and --init-scale must be > 0"):
        _train(tmp_path, "nan-lr", lr=float("nan"))


def test_ddp_two_processes_match_single(tmp_path):
    args = ["--data", "tiny", "--hidden", "16", "--bptt", "10", "--batch", "8", "--eval-batch", "4", "--epochs", "2",
            "--max-batches", "6", "--threads", "1", "--lr", "1", "--no-progress"]
    single, _ = _train(tmp_path, "single", epochs=2, max_batches=6, lr=1.0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                        "-m", "doping.cli", "train", *args, "-o", str(tmp_path / "ddp")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "final.json").read_text())
    assert ddp["world_size"] == 2
    # same gradients up to float32 summation order (all-reduce vs one batch)
    assert ddp["valid_ppl"] == pytest.approx(single["valid_ppl"], rel=2e-3)
    assert ddp["test_ppl"] == pytest.approx(single["test_ppl"], rel=2e-3)


def test_export_pack_and_golden_match_torch(tmp_path):
    s, run = _train(tmp_path, "dkp", method="dkp", ratio=4.0, anneal_end=0.5)
    report = export_run(run, tmp_path / "m.dpack", calib_vectors=512, log=lambda *_: None)
    pack = read_pack(tmp_path / "m.dpack")
    assert [l.name for l in pack.layers] == ["lstm.l0.gates", "lstm.l1.gates"]
    assert pack.provenance["method"] == "dkp"
    assert report["lstm_compression"]["param_ratio"] == pytest.approx(4.0, rel=1e-3)
    # int8 through the golden model costs little perplexity, and so does the whole integer LSTM
    assert report["test_ppl_golden_int8"] < 1.05 * report["test_ppl_float"]
    assert report["test_ppl_int_lstm"] < 1.05 * report["test_ppl_float"]
    model, cfg, _ = load_run_model(run)
    from doping.data import batchify
    # the calibration vectors themselves: by construction nothing saturates on them
    calib = collect_gate_inputs(model, batchify(load_corpus("tiny").valid, 4), 10, 512, seed=0)
    for layer, gate, v in zip(pack.layers, model.lstm.gates, calib):
        sc = layer.scales()
        xq = np.clip(np.round(v / sc["x"]), -128, 127).astype(np.int8)
        tr = golden.trace(layer, xq)
        ok = (tr.clipped["t"] == 0) & (tr.clipped["y"] == 0)
        got = golden.dequantise_output(layer, tr.y)
        w = gate.weight().detach().double().numpy()
        want = xq * sc["x"] @ w.T  # torch's float weights on the same quantised input
        wq = np.kron(layer.a * sc["a"], layer.b * sc["b"]) + layer.dense_overlay() * sc["s"]
        bound = golden.error_bound(layer)[None, :] + np.abs(xq * sc["x"]) @ np.abs(wq - w).T
        assert ok
        assert np.all(np.abs(got - want) <= bound + 1e-9)


@pytest.mark.parametrize("method,ratio,names", [
    ("prune", 4.0, ["lstm.l0.gates", "lstm.l1.gates"]),
    ("lmf", 4.0, ["lstm.l0.gates.v", "lstm.l0.gates.u", "lstm.l1.gates.v", "lstm.l1.gates.u"]),
    ("dense", 1.0, ["lstm.l0.gates", "lstm.l1.gates"]),
])
def test_export_baselines_as_packs(tmp_path, method, ratio, names):
    """Pruning (no Kronecker part), LMF (a chain per gate) and dense export to packs the
    accelerator runs, and int8 through the golden model stays close to float."""
    kw = dict(method=method, ratio=ratio, anneal_end=0.5) if method != "dense" else {}
    _, run = _train(tmp_path, method, epochs=2, **kw)
    report = export_run(run, tmp_path / "m.dpack", calib_vectors=256, log=lambda *_: None)
    pack = read_pack(tmp_path / "m.dpack")
    assert [l.name for l in pack.layers] == names and pack.provenance["method"] == method
    if method == "lmf":
        assert [l.input for l in pack.layers] == [None, names[0], None, names[2]]
    assert all(l.has_kp == (method != "prune") for l in pack.layers)
    assert report["test_ppl_golden_int8"] < 1.05 * report["test_ppl_float"]


def test_export_rejects_hmd_runs(tmp_path):
    _, run = _train(tmp_path, "hmd", epochs=1, method="hmd", ratio=4.0)
    with pytest.raises(DopingError, match="export takes dkp, kp, prune, dense, lmf runs"):
        export_run(run, tmp_path / "x.dpack")
    assert not (tmp_path / "x.dpack").exists()


@pytest.mark.parametrize("cmr,schedule", [("seq", "ramp"), ("dropconnect", "fixed"), ("dropout", "ramp")])
def test_cmr_variants_train_on_the_tiny_corpus(tmp_path, cmr, schedule):
    s, run = _train(tmp_path, f"{cmr}-{schedule}", method="dkp", ratio=4.0, kp_share=0.5, cmr=cmr, cmr_p=0.3,
                    cmr_schedule=schedule, anneal_end=0.5, curve_every=4, epochs=2)
    assert 0 < s["overlay_density"] < 1 and 0.3 < s["kp_share"] < 0.7
    assert s["test_ppl_without_overlay"] > 0 and s["cma_rise"] is not None
    assert s["lstm"]["param_ratio"] == pytest.approx(4.0, rel=0.01)
    _check_density_by_gate(s, run)


def _check_density_by_gate(s, run):
    """final.json's per-gate densities are the model's masks, block by block; A = 0 leaves S alone."""
    from doping.train import density_by_gate, load_run_model, without_kronecker

    model, _, _ = load_run_model(run)
    assert s["density_by_gate"] == density_by_gate(model)
    for row, g in zip(s["density_by_gate"], model.lstm.gates):
        nnz = sum(row[k] * (g.out_features // 4) * g.in_features for k in "ifgo")
        assert round(nnz) == int(g.mask.sum())
        if "kp_energy_share" in row:
            assert 0 < row["kp_energy_share"] < 1
    bare = without_kronecker(model)
    for g, b in zip(model.lstm.gates, bare.lstm.gates):
        assert torch.equal(b.weight(), g.s) and not torch.equal(g.weight(), g.s)
    assert s["test_ppl_without_kp"] > 0


@pytest.mark.parametrize("method,kw", [("kp_sum", {}), ("hmd", {"hmd_split": 0.25})])
def test_new_baselines_train_from_a_dense_run(tmp_path, method, kw):
    _, dense = _train(tmp_path, "dense")
    s, _ = _train(tmp_path, method, method=method, ratio=4.0, init_from=str(dense), epochs=2, anneal_end=0.5, **kw)
    assert s["lstm"]["param_ratio"] >= 3.5 and s["test_ppl"] > 0


def test_plateau_schedule_decays_only_after_annealing_and_stops():
    from doping.train import _stopped, next_lr

    cfg = TrainConfig(lr=8.0, lr_schedule="plateau", lr_decay=0.5, stop_lr=1.5)
    hist = []
    for ppl, annealed in ((90, False), (99, False), (95, True), (96, True), (94, True), (97, True), (98, True)):
        hist.append({"lr": next_lr(cfg, hist), "valid_ppl": ppl, "annealed": annealed})
    # no decay while annealing (99 > 90), a decay after each annealed epoch that does not improve
    assert [h["lr"] for h in hist] == [8.0, 8.0, 8.0, 8.0, 4.0, 4.0, 2.0]
    assert next_lr(cfg, hist) == 1.0 and _stopped(cfg, hist)


def test_bad_training_options_are_clear(tmp_path):
    for kw, match in ((dict(cmr="bogus"), "--cmr"), (dict(lr_schedule="cosine"), "--lr-schedule"),
                      (dict(cmr_schedule="x"), "--cmr-schedule"), (dict(factors="3x"), "M1xN1,M2xN2"),
                      (dict(epochs=0), "--epochs")):
        with pytest.raises(DopingError, match=match):
            _train(tmp_path, "bad", **kw)


def test_quick_training_is_one_short_epoch_with_bounded_evaluation(tmp_path):
    """`doping train --quick`: one epoch of at most 20 batches, validation and test perplexity on
    the first 2,000 tokens of each split, whatever the command line asked for."""
    from doping.cli import main
    from doping.data import load_corpus as corpus
    from doping.train import _splits

    out = tmp_path / "q"
    assert main(["train", "--quick", "--no-progress", "--hidden", "16", "--epochs", "30", "--method", "dkp",
                 "--ratio", "4", "-o", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["epochs"], cfg["max_batches"], cfg["eval_tokens"]) == (1, 20, 2000)
    assert len(json.loads((out / "metrics.json").read_text())) == 1

    class One:
        world, rank = 1, 0

    s = _splits(TrainConfig(**{**cfg, "eval_tokens": 500}), corpus("tiny"), One(), "cpu")
    assert s.n_batches == 20 and s.valid.numel() == s.test.numel() == 500
    full = _splits(TrainConfig(hidden=16), corpus("tiny"), One(), "cpu")
    assert full.test.numel() > 1500 and full.n_batches > 20  # the whole splits otherwise
