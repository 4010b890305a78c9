"""`slothlab experiment FILE`: a controlled experiment as one command, one comparison table.

    slothlab experiment seed001-medqa --tiny                  # seed 001's four runs, offline
    slothlab experiment seed001-medqa --tiny --set max_steps=30   # shortened, every variant
    slothlab experiment my_experiment.yaml --json             # events, tagged with the variant
    slothlab experiment seed003-finetome-sweep --dry-run      # validate and show the plan only
    slothlab experiment seed001-medqa --tiny --resume         # continue a stopped experiment
    slothlab experiment --list                                # the bundled experiments

Every variant is validated before anything trains (exit 2 names the variant and the field).
Ctrl-C stops the current variant with a checkpoint, then the experiment (exit 130); the same
command (or --resume) continues it: finished variants are skipped, the stopped one resumes.
Exit 1 when a variant failed (the others still ran).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recipes.errors import SlothlabError

EXIT_OK, EXIT_FAILED, EXIT_STOPPED = 0, 1, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slothlab experiment",
        description="Run an experiment file: a base recipe and its variants (named overrides or "
                    "a vary: grid), one run each, one comparison table (experiment.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  slothlab experiment seed001-medqa --tiny --set max_steps=30\n"
               "  slothlab experiment seed000-inkuba-balance --tiny\n"
               "  slothlab experiment seed003-finetome-sweep --dry-run")
    parser.add_argument("experiment", nargs="?", metavar="NAME|FILE",
                        help="bundled experiment name (see --list) or a path to its YAML")
    parser.add_argument("--tiny", action="store_true",
                        help="random miniature model + sample data for every variant (CPU)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a field in every variant (repeatable)")
    parser.add_argument("--json", action="store_true",
                        help="print every event as JSON lines, tagged with its variant")
    parser.add_argument("--yes", action="store_true",
                        help="run a grid of more runs than the safety limit without asking")
    parser.add_argument("--resume", action="store_true",
                        help="continue the experiment (running the same command does too; "
                             "this one also refuses to start a new one)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate every variant and print the plan; train nothing")
    parser.add_argument("--backend", choices=("auto", "unsloth", "reference"), default="auto")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), metavar="DIR",
                        help="where the experiment folder is created (default: ./runs)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="the experiment folder (default: RUNS_DIR/<name>[-tiny])")
    parser.add_argument("--list", action="store_true", help="list the bundled experiments")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def _console():
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def cmd_list(as_json: bool) -> int:
    from recipes.experiment_spec import bundled_experiments, load_experiment

    rows = []
    for name, path in bundled_experiments().items():
        try:
            experiment = load_experiment(path, yes=True)
        except SlothlabError as exc:
            rows.append({"experiment": name, "error": exc.render()})
            continue
        rows.append({"experiment": name, "recipe": experiment.recipe_path.stem,
                     "runs": len(experiment.variants), "description": experiment.description})
    if as_json:
        import json

        print(json.dumps({"experiments": rows}, indent=2))
        return EXIT_OK
    from rich.table import Table

    table = Table(title="bundled experiments (slothlab experiment NAME --tiny runs one offline)",
                  title_justify="left")
    for col in ("experiment", "recipe", "runs", "description"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row["experiment"], row.get("recipe", ""), str(row.get("runs", "")),
                      row.get("description") or f"[red]{row.get('error')}[/]")
    _console().print(table)
    return EXIT_OK


def print_plan(experiment) -> None:
    from rich.table import Table

    from recipes.experiment_spec import describe_overrides

    table = Table(title=f"{experiment.name}: {len(experiment.variants)} runs of "
                        f"{experiment.recipe_path.stem}{' (tiny mode)' if experiment.tiny else ''}",
                  title_justify="left")
    for col in ("variant", "overrides", "steps", "learning rate", "LoRA r"):
        table.add_column(col, overflow="fold")
    for v in experiment.variants:
        r = v.recipe
        table.add_row(v.name, describe_overrides(v.overrides),
                      str(r.max_steps or f"{r.epochs:g} epoch(s)"), f"{r.learning_rate:g}",
                      str(r.lora_r))
    _console().print(table)


def run(args: argparse.Namespace) -> int:
    from recipes.experiment_spec import load_experiment

    experiment = load_experiment(args.experiment, overrides=args.overrides, tiny=args.tiny,
                                 yes=args.yes)
    if args.dry_run:
        print_plan(experiment)
        return EXIT_OK
    from recipes.experiment import ExperimentOptions, run_experiment

    listeners = []
    if not args.json:
        from tui.experiment_view import ExperimentRenderer

        listeners.append(ExperimentRenderer(_console()))
    stdout = sys.stdout
    options = ExperimentOptions(backend=args.backend, runs_root=args.runs_dir, out=args.out,
                                resume=args.resume, echo=stdout if args.json else None,
                                listeners=listeners)
    if args.json:
        sys.stdout = sys.stderr  # library chatter must not corrupt the JSON stream
    try:
        outcome = run_experiment(experiment, options)
    finally:
        sys.stdout = stdout
    if outcome.status == "stopped":
        return outcome.stop_exit_code  # 130 for Ctrl-C, 143 for SIGTERM
    return EXIT_OK if outcome.status == "finished" else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        return cmd_list(args.json)
    if not args.experiment:
        parser.error("name an experiment (--list shows the bundled ones) or a YAML file")
    try:
        return run(args)
    except SlothlabError as exc:
        if args.debug:
            raise
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_STOPPED
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}\n  → rerun with --debug for the traceback",
              file=sys.stderr)
        return EXIT_FAILED
