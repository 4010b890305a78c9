"""`slothlab export`: a trained run as a merged model, a GGUF file or an Ollama model.

    slothlab export runs/<id> --to merged                 # 16-bit safetensors (bf16)
    slothlab export runs/<id> --to gguf --dtype q8_0      # llama.cpp's converter
    slothlab export runs/<id> --to ollama                 # GGUF + Modelfile (q8_0)
    slothlab export runs/<id> --to gguf --checkpoint runs/<id>/checkpoints/checkpoint-200
    slothlab export runs/<id> --to merged --json          # progress as JSON lines (the TUI)

With ``--json`` stdout carries one JSON object per line: ``export_started``,
``export_progress`` (stage, done, total, message), then ``export_finished`` (out, files with
their bytes, seconds, notes, command) or ``export_failed`` (what, where, fix). Library output
goes to stderr. Exit codes: 0 done, 2 refused (nothing written), 1 failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 130
TARGETS = ("merged", "gguf", "ollama")  # recipes.export.TARGETS, without importing it


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slothlab export", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a trained run: merged 16-bit safetensors, a GGUF file (llama.cpp's "
                    "converter), or an Ollama model (GGUF + Modelfile).",
        epilog="dtypes: merged f16|bf16 (default bf16); gguf and ollama f16|bf16|q8_0 (defaults "
               "f16 and q8_0),\n  or a llama-quantize type (q4_k_m, q5_k_m, q6_k, ...) when "
               "llama.cpp's llama-quantize is on PATH\n"
               "output: runs/<id>/export/<to>-<dtype>/ unless --out is given")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (runs/<id>)")
    parser.add_argument("--to", required=True, metavar="|".join(TARGETS),
                        help="what to write")
    parser.add_argument("--dtype", metavar="TYPE", help="weight type (see below)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="the folder to write (default: RUN_DIR/export/<to>-<dtype>)")
    parser.add_argument("--checkpoint", type=Path, metavar="PATH",
                        help="export this checkpoint instead of the final adapter (a stopped run)")
    parser.add_argument("--json", action="store_true",
                        help="progress and result as JSON lines on stdout")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


class JsonReporter:
    """Writes the JSON-lines protocol (see the module docstring)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def emit(self, kind: str, **fields: Any) -> None:
        self.stream.write(json.dumps({"type": kind, **fields}, ensure_ascii=False) + "\n")
        self.stream.flush()

    def started(self, plan: Any) -> None:
        self.emit("export_started", run=str(plan.run_dir), to=plan.target, dtype=plan.dtype,
                  out=str(plan.out), base=plan.base, adapter=str(plan.adapter), notes=plan.notes)

    def progress(self, stage: str, done: float, total: float, message: str) -> None:
        self.emit("export_progress", stage=stage, done=done, total=total, message=message)

    def finished(self, result: Any) -> None:
        self.emit("export_finished", out=str(result.out), files=result.files,
                  seconds=round(result.seconds, 2), notes=result.notes, command=result.command)

    def failed(self, what: str, where: str | None, fix: str | None) -> None:
        self.emit("export_failed", what=what, where=where, fix=fix)


class RichReporter:
    """A progress bar for the current stage, then where the files are and how to use them."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        # Piped output is not squeezed into 80 columns; paths are never broken (soft wrap).
        self.console = Console() if sys.stdout.isatty() else Console(width=200)
        self.bar = Progress(TextColumn("[bold]{task.fields[stage]:<9}[/]"),
                            BarColumn(bar_width=30), TextColumn("{task.description}"),
                            TimeElapsedColumn(), console=self.console, transient=True)
        self.task = self.bar.add_task("", total=1, stage="")
        self.shown: list[str] = []

    def started(self, plan: Any) -> None:
        self.console.print(f"[bold]slothlab export[/] {plan.run_dir} → {plan.target} "
                           f"({plan.dtype})")
        self.console.print(f"  base     {plan.base}\n  adapter  {plan.adapter}")
        for note in plan.notes:
            self.console.print(f"  [yellow]note[/] {note}")
        self.shown = list(plan.notes)
        self.bar.start()

    def progress(self, stage: str, done: float, total: float, message: str) -> None:
        self.bar.update(self.task, completed=done, total=max(total, 1), stage=stage,
                        description=message[:70])

    def finished(self, result: Any) -> None:
        self.bar.stop()
        self.console.print(f"[green]exported[/] in {result.seconds:.1f} s → {result.out}",
                           soft_wrap=True)
        for path, size in result.files.items():
            self.console.print(f"  {human_size(size):>9}  {path}", soft_wrap=True)
        for note in (n for n in result.notes if n not in self.shown):
            self.console.print(f"  [yellow]note[/] {note}")
        for line in usage(result):
            self.console.print(line, highlight=False, soft_wrap=True)

    def failed(self, what: str, where: str | None, fix: str | None) -> None:
        self.bar.stop()


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def usage(result: Any) -> list[str]:
    """How to use what was written (printed after a terminal export)."""
    files = list(result.files)
    ggufs = [f for f in files if f.endswith(".gguf")]
    if result.command:
        return ["next:", f"  {result.command}",
                f"  ollama run {result.command.split()[2]}"]
    if ggufs:
        return ["next: chat with llama.cpp, or serve it (an OpenAI-compatible server):",
                f"  llama-cli -m {ggufs[0]} -cnv", f"  llama-server -m {ggufs[0]}"]
    return ["next (Python):",
            "  from transformers import AutoModelForCausalLM, AutoTokenizer",
            f"  model = AutoModelForCausalLM.from_pretrained('{result.out}')",
            f"  tokenizer = AutoTokenizer.from_pretrained('{result.out}')"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    stdout = sys.stdout
    reporter: Any = JsonReporter(stdout) if args.json else RichReporter()
    if args.json:
        sys.stdout = sys.stderr  # library chatter must not corrupt the JSON lines
    from recipes.errors import SlothlabError

    try:
        from recipes.export import plan_export, run_export

        plan = plan_export(args.run_dir, args.to, args.dtype, args.out, args.checkpoint)
        reporter.started(plan)
        result = run_export(plan, reporter.progress)
        reporter.finished(result)
        return EXIT_OK
    except SlothlabError as exc:
        reporter.failed(exc.what, exc.where, exc.fix)
        if args.debug:
            raise
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        reporter.failed("interrupted: nothing was written", None, None)
        print("interrupted: nothing was written", file=sys.stderr)
        return EXIT_STOPPED
    except Exception as exc:
        reporter.failed(f"{type(exc).__name__}: {exc}", None, "rerun with --debug")
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}\n  → rerun with --debug for the traceback",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
