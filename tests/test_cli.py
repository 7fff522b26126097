"""The `doping` command: each subcommand works, and bad input gives one line, exit 2, no output file."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import numpy as np
import pytest

from doping import golden
from doping.cli import build_parser, main
from doping.pack import read_pack
from tests.conftest import rewrite_pack


def run(*args):
    return subprocess.run([sys.executable, "-m", "doping.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def pack(tmp_path):
    p = tmp_path / "l.dpack"
    assert main(["pack", "synth", "--shape", "60x40", "--ratio", "5", "--seed", "3", "-o", str(p)]) == 0
    return p


def test_every_subcommand_has_help():
    for args in (["--help"], ["pack", "--help"], ["pack", "synth", "--help"], ["pack", "inspect", "--help"],
                 ["golden", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(args)
        assert e.value.code == 0


def test_synth_meets_ratio_and_inspect_json(pack, capsys):
    assert main(["pack", "inspect", str(pack), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    (layer,) = s["layers"]
    assert layer["shape"] == [60, 40]
    c = layer["compression"]
    assert c["param_ratio"] >= 5 and c["params"] == 60 * 40 // 5
    assert c["bit_ratio"] < c["param_ratio"]  # indices cost bits
    assert main(["pack", "inspect", str(pack)]) == 0
    text = capsys.readouterr().out
    assert "60x40" in text and "parameters" in text and "stored bits" in text


def test_synth_explicit_factors(tmp_path, capsys):
    p = tmp_path / "f.dpack"
    assert main(["pack", "synth", "--shape", "60x40", "--ratio", "5", "--factors", "6x4,10x10", "--order", "XB",
                 "-o", str(p)]) == 0
    layer = read_pack(p).layer()
    assert layer.factor_shapes == ((6, 4), (10, 10)) and layer.order == "XB"


@pytest.mark.parametrize("method", ["kp", "prune", "dense", "lmf"])
def test_synth_every_method(tmp_path, capsys, method):
    from doping.pack import totals

    p = tmp_path / f"{method}.dpack"
    ratio = "1" if method == "dense" else "5"
    assert main(["pack", "synth", "--method", method, "--shape", "60x40", "--ratio", ratio, "-o", str(p)]) == 0
    pk = read_pack(p)
    assert pk.provenance["method"] == method and f"({method})" in capsys.readouterr().out
    t = totals(pk.layers)
    assert t["dense_params"] == 60 * 40 and (t["param_ratio"] >= 5 if method != "dense" else t["params"] == 2401)
    assert [l.has_kp for l in pk.layers] == {"kp": [True], "prune": [False], "dense": [True],
                                               "lmf": [True, True]}[method]
    if method == "lmf":
        assert pk.layers[1].input == pk.layers[0].name
    assert main(["pack", "inspect", str(p)]) == 0
    text = capsys.readouterr().out
    assert ("no Kronecker part" in text) == (method == "prune")
    assert ("input: the output of synth.v" in text) == (method == "lmf")


def test_synth_method_errors(tmp_path):
    out = tmp_path / "x.dpack"
    _assert_clean_failure(run("pack", "synth", "--method", "dense", "--shape", "60x40", "--ratio", "5", "-o", out),
                          "a dense layer has ratio 1", out)
    _assert_clean_failure(run("pack", "synth", "--method", "prune", "--shape", "60x40", "--ratio", "5", "--factors",
                              "6x4,10x10", "-o", out), "apply to the dkp method only", out)
    _assert_clean_failure(run("pack", "synth", "--method", "lmf", "--shape", "60x40", "--ratio", "3000", "-o", out),
                          "no rank", out)


def test_golden_int_and_float(tmp_path, pack):
    layer = read_pack(pack).layer()
    x = np.random.default_rng(0).integers(-128, 128, size=(7, layer.n)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    r = run("golden", pack, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), golden.forward(layer, x))
    r = run("golden", pack, "--input", tmp_path / "x.npy", "--output", tmp_path / "f.npy", "--float")
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), golden.float_forward(layer, x))


def _assert_clean_failure(r, message, *not_written):
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    for p in not_written:
        assert not p.exists()


@pytest.mark.parametrize("case", ["width", "dtype", "rank", "not-npy", "missing"])
def test_golden_bad_input_batch(tmp_path, pack, case):
    x = tmp_path / "x.npy"
    if case == "width":
        np.save(x, np.zeros((3, 41), np.int8)); msg = "expected (batch, 40)"
    elif case == "dtype":
        np.save(x, np.zeros((3, 40), np.float32)); msg = "dtype float32, expected int8"
    elif case == "rank":
        np.save(x, np.zeros((2, 3, 40), np.int8)); msg = "expected (batch, 40)"
    elif case == "not-npy":
        x.write_text("not numpy"); msg = "not a readable .npy"
    else:
        msg = "does not exist"
    out = tmp_path / "y.npy"
    _assert_clean_failure(run("golden", pack, "--input", x, "--output", out), msg, out)


def test_golden_bad_pack_writes_nothing(tmp_path, pack):
    bad = rewrite_pack(pack, tmp_path / "bad.dpack", manifest=lambda m: m.update(version=4))
    np.save(tmp_path / "x.npy", np.zeros((1, 40), np.int8))
    out = tmp_path / "y.npy"
    _assert_clean_failure(run("golden", bad, "--input", tmp_path / "x.npy", "--output", out),
                          "unsupported pack version 4", out)
    _assert_clean_failure(run("pack", "inspect", bad), "unsupported pack version 4")


def test_synth_ratio_beyond_factors(tmp_path):
    out = tmp_path / "x.dpack"
    _assert_clean_failure(run("pack", "synth", "--shape", "2600x1300", "--ratio", "1000", "-o", out),
                          "alone need 3690", out)
    _assert_clean_failure(run("pack", "synth", "--shape", "26O0x1300", "--ratio", "5", "-o", out),
                          "not of the form MxN", out)
    _assert_clean_failure(run("pack", "synth", "--shape", "60x40", "--ratio", "5", "--factors", "7x4,10x10",
                              "-o", out), "do not multiply", out)


def test_demo_is_the_flow(tmp_path, monkeypatch, capsys):
    """`doping demo` (what `make demo` runs) is the flow on the shipped corpus at --ratio; its exit
    status is the verification verdict."""
    import doping.flow

    seen = {}

    def fake_flow(out, **kw):
        seen.update(out=out, **kw)
        return types.SimpleNamespace(passed=seen["ratio"] == 4.0)  # what the command reads of the FlowReport

    monkeypatch.setattr(doping.flow, "flow", fake_flow)
    monkeypatch.setattr(doping.flow, "summary_lines", lambda r: ["summary line"])
    assert main(["demo", "-o", str(tmp_path / "d")]) == 0
    assert seen["out"] == str(tmp_path / "d") and seen["ratio"] == 4.0 and "checkpoint" not in seen
    assert "doping demo summary" in capsys.readouterr().out
    assert main(["demo", "-o", str(tmp_path / "d"), "--ratio", "8"]) == 1 and seen["ratio"] == 8.0
    _assert_clean_failure(run("demo", "--ratio", "0.5"), "compression ratio must be >= 1")


def test_cli_reference_is_current():
    from pathlib import Path

    from doping.clidoc import render

    assert (Path(__file__).parent.parent / "docs" / "cli.md").read_text() == render(), \
        "docs/cli.md is stale: run `python -m doping.clidoc > docs/cli.md`"


def test_synth_lstm_inspect_and_estimate(tmp_path, capsys):
    """`pack synth-lstm` makes an LSTM pack; `estimate --json` gives its cycles per token on the
    LSTM top, equal to the model's."""
    from doping.config import PRESETS
    from doping.estimate.lstm import lstm_config, lstm_per_token

    p = tmp_path / "lstm.dpack"
    assert main(["pack", "synth-lstm", "--input", "8", "--hidden", "6", "--layers", "2", "--ratio", "3", "--seed", "4",
                 "-o", str(p)]) == 0
    pk = read_pack(p)
    assert [c.hidden for c in pk.lstm] == [6, 6] and [l.shape for l in pk.layers] == [(24, 14), (24, 12)]
    capsys.readouterr()
    assert main(["pack", "inspect", str(p), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert [e["hidden"] for e in s["lstm"]] == [6, 6] and s["lstm"][1]["gates"] == ["lstm.l1.gates"]
    assert main(["estimate", str(p), "--config", "minimal", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    want = lstm_per_token(pk.lstm, lstm_config(PRESETS["minimal"], 2))
    assert r["cycles_per_token"] == want.cycles_per_token == r["lstm"]["cycles_per_token"]
    assert r["lstm"]["resident"] and r["lstm"]["energy_per_token_pj"] > 0
    assert main(["estimate", str(p), "--config", "minimal"]) == 0
    assert "LSTM per token, all 2 layers" in capsys.readouterr().out


def test_synth_lstm_and_sim_tokens_errors(tmp_path, pack):
    out = tmp_path / "x.dpack"
    _assert_clean_failure(run("pack", "synth-lstm", "--input", "8", "--hidden", "0", "--ratio", "3", "-o", out),
                          "positive integer", out)
    _assert_clean_failure(run("pack", "synth-lstm", "--input", "8", "--hidden", "4", "--layers", "17", "--ratio", "3",
                              "-o", out), "layers must be an integer in 1..16", out)
    _assert_clean_failure(run("sim", "--pack", pack, "--tokens", "4"), "has no LSTM section")
    _assert_clean_failure(run("sim", "--pack", pack, "--tokens", "4", "--resident"), "do not apply")
    _assert_clean_failure(run("sim", "--pack", pack, "--tokens", "4", "--h-stall", "1"), "probability in [0, 1)")


def test_doping_alone_prints_help(capsys):
    from doping.cli import main

    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: doping") and "COMMAND" in out


def test_config_fit_sizes_the_design_to_the_pack(tmp_path, capsys):
    """The README tour's DKP pack (A 80x80) does not fit `default`: the error names the fields and
    `--config fit`; with `--config fit` the same command works."""
    from doping.cli import main

    pack = tmp_path / "p.dpack"
    assert main(["pack", "synth", "--shape", "800x400", "--ratio", "25", "--factors", "80x80,10x5", "-o",
                 str(pack)]) == 0
    capsys.readouterr()
    assert main(["estimate", str(pack)]) == 2
    err = capsys.readouterr().err
    assert "max_factor" in err and "--config fit" in err
    assert main(["estimate", str(pack), "--config", "fit", "--json"]) == 0
    capsys.readouterr()
    assert main(["rtl", "--config", "fit", "-o", str(tmp_path / "rtl")]) == 2
    assert "give --pack" in capsys.readouterr().err


def test_a_mistyped_option_gets_the_closest_one_of_its_command(capsys):
    """issue 32: "did you mean" names an option of the command given (not of another)."""
    for argv, want in ((["sim", "--pack", "x.dpack", "--vectros", "5"], "did you mean --vectors?"),
                       (["estimate", "--layr", "10x10"], "did you mean --layer?"),
                       (["pack", "synth", "--shape", "8x8", "--ratio", "2", "--ordr", "AX", "-o", "q.dpack"],
                        "did you mean --order?")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and want in err, err
    with pytest.raises(SystemExit):
        main(["sim", "--zzzzqqq", "1"])
    assert "did you mean" not in capsys.readouterr().err
