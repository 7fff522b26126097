"""The architecture spec (doping.arch) is the one owner of the memory map, the load-word format
and the pipeline constants; the package has no import cycle; the estimator and the pack tools
run with neither Amaranth nor torch installed."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from doping.arch import LOAD_ADDR_BITS, LOAD_SEL_BITS, Memory, pack_load_word
from doping.config import PRESETS

ROOT = Path(__file__).resolve().parents[1]
#: package -> source folder (pyproject's package-dir)
PACKAGES = {"doping": ROOT / "python/doping", "doping.hw": ROOT / "hw", "doping.sim": ROOT / "sim",
            "doping.golden": ROOT / "golden"}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg, root in PACKAGES.items():
        for f in root.rglob("*.py"):
            parts = [p for p in f.relative_to(root).with_suffix("").parts if p != "__init__"]
            if pkg == "doping" and parts and f"doping.{parts[0]}" in PACKAGES:
                continue
            mods[".".join([pkg, *parts])] = f
    return mods


def _imports(path: Path, known) -> set[str]:
    """Internal modules ``path`` imports anywhere (inside functions too), except under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    typing_only = {id(x) for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
                   for b in n.body for x in ast.walk(b)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return {n for n in out if n in known}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    mods = _modules()
    edges = {m: _imports(f, mods) - {m} for m, f in mods.items()}
    assert len(mods) > 40 and sum(map(len, edges.values())) > 100  # the walk sees the package
    assert _cycles(edges) == []
    # the walk does find a cycle when there is one
    assert _cycles({**edges, "doping.arch": edges["doping.arch"] | {"doping.config"}}) != []


def test_memory_map_and_word_format_defined_once():
    """Constants of the spec are assigned only in doping.arch; no module but it builds a
    ``Memory`` (the spec's; Amaranth's ``memory.Memory`` instantiates one), defines a depth rule or shifts a load word's fields into place."""
    spec = PACKAGES["doping"] / "arch.py"
    names = ("LOAD_SEL_BITS", "LOAD_ADDR_BITS", "LOAD_DATA_BITS", "SEL_REG", "REGS", "CELL_REGS", "LAYER_REG_WORDS",
             "REQUANT_STAGES", "SEND_LATENCY", "G1_SETTLE", "CELL_LATENCY", "SWITCH_CYCLES", "LAYER_OVERHEAD_CYCLES",
             "TOKEN_OVERHEAD_CYCLES", "UNITS")
    assigned = re.compile(rf"^\s*(?:{'|'.join(names)})\b[^=\n]*=(?!=)|^\s*def (?:bank_depth|memory_map|tile_spacing|"
                          r"send_latency|vector_count_bits|rows_per_lane_bound)\b|(?<![.\w])Memory\(|<< 28\b", re.M)
    found = {f: assigned.findall(f.read_text()) for f in [*ROOT.glob("python/doping/**/*.py"),
                                                            *ROOT.glob("hw/*.py"), *ROOT.glob("sim/*.py"),
                                                            *ROOT.glob("golden/*.py"), *ROOT.glob("tests/**/*.py")]
             if f != spec and f != Path(__file__).resolve()}
    assert {str(f.relative_to(ROOT)): hits for f, hits in found.items() if hits} == {}
    assert len(assigned.findall(spec.read_text())) >= len(names)


def test_memory_and_load_word():
    cfg = PRESETS["default"]
    mem = cfg.memories
    assert mem is cfg.memories  # computed once per config
    assert all(isinstance(m, Memory) for m in mem.values())
    a = mem["a"]
    assert a.bits == a.banks * a.depth * a.width and a.depth == cfg.resident_layers * a.layer_depth
    assert a.address(3, 5) == (3 << a.addr_bits) | 5 and 2 ** a.addr_bits >= a.depth > 2 ** (a.addr_bits - 1)
    assert mem["kbuf"].per_layer == mem["kbuf"].depth // 2 and mem["ov_acc"].per_layer == mem["ov_acc"].depth
    w = pack_load_word(5, 0xABCDEF, 0x1234)
    assert w & 0xF == 5 and (w >> LOAD_SEL_BITS) & ((1 << LOAD_ADDR_BITS) - 1) == 0xABCDEF
    assert w >> (LOAD_SEL_BITS + LOAD_ADDR_BITS) == 0x1234


BLOCKED = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("amaranth", "torch", "cocotb"):
            raise ImportError(f"{name} is blocked")
sys.meta_path.insert(0, Block())
from doping.cli import main
for argv in ARGVS:
    assert main(argv) == 0, argv
assert not any(m.split(".")[0] in ("amaranth", "torch") for m in sys.modules)
"""


def test_estimator_and_packs_without_amaranth_or_torch(tmp_path):
    lstm, layer = tmp_path / "lstm.dpack", tmp_path / "layer.dpack"
    argvs = [["pack", "synth-lstm", "--input", "32", "--hidden", "32", "--ratio", "10", "-o", str(lstm)],
             ["pack", "synth", "--method", "dkp", "--shape", "64x48", "--ratio", "8", "-o", str(layer)],
             ["estimate", str(lstm), "--config", "fit"], ["estimate", str(layer), "--json"],
             ["pack", "inspect", str(layer)]]
    r = subprocess.run([sys.executable, "-c", BLOCKED.replace("ARGVS", repr(argvs))], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "cycles" in r.stdout and lstm.is_file() and layer.is_file()


def test_no_function_in_hw_over_120_lines():
    """The generator is components whose ``elaborate`` mostly instantiates and connects (issue 29)."""
    long = []
    for f in sorted((ROOT / "hw").glob("*.py")):
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 120:
                long.append(f"{f.name}:{n.name} ({n.end_lineno - n.lineno + 1} lines)")
    assert long == []


def test_estimate_never_calls_back_up_the_stack():
    """``estimate()`` on a fresh config: no call from a file into one already on the stack below it
    (a lower layer calling back into its caller's file; bench/estimate_walk.py). A deliberately
    added callback is seen."""
    sys.path.insert(0, str(ROOT / "bench"))
    from estimate_walk import walk

    from doping.estimate.model import estimate
    from doping.synth import synth_layer

    layer = synth_layer((64, 48), 6, factor_shapes=((8, 8), (8, 6)), seed=1)
    cfg = PRESETS["minimal"]
    estimate(layer, cfg)
    stays, callbacks = walk(lambda: estimate(layer, type(cfg)(**cfg.as_dict())))
    assert len(set(stays)) >= 5 and callbacks == []

    import doping.estimate.cycles as cycles

    def calls_back(layer, cfg, _orig=cycles.gemms):
        from doping.estimate import model

        model.fmax_estimate_mhz(cfg)  # cycles -> model while model.estimate is below on the stack
        return _orig(layer, cfg)

    cycles.gemms, orig = calls_back, cycles.gemms
    try:
        _, callbacks = walk(lambda: estimate(layer, type(cfg)(**cfg.as_dict())))
    finally:
        cycles.gemms = orig
    assert any(c.endswith("model.py:fmax_estimate_mhz") for _, c in callbacks)
