"""Start-up cost: wall time of `slothlab --help`, and that `import tui.cli` leaves torch alone.

    .venv/bin/python tests/benchmarks/bench_help.py              # 10 runs
    .venv/bin/python tests/benchmarks/bench_help.py --runs 20

Each run is a fresh process started the way a user starts it: the ``slothlab`` console script
next to this interpreter (``.venv/bin/slothlab``), falling back to ``python -m tui.cli``. Best
and median wall time are reported against a 0.5 s target; a plain ``python -c pass`` is timed
the same way as the floor no CLI can beat, and ``slothlab --list`` (reads the bundled recipes
with Rich and PyYAML) for information. A second check imports ``tui.cli`` in a fresh
interpreter and lists which heavy modules (torch, transformers, trl, ...) ended up in
``sys.modules``: none should.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.5
HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "bitsandbytes", "accelerate",
         "unsloth", "numpy", "pandas", "tokenizers", "textual", "rich", "yaml", "jinja2")


def slothlab_command() -> list[str]:
    script = Path(sys.executable).with_name("slothlab")
    if script.exists():
        return [str(script)]
    found = shutil.which("slothlab")
    return [found] if found else [sys.executable, "-m", "tui.cli"]


def wall_times(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: "
                             f"{proc.stderr.decode()[-500:]}")
    return times


def imported_by_cli() -> tuple[list[str], int]:
    probe = ("import sys, json, tui.cli; "
             f"print(json.dumps([[m for m in {list(HEAVY)!r} if m in sys.modules], "
             "len(sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    heavy, count = json.loads(out.stdout.strip().splitlines()[-1])
    return heavy, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    cmd = slothlab_command()
    wall_times(cmd + ["--help"], 1)  # warm the OS file cache and .pyc files
    help_times = wall_times(cmd + ["--help"], args.runs)
    list_times = wall_times(cmd + ["--list"], args.runs)
    floor_times = wall_times([sys.executable, "-c", "pass"], args.runs)
    heavy, n_modules = imported_by_cli()

    best, med = min(help_times), statistics.median(help_times)
    print(f"command: {' '.join(cmd)} --help  ({args.runs} runs)")
    print(f"  {'':24s} {'best s':>8s} {'median s':>9s}")
    print(f"  {'slothlab --help':24s} {best:8.3f} {med:9.3f}")
    print(f"  {'slothlab --list (info)':24s} {min(list_times):8.3f} "
          f"{statistics.median(list_times):9.3f}")
    print(f"  {'python -c pass (floor)':24s} {min(floor_times):8.3f} "
          f"{statistics.median(floor_times):9.3f}")
    print(f"  target: median < {TARGET_S} s -> {'OK' if med < TARGET_S else 'TOO SLOW'}")
    print(f"import tui.cli: {n_modules} modules in sys.modules; heavy ones: "
          f"{', '.join(heavy) if heavy else 'none'} -> "
          f"{'OK' if 'torch' not in heavy else 'FAIL: torch is imported'}")
    return 0 if med < TARGET_S and "torch" not in heavy else 1


if __name__ == "__main__":
    sys.exit(main())
