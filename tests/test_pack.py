"""Model pack: round trip, determinism, and one clear error per kind of malformed pack."""

from __future__ import annotations

import numpy as np
import pytest

from doping import golden
from doping.errors import PackError
from doping.pack import read_pack, write_pack
from doping.synth import random_inputs, synth_layer
from tests.conftest import rewrite_pack


@pytest.fixture
def pack_path(tmp_path):
    layer = synth_layer((48, 30), 6, seed=7)
    return write_pack(tmp_path / "ok.dpack", [layer], provenance={"method": "dkp", "source": "test"})


def test_round_trip_is_exact(tmp_path):
    layers = [synth_layer((48, 30), 6, seed=7, name="l0"), synth_layer((20, 12), 2, seed=8, order="XB", name="l1")]
    p = write_pack(tmp_path / "two.dpack", layers, provenance={"method": "dkp"})
    back = read_pack(p)
    assert [l.name for l in back.layers] == ["l0", "l1"] and back.provenance == {"method": "dkp"}
    for a, b in zip(layers, back.layers):
        for k in ("a", "b", "rowptr", "cols", "vals"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
        assert (a.t_rq, a.ov_rq, a.y_rq, a.order, a.shape) == (b.t_rq, b.ov_rq, b.y_rq, b.order, b.shape)
        assert a.scales() == b.scales()
        x = random_inputs(a, 5)
        np.testing.assert_array_equal(golden.forward(a, x), golden.forward(b, x))


def test_same_content_same_bytes(tmp_path):
    p1 = write_pack(tmp_path / "a.dpack", [synth_layer((48, 30), 6, seed=7)])
    p2 = write_pack(tmp_path / "b.dpack", [synth_layer((48, 30), 6, seed=7)])
    assert p1.read_bytes() == p2.read_bytes()


def _set_layer(key, value):
    def edit(m):
        m["layers"][0][key] = value
    return edit


BAD_PACKS = {
    "unknown version": (dict(manifest=lambda m: m.update(version=99)), "unsupported pack version 99"),
    "not a pack manifest": (dict(manifest=lambda m: m.update(format="zip")), "not a doping model pack"),
    "factor shapes inconsistent": (dict(manifest=_set_layer("shape", [48, 31])), "Kronecker product"),
    "factor array vs manifest": (dict(manifest=lambda m: m["layers"][0]["factors"].update(a=[2, 2])),
                                 "array 'a' has shape .* the manifest implies \\(2, 2\\)"),
    "missing array": (dict(drop=("layers/0/cols.npy",)), "array 'cols'"),
    "missing manifest field": (dict(manifest=lambda m: m["layers"][0].pop("order")), "'order' is missing"),
    "bad requant": (dict(manifest=lambda m: m["layers"][0]["quant"]["output_requant"].update(shift=99)),
                    "shift 99 outside"),
    "nnz disagrees": (dict(manifest=lambda m: m["layers"][0]["overlay"].update(nnz=1)), "array 'cols' has shape .* the manifest implies \\(1,\\)"),
    "no manifest": (dict(drop=("manifest.json",)), "no manifest.json"),
}


@pytest.mark.parametrize("case", sorted(BAD_PACKS))
def test_malformed_manifest_is_rejected(tmp_path, pack_path, case):
    edits, message = BAD_PACKS[case]
    bad = rewrite_pack(pack_path, tmp_path / "bad.dpack", **edits)
    with pytest.raises(PackError, match=message):
        read_pack(bad)


def _arrays(pack_path):
    p = read_pack(pack_path).layer()
    return p, {k: getattr(p, k).copy() for k in ("a", "b", "rowptr", "cols", "vals")}


def test_overlay_index_out_of_range(tmp_path, pack_path):
    layer, arr = _arrays(pack_path)
    arr["cols"][-1] = layer.n
    bad = rewrite_pack(pack_path, tmp_path / "bad.dpack", arrays={"layers/0/cols.npy": arr["cols"]})
    with pytest.raises(PackError, match=r"column index 30 .* out of range 0\.\.29"):
        read_pack(bad)


@pytest.mark.parametrize("kind", ["unsorted", "duplicate"])
def test_overlay_unsorted_or_duplicate(tmp_path, pack_path, kind):
    layer, arr = _arrays(pack_path)
    row = int(np.flatnonzero(layer.row_nnz() >= 2)[0])
    i = int(layer.rowptr[row])
    cols = arr["cols"]
    if kind == "unsorted":
        cols[i], cols[i + 1] = cols[i + 1], cols[i]
    else:
        cols[i + 1] = cols[i]
    bad = rewrite_pack(pack_path, tmp_path / "bad.dpack", arrays={"layers/0/cols.npy": cols})
    with pytest.raises(PackError, match=f"overlay row {row} has {kind} column indices"):
        read_pack(bad)


def test_non_monotone_row_pointers(tmp_path, pack_path):
    layer, arr = _arrays(pack_path)
    rp = arr["rowptr"]
    j = layer.m // 2
    rp[j] = rp[j + 1] + 1
    bad = rewrite_pack(pack_path, tmp_path / "bad.dpack", arrays={"layers/0/rowptr.npy": rp})
    with pytest.raises(PackError, match="row pointers are not monotone"):
        read_pack(bad)


@pytest.mark.parametrize("member", ["a", "vals"])
def test_value_outside_int8(tmp_path, pack_path, member):
    _, arr = _arrays(pack_path)
    wide = arr[member].astype(np.int16)
    wide.flat[0] = 200
    bad = rewrite_pack(pack_path, tmp_path / "bad.dpack", arrays={f"layers/0/{member}.npy": wide})
    with pytest.raises(PackError, match="value 200, outside int8"):
        read_pack(bad)


def test_float_array_rejected(tmp_path, pack_path):
    _, arr = _arrays(pack_path)
    bad = rewrite_pack(pack_path, tmp_path / "bad.dpack", arrays={"layers/0/b.npy": arr["b"].astype(np.float32)})
    with pytest.raises(PackError, match="array 'b' has dtype float32"):
        read_pack(bad)


def test_truncated_pack(tmp_path, pack_path):
    data = pack_path.read_bytes()
    for cut in (len(data) // 2, 100, 0):
        bad = tmp_path / f"cut{cut}.dpack"
        bad.write_bytes(data[:cut])
        with pytest.raises(PackError, match="not a doping model pack|corrupt|not a readable"):
            read_pack(bad)


def test_non_pack_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(PackError, match="not a doping model pack"):
        read_pack(text)
    with pytest.raises(PackError, match="does not exist"):
        read_pack(tmp_path / "missing.dpack")
    with pytest.raises(PackError, match="is a directory"):
        read_pack(tmp_path)


def test_baseline_packs_round_trip(tmp_path):
    """Version 2: a layer without a Kronecker part and a chain (LMF's U takes V's output)."""
    from doping.synth import synth_method

    for method in ("prune", "lmf", "dense", "kp"):
        layers = synth_method(method, (24, 20), 1 if method == "dense" else 4, seed=3)
        back = read_pack(write_pack(tmp_path / f"{method}.dpack", layers)).layers
        assert [(l.name, l.input, l.has_kp, l.a.shape) for l in back] == \
               [(l.name, l.input, l.has_kp, l.a.shape) for l in layers]
        xs = {l.name: random_inputs(l, 4, seed=1) for l in layers}
        want, got = golden.forward_chain(layers, xs), golden.forward_chain(back, xs)
        assert all(np.array_equal(want[k], got[k]) for k in want)
    dense = read_pack(tmp_path / "dense.dpack").layer()
    x = random_inputs(dense, 4, seed=2)
    assert np.array_equal(golden.trace(dense, x).t_q.reshape(4, -1), x)  # the intermediate is x itself
    prune = read_pack(tmp_path / "prune.dpack").layer()
    x = random_inputs(prune, 4, seed=2)
    # no Kronecker part: the output is the requantised overlay alone
    assert np.array_equal(golden.trace(prune, x).acc, golden.overlay_path(prune, x))


@pytest.fixture
def lmf_path(tmp_path):
    from doping.synth import synth_method

    return write_pack(tmp_path / "lmf.dpack", synth_method("lmf", (24, 20), 4, seed=3))


def _set_layer1(key, value):
    def edit(m):
        m["layers"][1][key] = value
    return edit


@pytest.mark.parametrize("edit,message", [
    (_set_layer1("input", "nope"), "takes its input from 'nope', which is not an earlier layer"),
    (_set_layer1("input", 7), "layer input must be a layer name or null"),
    (lambda m: m["layers"].reverse(), "not an earlier layer"),
    (lambda m: m.update(version=1) or m["layers"][0].update(factors=None), "factors null .* needs pack version 2"),
])
def test_malformed_chain_is_rejected(tmp_path, lmf_path, edit, message):
    with pytest.raises(PackError, match=message):
        read_pack(rewrite_pack(lmf_path, tmp_path / "bad.dpack", manifest=edit))


def test_chain_width_must_match(tmp_path):
    from doping.synth import synth_method

    v, u = synth_method("lmf", (24, 20), 4, seed=3)
    other = synth_method("lmf", (30, 20), 4, seed=3)[1]
    other.input = v.name
    assert other.n != v.m
    with pytest.raises(PackError, match="inputs but its input layer"):
        write_pack(tmp_path / "x.dpack", [v, other])


@pytest.fixture
def lstm_path(tmp_path):
    from doping.synth import synth_lstm

    gates, cells = synth_lstm(6, 4, 2, 3, seed=5)
    return write_pack(tmp_path / "lstm.dpack", gates, lstm=cells)


def test_lstm_pack_round_trip(lstm_path):
    """Version 3: the integer LSTM around the gate layers comes back identical and runs the same."""
    from doping.golden.lstm import run_sequence
    from doping.synth import synth_lstm

    _, cells = synth_lstm(6, 4, 2, 3, seed=5)
    back = read_pack(lstm_path)
    assert back.version == 3 and [c.gates[0].name for c in back.lstm] == ["lstm.l0.gates", "lstm.l1.gates"]
    assert all(c.gates[0] is l for c, l in zip(back.lstm, back.layers))
    for a, b in zip(cells, back.lstm):
        assert (a.hidden, a.pre_rq, a.cell_rq, a.h_rq, a.out_rq) == (b.hidden, b.pre_rq, b.cell_rq, b.h_rq, b.out_rq)
        for k in ("bias", "sigmoid", "tanh", "tanh_c"):
            assert getattr(b, k).dtype == getattr(a, k).dtype and np.array_equal(getattr(a, k), getattr(b, k))
    xs = np.random.default_rng(0).integers(-128, 128, (7, 3, 6)).astype(np.int8)
    assert np.array_equal(run_sequence(cells, xs)[0], run_sequence(back.lstm, xs)[0])


def _lstm(k, fn):
    def edit(m):
        fn(m["lstm"][k])
    return edit


@pytest.mark.parametrize("edit,arrays,message", [
    (_lstm(0, lambda e: e.update(gates=["nope"])), None, "gate layer 'nope' is not a layer of the pack"),
    (_lstm(1, lambda e: e.update(gates=["lstm.l0.gates"])), None, "already serves another LSTM layer"),
    (_lstm(0, lambda e: e.update(hidden=5)), None, "bias' has shape \\(16,\\), the manifest implies \\(20,\\)"),
    (_lstm(0, lambda e: e["requant"]["cell"].update(shift=60)), None, "shift 60 outside"),
    (_lstm(0, lambda e: e["requant"].pop("h")), None, "'h' is missing"),
    (lambda m: m.update(version=2), None, "an LSTM section needs pack version 3"),
    (lambda m: m.update(lstm=[]), None, "1..64 LSTM layers"),
    (lambda m: m["lstm"].reverse(), None, "LSTM layer 1 takes 6 inputs besides h, but LSTM layer 0 has hidden size 4"),
    (None, {"lstm/0/sigmoid.npy": np.full(256, -5, np.int16)}, "sigmoid holds values outside 0..32767"),
    (None, {"lstm/1/tanh_c.npy": np.full(256, 40000, np.int32)}, "tanh_c holds values outside int16"),
    (None, {"lstm/0/bias.npy": np.zeros(16, np.float32)}, "array 'bias' has dtype float32"),
])
def test_malformed_lstm_section_is_rejected(tmp_path, lstm_path, edit, arrays, message):
    with pytest.raises(PackError, match=message):
        read_pack(rewrite_pack(lstm_path, tmp_path / "bad.dpack", manifest=edit, arrays=arrays))


def test_lstm_writer_checks_the_stack(tmp_path):
    import dataclasses

    from doping.synth import synth_lstm

    gates, cells = synth_lstm(6, 4, 2, 3, seed=5)
    with pytest.raises(PackError, match="is not a layer of the pack"):
        write_pack(tmp_path / "x.dpack", gates[:1], lstm=cells)
    with pytest.raises(PackError, match="16 outputs, an LSTM of hidden size 5 needs 20"):
        write_pack(tmp_path / "x.dpack", gates, lstm=[dataclasses.replace(cells[0], hidden=5), cells[1]])
    assert not (tmp_path / "x.dpack").exists()
