"""`doping compare`: trained runs as exported packs, priced per token on the generated design,
against their test perplexity."""

from __future__ import annotations

import json

from doping.cli import main
from doping.estimate.compare import at_reference, pareto
from tests.test_train import _train


def test_compare_prices_every_exportable_run(tmp_path, capsys):
    rows = []
    for method, ratio in (("dkp", 4.0), ("prune", 4.0), ("lmf", 4.0), ("hmd", 4.0)):
        summary, run = _train(tmp_path / "runs", method, epochs=1, method=method, ratio=ratio, anneal_end=0.5)
        rows.append({"run": method, "method": method, "ratio": ratio, "test_ppl": summary["test_ppl"], "hidden": 16})
    results = tmp_path / "results.json"
    results.write_text(json.dumps(rows))
    out = tmp_path / "cmp"
    assert main(["compare", "--results", str(results), "--runs", str(tmp_path / "runs"), "--packs",
                 str(tmp_path / "packs"), "--hidden", "16", "--reference-ratio", "4", "-o", str(out)]) == 0
    r = json.loads((out / "compare.json").read_text())
    assert sorted(p["method"] for p in r["points"]) == ["dkp", "lmf", "prune"]
    assert [s["method"] for s in r["not_priced"]] == ["hmd"]  # not an accelerator layer: listed, not priced
    assert all((tmp_path / "packs" / f"{m}.dpack").is_file() for m in ("dkp", "prune", "lmf"))
    for p in r["points"]:
        assert p["cycles_per_token"] > 0 and p["energy_per_token_nj"] > 0 and p["weights"].startswith("resident")
        assert p["config"]["resident_layers"] == (4 if p["method"] == "lmf" else 2)
    assert r["reference"]["run"] == "dkp" and (out / "compare.png").stat().st_size > 10_000
    assert "At the reference perplexity" in capsys.readouterr().out
    # without --results: the rows are the finished runs found under --runs, the same four
    out2 = tmp_path / "cmp2"
    assert main(["compare", "--runs", str(tmp_path / "runs"), "--packs", str(tmp_path / "packs"),
                 "--reference-ratio", "4", "-o", str(out2)]) == 0
    r2 = json.loads((out2 / "compare.json").read_text())
    assert r2["hidden"] == 16 and r2["source"].startswith("the runs under")
    assert sorted((p["run"], p["test_ppl"], p["energy_per_token_nj"]) for p in r2["points"]) == \
        sorted((p["run"], p["test_ppl"], p["energy_per_token_nj"]) for p in r["points"])
    assert [s["run"] for s in r2["not_priced"]] == ["hmd"]


def test_pareto_and_reference():
    pts = [{"run": "a", "method": "dkp", "test_ppl": 100.0, "energy_per_token_nj": 5.0, "latency_per_token_us": 1,
            "area_mm2": 1},
           {"run": "b", "method": "prune", "test_ppl": 98.0, "energy_per_token_nj": 6.0, "latency_per_token_us": 1,
            "area_mm2": 1},
           {"run": "c", "method": "prune", "test_ppl": 101.0, "energy_per_token_nj": 7.0, "latency_per_token_us": 1,
            "area_mm2": 1},
           {"run": "d", "method": "lmf", "test_ppl": 120.0, "energy_per_token_nj": 1.0, "latency_per_token_us": 1,
            "area_mm2": 1}]
    assert [p["run"] for p in pareto(pts, "energy_per_token_nj")] == ["b", "a", "d"]
    ref = {r["method"]: r for r in at_reference(pts, pts[0])}
    assert ref["prune"]["run"] == "b" and ref["dkp"]["run"] == "a"
    assert not ref["lmf"]["reaches"] and ref["lmf"]["best_test_ppl"] == 120.0


def test_compare_bad_results(tmp_path, capsys):
    bad = tmp_path / "r.json"
    bad.write_text('{"not": "a list"}')
    assert main(["compare", "--results", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "is not a list of run results" in capsys.readouterr().err
    bad.write_text(json.dumps([{"run": "x", "method": "dkp", "test_ppl": 1.0, "ratio": 25, "hidden": 200}]))
    assert main(["compare", "--results", str(bad), "--packs", str(tmp_path / "p"), "-o", str(tmp_path / "o")]) == 2
    assert "no pack" in capsys.readouterr().err



def test_compare_bad_runs_folder(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    assert main(["compare", "--runs", str(runs), "-o", str(tmp_path / "o")]) == 2
    assert "no finished training run" in capsys.readouterr().err
    (runs / "a").mkdir()
    (runs / "a" / "best.pt").write_bytes(b"")
    (runs / "a" / "final.json").write_text('{"method": "dkp", "ratio": "25"}')
    assert main(["compare", "--runs", str(runs), "-o", str(tmp_path / "o")]) == 2
    assert "is not a training run's summary" in capsys.readouterr().err
    assert main(["compare", "-o", str(tmp_path / "o")]) == 2
    assert "needs --results" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
