"""The `slothlab` command.

    slothlab --recipe demo                     # train headless (Rich progress)
    slothlab --recipe my.yaml --set learning_rate=1e-4 --set max_steps=30
    slothlab --recipe demo --json              # the raw event stream on stdout
    slothlab --resume runs/<id>                # continue a stopped run from its last checkpoint
    slothlab --list                            # bundled recipes
    slothlab --fields                          # every recipe field: type, default, bounds, help
    slothlab                                   # the terminal UI
    slothlab tui [--runs-dir DIR] [--tiny] [--light]   # ... with options
    slothlab check [--vram 6] [--json]         # device report, kernel numerics, VRAM fit
    slothlab eval RUN_DIR [--base]             # re-run a finished run's evaluation
    slothlab chat RUN_DIR [--mode both] [--json]   # talk to the fine-tuned model (and its base)
    slothlab export RUN_DIR --to merged|gguf|ollama [--dtype T]   # use it elsewhere
    slothlab data --recipe demo [-n 3] [--json]  # the data as the model sees it, no training
    slothlab experiment NAME|FILE [--tiny]     # several runs of a recipe, one comparison table

Start-up imports nothing heavy: torch, transformers and friends load only once a run starts,
so `slothlab --help` and `--list` answer at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recipes.errors import RecipeError, SlothlabError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slothlab",
        description="Fine-tune small language models with QLoRA: pick a recipe, train, compare.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="other commands (each has its own --help):\n"
               "  slothlab                      the terminal UI (also: slothlab tui "
               "[--runs-dir DIR] [--tiny] [--light])\n"
               "  slothlab check               device report, kernel numerics, VRAM fit "
               "(--vram N, --recipe NAME)\n"
               "  slothlab eval RUN_DIR        re-run a finished run's before/after evaluation\n"
               "  slothlab chat RUN_DIR        chat with the fine-tuned model, base side by side "
               "(--mode both, --json)\n"
               "  slothlab experiment NAME     variants of a recipe, one comparison table "
               "(--tiny, --set, --list)\n"
               "  slothlab export RUN_DIR --to merged|gguf|ollama   merged 16-bit model, GGUF "
               "(llama.cpp) or Ollama model\n"
               "  slothlab data --recipe NAME  preview the data as the model sees it (trained "
               "tokens highlighted; -n N, --json)\n"
               "\nexamples:\n"
               "  slothlab --recipe demo                       the tiny demo (CPU, offline)\n"
               "  slothlab --recipe medqa-tinyllama --set max_steps=30 --json\n"
               "  slothlab --resume runs/20261121-120000-demo  continue a stopped run",
    )
    parser.add_argument("--recipe", metavar="NAME|FILE",
                        help="bundled recipe name (see --list) or a path to a recipe YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field, type-checked (repeatable)")
    parser.add_argument("--tiny", action="store_true",
                        help="random miniature model + the recipe's sample data (CPU, offline)")
    parser.add_argument("--json", action="store_true",
                        help="print the event stream as JSON lines instead of the progress bar")
    parser.add_argument("--resume", metavar="RUN_DIR", type=Path,
                        help="continue a stopped run from its latest checkpoint")
    parser.add_argument("--allow-data-change", action="store_true",
                        help="with --resume: continue even though the dataset changed since the "
                             "run started (refused otherwise)")
    parser.add_argument("--backend", choices=("auto", "unsloth", "reference"), default="auto",
                        help="auto = unsloth with a CUDA GPU, else reference (default: auto)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), metavar="DIR",
                        help="where run directories are created (default: ./runs)")
    parser.add_argument("--list", action="store_true",
                        help="list bundled recipes and exit (with --json: as JSON)")
    parser.add_argument("--fields", action="store_true",
                        help="list every recipe field with type, default, bounds and help "
                             "(with --recipe: that recipe's values too)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def cmd_list(as_json: bool = False) -> int:
    from kernels_check.fit import estimate
    from recipes.registry import bundled
    from recipes.schema import load_recipe

    rows: list[dict] = []
    for name, path in bundled().items():
        try:
            r = load_recipe(path)
        except SlothlabError as exc:
            rows.append({"recipe": name, "error": exc.render()})
            continue
        fit = estimate(r)
        rows.append({"recipe": name, "task": r.task, "model": r.model, "tiny": r.tiny,
                     "dataset": r.dataset, "description": r.description,
                     "vram_gib": None if r.tiny else fit.total_gib,
                     "vram_note": "" if fit.total_gib else fit.reason})
    if as_json:
        import json

        print(json.dumps({"recipes": rows}, indent=2))
        return EXIT_OK
    from rich.table import Table
    from rich.text import Text

    from recipes.safe_text import safe_text

    def cell(value: object, style: str = "", multiline: bool = False) -> Text:
        # Text, not markup ("[INST]" stays as it is); control characters shown as escapes
        return Text(safe_text(value, multiline=multiline), style=style)

    table = Table(title="slothlab recipes (VRAM: estimated peak with the unsloth backend; "
                        "`slothlab check --vram N` says what fits a card)", title_justify="left")
    for col in ("recipe", "task", "model", "dataset", "VRAM"):
        table.add_column(col, no_wrap=True)
    table.add_column("description", overflow="fold", min_width=20)
    for row in rows:
        if "error" in row:
            table.add_row(cell(row["recipe"]), "", "", "", "",
                          cell(f"invalid: {row['error']}", "red", multiline=True))
            continue
        model = f"{row['model']} (tiny: CPU)" if row["tiny"] else row["model"]
        vram = ("none (CPU)" if row["tiny"] else f"{row['vram_gib']:.1f} GiB"
                if row["vram_gib"] else f"? ({row['vram_note']})")
        table.add_row(cell(row["recipe"]), cell(row["task"]), cell(model), cell(row["dataset"]),
                      cell(vram), cell(row["description"], multiline=True))
    _console().print(table)
    return EXIT_OK


def _console():
    """A Rich console; piped output is not squeezed into 80 columns (it is read or grepped)."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def cmd_fields(recipe_arg: str | None = None, overrides: list[str] | None = None) -> int:
    from rich.table import Table
    from rich.text import Text

    from recipes.schema import GROUPS, describe_fields

    values = None
    title = "recipe fields (YAML keys and --set names)"
    if recipe_arg:
        from recipes.registry import find_recipe
        from recipes.schema import load_recipe

        values = load_recipe(find_recipe(recipe_arg), overrides=overrides or []).to_dict()
        title += f", with the values of {recipe_arg}"
    table = Table(title=title, title_justify="left")
    columns = ("field", "type", "default", *(("value",) if values else ()), "allowed", "help")
    for col in columns:
        table.add_column(col, overflow="fold")
    fields = describe_fields()
    for group in GROUPS:
        table.add_section()
        for f in (f for f in fields if f["group"] == group):
            allowed = ", ".join(f["choices"]) if f["choices"] else _bounds(f)
            value = ((_changed(values[f["name"]], f["default"]),) if values else ())
            table.add_row(f["name"], f["type"], Text(repr(f["default"])), *value, allowed,
                          f["help"])
    _console().print(table)
    return EXIT_OK


