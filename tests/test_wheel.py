"""The built wheel carries everything the installed package reads (package data: the estimator's
fits and calibration, the shipped cell and SRAM libraries, the corpus, the lint waivers) and runs
from outside the checkout."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _source_copy(dest: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) without any build folder, so that no
    earlier build's leftovers end up in the wheel."""
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / name)
    return dest


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    src = _source_copy(tmp_path / "src")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "-w", str(wheels), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = wheels.glob("doping-*.whl")
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                        str(wheel)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    # the installed copy first, this environment's dependencies (numpy, amaranth) after it
    from doping.sim.runner import cache_root

    # the simulator-build cache shared with the other tests (the demo's design is built once)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DOPING_CACHE": str(cache_root()),
           "PYTHONPATH": f"{target}:{sysconfig.get_paths()['purelib']}", "PYTHONNOUSERSITE": "1"}
    work = tmp_path / "elsewhere"
    work.mkdir()
    # argv: -c, the search path, this code, the install folder, doping's arguments
    code = ("import doping; assert doping.__file__.startswith(sys.argv[3]), doping.__file__; "
            "from doping.cli import main; sys.exit(main(sys.argv[4:]))")

    def doping(*argv):
        return subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path[:0] = sys.argv[1].split(':'); "
                               "exec(sys.argv[2])", env["PYTHONPATH"], code, str(target), *argv],
                              capture_output=True, text=True, timeout=600, cwd=work, env=env)

    r = doping("estimate", "--layer", "600x300", "--ratio", "10", "--config", "default", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "nangate45" in r.stdout  # calibration.json and the fakeram45 macros came with the wheel
    r = doping("rtl", "--config", "minimal", "-o", str(work / "rtl"))
    assert r.returncode == 0 and (work / "rtl" / "doping_accel.v").is_file(), r.stderr[-2000:]
    r = doping("pack", "synth", "--shape", "48x40", "--ratio", "6", "-o", str(work / "p.dpack"))
    assert r.returncode == 0, r.stderr[-2000:]
    # the demo from the installed wheel: train, export, Verilog, Verilator against golden, report
    r = doping("demo", "--quick", "-o", str(work / "demo"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "verification: PASSED" in r.stdout and "LSTM:         PASSED" in r.stdout
    assert (work / "demo" / "report.html").is_file()
