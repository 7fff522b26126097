"""Critical path of the generated accelerator: gate levels of the longest register-to-register
path (yosys + abc, ``doping.hw.tools.yosys_synth``) per config preset, and the clock estimate
from them. Writes python/doping/estimate/timing.json, which the estimator reads (it runs at the
lower of a config's clock and this estimate).

  python bench/timing.py [--presets minimal default large] [--stream-bytes 4 ...] [--batch 8 ...]
                         [--out python/doping/estimate/timing.json] [--merge]

``--stream-bytes W`` also measures each preset with W-element streams (key ``<preset>-w<W>``): the
wide-stream designs the DSE proposes have W requantiser pipelines and wider memories. ``--batch B``
measures each of those at batch B too (key ``...-b<B>``): B windows and MACs per lane, and SEND's
choice of a row sum in a word of B. ``--merge`` keeps the designs already in ``--out`` that this
run does not measure (and records each run's command).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from doping.config import PRESETS
from doping.errors import DopingError
from doping.fileio import atomic_path
from doping.hw.tools import FO4_PS_PER_NM, REGISTER_FO4, fmax_mhz, yosys_synth
from doping.hw.verilog import TOP, generate

OUT = Path(__file__).resolve().parent.parent / "python" / "doping" / "estimate" / "timing.json"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["minimal", "default", "large"], choices=sorted(PRESETS))
    ap.add_argument("--stream-bytes", type=int, nargs="*", default=[], help="also measure each preset at these W")
    ap.add_argument("--batch", type=int, nargs="*", default=[], help="also measure each design at these B")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--merge", action="store_true", help="keep the other designs already in --out")
    args = ap.parse_args()
    levels = {}
    designs = [(name, PRESETS[name]) for name in args.presets]
    for name in args.presets:
        for w in args.stream_bytes:
            try:
                designs.append((f"{name}-w{w}", replace(PRESETS[name], stream_bytes=w)))
            except DopingError as e:  # e.g. fewer lanes than W
                print(f"{name}-w{w}: skipped ({e})", flush=True)
    designs += [(f"{name}-b{b}", replace(cfg, batch=b)) for name, cfg in list(designs) for b in args.batch]
    for name, cfg in designs:
        t0 = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            man = generate(cfg, Path(tmp))
            _, levels[name] = yosys_synth(Path(tmp) / man["files"][0], TOP, Path(tmp) / "stat.json")
        print(f"{name}: {levels[name]} levels, fmax ~{fmax_mhz(levels[name], cfg.tech_nm):.0f} MHz "
              f"({time.time() - t0:.0f} s)", flush=True)
    prev = json.loads(Path(args.out).read_text()) if args.merge and Path(args.out).is_file() else {}
    levels = {**prev.get("levels", {}), **levels}
    command = ("python bench/timing.py --presets " + " ".join(args.presets)
               + (" --stream-bytes " + " ".join(map(str, args.stream_bytes)) if args.stream_bytes else "")
               + (" --batch " + " ".join(map(str, args.batch)) if args.batch else "")
               + (" --merge" if args.merge else ""))
    out = {"date": str(date.today()), "machine": platform.node() or "unknown",
           "command": "; ".join(filter(None, [prev.get("command"), command])),
           "tool": "yosys 0.23 (Debian): synth -run begin:fine, techmap, abc -fast, flatten, memories removed, "
                   "ltp -noff",
           "delay_model": {"fo4_ps_per_nm": FO4_PS_PER_NM, "register_fo4": REGISTER_FO4},
           "levels": levels, "max_levels": max(levels.values())}
    with atomic_path(Path(args.out)) as tmp:
        tmp.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
