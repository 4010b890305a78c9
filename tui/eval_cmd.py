"""`slothlab eval RUN_DIR [--base]`: re-run a finished run's evaluation and print the table.

    slothlab eval runs/<id>            # re-run the fine-tuned evaluation of a finished run
    slothlab eval runs/<id> --base     # ... and the base model's

Results are cached per model + eval set, so a second call of an unchanged run recomputes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from recipes.errors import SlothlabError


def metrics_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    from recipes.numbers import change, metric_value, relative
    from recipes.report import LABELS

    table = Table(title=f"{report['recipe']}: base vs fine-tuned "
                        f"({report['eval_set']['size']} held-out examples)", title_justify="left")
    for col in ("metric", "base", "fine-tuned", "change", "relative"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, row in report["metrics"].items():
        better = row["change"] is not None and (
            row["change"] < 0 if row["lower_is_better"] else row["change"] > 0)
        style = "green" if better else ("red" if row["change"] else "")
        moved = change(row["change"])
        table.add_row(LABELS.get(name, name), metric_value(row["base"], name),
                      metric_value(row["finetuned"], name),
                      f"[{style}]{moved}[/]" if style else moved, relative(row["relative"]))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="slothlab eval",
        description="Re-run the evaluation of a finished run without retraining "
                    "(results are cached per model + eval set).")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--base", action="store_true", help="also evaluate the base model")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    args = parser.parse_args(argv)
    from recipes.evaluation import evaluate_run

    try:
        report = evaluate_run(args.run_dir, base=args.base)
    except SlothlabError as exc:
        if args.debug:
            raise
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    from rich.console import Console

    console = Console()
    console.print(metrics_table(report))
    console.print(f"report: {report['artifacts']['report_md']}")
    return 0