def _changed(value: object, default: object):
    from rich.text import Text  # not markup: values such as "[INST] ..." are shown as they are

    return Text(repr(value), style="bold" if value != default else "")


def _bounds(f: dict) -> str:
    lo, hi = f["min"], f["max"]
    if lo is None and hi is None:
        return ""
    op = ">" if f["min_exclusive"] else ">="
    return " and ".join(x for x in (f"{op} {lo:g}" if lo is not None else "",
                                     f"<= {hi:g}" if hi is not None else "") if x)


def resolve_recipe(args: argparse.Namespace):
    """The validated recipe for this invocation; RecipeError/RunDirError before anything starts."""
    from recipes.registry import find_recipe
    from recipes.rundir import RECIPE_FILE, check_run_dir
    from recipes.schema import load_recipe

    overrides = list(args.overrides)
    if args.allow_data_change and args.resume is None:
        raise RecipeError("--allow-data-change only applies to a resume", where="--allow-data-change",
                          fix="use it with --resume RUN_DIR")
    if args.tiny:
        overrides.append("tiny=true")
    if args.resume is not None:
        if args.recipe or args.overrides:
            raise RecipeError("--resume continues a run with its own saved recipe",
                              where="--resume", fix="drop --recipe/--set when resuming")
        run_dir = check_run_dir(args.resume)
        return load_recipe(run_dir / RECIPE_FILE, overrides=overrides)
    return load_recipe(find_recipe(args.recipe), overrides=overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from recipes import events as ev
    from recipes.runner import RunOptions, run

    recipe = resolve_recipe(args)
    outcome: dict[str, ev.Event] = {}

    def remember(event: ev.Event) -> None:
        if event.type in ev.TERMINAL:
            outcome["last"] = event

    from recipes.distributed import is_main

    listeners = [remember]
    if not args.json and is_main():  # torchrun: rank 0 alone draws the progress
        from tui.headless import RichRenderer

        listeners.append(RichRenderer())
    stdout = sys.stdout
    options = RunOptions(backend=args.backend, runs_root=args.runs_dir,
                         echo=stdout if args.json else None, resume_dir=args.resume,
                         allow_data_change=args.allow_data_change,
                         listeners=listeners)
    if args.json:
        # Library chatter (banners, warnings) must not corrupt the JSON stream on stdout.
        sys.stdout = sys.stderr
    try:
        run(recipe, options)
    except Exception as exc:
        last = outcome.get("last")
        if not args.json and last is not None and last.type == "failed":
            exc.already_shown = True  # type: ignore[attr-defined]  # the progress view printed it
        raise
    finally:
        sys.stdout = stdout
    last = outcome.get("last")
    if last is not None and last.type == "stopped":
        import signal

        return 128 + int(getattr(signal, getattr(last, "signal", "SIGINT"), signal.SIGINT))
    return EXIT_OK


SUBCOMMANDS = ("chat", "check", "data", "eval", "experiment", "export", "tui")


def run_subcommand(name: str, argv: list[str]) -> int:
    if name == "tui":
        return run_tui(argv)
    if name == "data":
        from tui.data_cmd import main as data_main

        return data_main(argv)
    if name == "check":
        from kernels_check.cli import main as check_main

        return check_main(argv)
    if name == "chat":
        from tui.chat_cli import main as chat_main

        return chat_main(argv)
    if name == "experiment":
        from tui.experiment_cli import main as experiment_main

        return experiment_main(argv)
    if name == "export":
        from tui.export import main as export_main

        return export_main(argv)
    from tui.eval_cmd import main as eval_main

    return eval_main(argv)


def run_tui(argv: list[str] | None = None) -> int:
    from tui.app import main as tui_main

    return tui_main(argv or [])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        return run_tui()
    if argv[0] in SUBCOMMANDS:
        return run_subcommand(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.list:
            return cmd_list(as_json=args.json)
        if args.fields:
            return cmd_fields(args.recipe, args.overrides)
        if args.recipe is None and args.resume is None:
            if args.overrides or args.json or args.backend != "auto":
                parser.error("give --recipe NAME|FILE or --resume RUN_DIR to train "
                             "(--list shows the recipes; no arguments open the terminal UI)")
            # Only UI options (--runs-dir, --tiny): open the terminal UI with them.
            return run_tui(["--runs-dir", str(args.runs_dir), *(["--tiny"] if args.tiny else [])])
        return cmd_train(args)
    except SlothlabError as exc:
        if args.debug:
            raise
        if not getattr(exc, "already_shown", False):
            print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_STOPPED
    except Exception as exc:
        if args.debug:
            raise
        if not getattr(exc, "already_shown", False):
            print(f"error: {type(exc).__name__}: {exc}\n  → rerun with --debug for the traceback",
                  file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
