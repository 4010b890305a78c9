"""`slothlab export ... --json` for the TUI tests: the real protocol, no torch, instant.

FAKE_EXPORT=ok | fail | crash | slow (ok, half a second a step) | hang (waits for SIGINT after
the first step). It writes a
small file into RUN_DIR/export/<to>-<dtype>/ and records its arguments there (args.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def emit(kind: str, **fields) -> None:
    print(json.dumps({"type": kind, **fields}), flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--to", required=True)
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    mode = os.environ.get("FAKE_EXPORT", "ok")
    out = args.run_dir / "export" / f"{args.to}-{args.dtype}"
    print("fake export: loading torch (stderr chatter)", file=sys.stderr, flush=True)
    if mode == "fail":
        emit("export_failed", what="this run has no final adapter (it stopped or is still "
             "running); its latest checkpoint is checkpoint-120", where=str(args.run_dir),
             fix="export that checkpoint: slothlab export ... --checkpoint ...")
        return 2
    emit("export_started", run=str(args.run_dir), to=args.to, dtype=args.dtype, out=str(out),
         base="runs/x/base", adapter="runs/x/adapter", notes=["the run trained on a 4-bit base"])
    try:
        for done in range(1, 11):
            time.sleep(0.5 if mode == "slow" else 0.01)
            emit("export_progress", stage="convert", done=done, total=10,
                 message=f"blk.{done}.attn_q.weight -> Q8_0")
            if mode == "hang":
                time.sleep(3600)
            if mode == "crash" and done == 4:
                print("Traceback (most recent call last):\nRuntimeError: killed by the OOM "
                      "killer", file=sys.stderr, flush=True)
                return 1
    except KeyboardInterrupt:
        emit("export_failed", what="interrupted: nothing was written", where=None, fix=None)
        return 130
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(argv))
    name = f"demo-{args.dtype}.gguf"
    (out / name).write_bytes(b"GGUF" + bytes(2**20))
    files = {str(out / name): 2**20 + 4}
    command = f"ollama create demo -f {out / 'Modelfile'}" if args.to == "ollama" else ""
    emit("export_finished", out=str(out), files=files, seconds=1.25, notes=[], command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
