"""`slothlab check` (also `python -m kernels_check`): can this machine run it, and are the
kernels right?

    slothlab check                              # device, kernel numerics, fit of every bundled
                                                # recipe on this card, backend step (GPU)
    slothlab check --vram 6                     # fit against a 6 GiB card instead
    slothlab check --recipe my.yaml --set batch_size=4 --vram 8    # fit one recipe
    slothlab check --device --json              # the device report as one JSON object
    slothlab check --skip-kernels               # everything but the numerics
    slothlab check --compare-backends           # each backend side by side (GPU: one step; CPU: a short training)
    slothlab check --published [--markdown]     # the estimator against published figures

Exit status: 0 when nothing failed (skipped checks do not fail), 1 when a kernel check or the
backend comparison failed, 2 for bad input (an unknown recipe, a bad --set).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from recipes.errors import SlothlabError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def card_size(text: str) -> float:
    """``--vram``: a card size in GiB, a finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GiB (e.g. --vram 6)") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a card size must be a number of GiB above 0 (e.g. --vram 6)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slothlab check",
        description="Device report, Unsloth kernel numerics, VRAM fit and a backend comparison.",
        epilog="With no section flag every section runs. Examples: slothlab check --vram 6 | "
               "slothlab check --recipe demo --set max_seq_length=2048 --vram 8 | "
               "slothlab check --device --json",
    )
    sections = parser.add_argument_group("sections (default: all)")
    sections.add_argument("--device", action="store_true", help="the device report")
    sections.add_argument("--kernels", action="store_true", help="kernel numerics")
    sections.add_argument("--fit", action="store_true",
                          help="VRAM fit of the bundled recipes (or of --recipe)")
    sections.add_argument("--compare-backends", action="store_true",
                          help="each backend side by side: one training step on a GPU, a "
                               "short fp32 training of the demo on a CPU (loss, speed, memory)")
    sections.add_argument("--published", action="store_true",
                          help="compare the estimator with published peak-memory figures")
    parser.add_argument("--recipe", metavar="NAME|FILE",
                        help="fit this recipe (bundled name or YAML path) instead of all bundled")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a recipe field for the fit (repeatable)")
    parser.add_argument("--vram", type=card_size, metavar="GIB",
                        help="card size in GiB for the fit (default: the detected GPU)")
    parser.add_argument("--backend", choices=("auto", "unsloth", "reference"), default="auto",
                        help="backend the fit assumes (auto: what training would pick on this "
                             "machine; unsloth without a GPU)")
    parser.add_argument("--model", metavar="DIR",
                        help="local model folder for --compare-backends (default: the tiny "
                             "demo model)")
    parser.add_argument("--skip-kernels", action="store_true", help="do not run kernel numerics")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--markdown", action="store_true",
                        help="with --published: the Markdown table docs/fit.md holds")
    return parser


def _sections(args: argparse.Namespace) -> set[str]:
    chosen = {name for name, flag in (("device", args.device), ("kernels", args.kernels),
                                      ("fit", args.fit or bool(args.recipe)),
                                      ("compare", args.compare_backends),
                                      ("published", args.published)) if flag}
    if not chosen:
        chosen = {"device", "kernels", "fit", "compare"}
    if args.skip_kernels:
        chosen.discard("kernels")
    return chosen


def fit_recipes(args: argparse.Namespace, vram: float | None, backend: str) -> list[dict[str, Any]]:
    from kernels_check.fit import estimate
    from recipes.registry import bundled, find_recipe
    from recipes.schema import load_recipe

    if args.recipe:
        targets = {args.recipe: find_recipe(args.recipe)}
    else:
        targets = dict(bundled())
    rows = []
    for name, path in targets.items():
        try:
            recipe = load_recipe(path, overrides=list(args.overrides))
        except SlothlabError as exc:
            if args.recipe:
                raise
            rows.append({"recipe": name, "error": exc.render()})
            continue
        report = estimate(recipe, vram, backend=backend).to_dict()
        rows.append({"recipe": recipe.name or name, **report})
    return rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    sections = _sections(args)
    if args.markdown and sections == {"published"}:
        from kernels_check.published import format_markdown

        print(format_markdown())
        return EXIT_OK
    try:
        result = run_sections(args, sections)
    except SlothlabError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    failed = _failed(result)
    if args.json:
        if sections == {"device"}:
            out = result["device"]  # the TUI's device panel reads this object as is
        else:
            out = {**result, "ok": not failed}
        print(json.dumps(out, indent=None, default=str))
    else:
        render(result)
    return EXIT_FAILED if failed else EXIT_OK


def run_sections(args: argparse.Namespace, sections: set[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    device: dict[str, Any] | None = None
    if "device" in sections:
        from kernels_check.device import device_report

        device = device_report()
        result["device"] = device
    if "fit" in sections:
        vram = args.vram
        if vram is None:
            if device is not None:
                vram = device.get("vram_total_gib")
            else:
                from kernels_check.fit import detect_vram_gib

                vram = detect_vram_gib()
        backend = args.backend
        if backend == "auto":
            backend = device["backend"] if device and device.get("cuda_available") else "unsloth"
        result["fit"] = {"vram_gib": vram, "backend": backend,
                         "recipes": fit_recipes(args, vram, backend)}
    if "kernels" in sections:
        from kernels_check.numerics import run_numerics

        cuda = device.get("cuda_available") if device else None
        result["kernels"] = [r.to_dict() for r in run_numerics(cuda=cuda)]
    if "compare" in sections:
        from kernels_check.compare import compare_backends

        cuda = device.get("cuda_available") if device else None
        result["compare"] = compare_backends(args.model, cuda=cuda)
    if "published" in sections:
        from dataclasses import asdict

        from kernels_check.published import comparisons, context_rows

        result["published"] = {
            "peaks": [{**asdict(c), "diff_percent": c.diff_percent} for c in comparisons()],
            "max_context": [dict(zip(("card", "published", "predicted", "diff_percent"), row,
                                     strict=True)) for row in context_rows()],
        }
    return result


def _failed(result: dict[str, Any]) -> bool:
    kernels_failed = any(r["status"] == "failed" for r in result.get("kernels", []))
    compare_failed = result.get("compare", {}).get("status") == "failed"
    return kernels_failed or compare_failed


# -- rendering -----------------------------------------------------------------------------------

STATUS_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow",
                "fits": "green", "tight": "yellow", "does not fit": "bold red", "unknown": "dim"}


def render(result: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    if "device" in result:
        console.print(_device_table(result["device"]))
    if "kernels" in result:
        console.print(_kernels_table(result["kernels"]))
    if "fit" in result:
        for table in _fit_tables(result["fit"]):
            console.print(table)
    if "compare" in result:
        console.print(_compare_table(result["compare"]))
    if "published" in result:
        console.print(_published_table(result["published"]))


def _device_table(device: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="device", title_justify="left", show_header=False)
    table.add_column("fact", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in device.items():
        if key in ("vram_total_gib", "vram_free_gib") and value is not None:
            value = f"{value:.2f} GiB"
        if value is None:
            value = "-"
        table.add_row(key, str(value))
    return table


def _kernels_table(results: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="kernel numerics (Unsloth vs PyTorch, forward + backward)",
                  title_justify="left")
    for col in ("check", "status", "max |err|", "tolerance", "dtype", "shape", "note"):
        table.add_column(col, overflow="fold")
    for r in results:
        style = STATUS_STYLE.get(r["status"], "")
        err = "-" if r.get("max_abs_err") is None else f"{r['max_abs_err']:.2e}"
        tol = "-" if r.get("tol") is None else f"{r['tol']:.2e}"
        table.add_row(r["name"], f"[{style}]{r['status']}[/]", err, tol, r.get("dtype", ""),
                      r.get("shape", ""), r.get("reason", ""))
    return table


def _fit_tables(fit: dict[str, Any]) -> list[Any]:
    from rich.table import Table

    from kernels_check.fit import COMPONENT_LABELS

    vram = fit["vram_gib"]
    card = f"{vram:g} GiB card" if vram else "no card size (no GPU; use --vram N)"
    summary = Table(title=f"fit ({fit['backend']} backend, {card})", title_justify="left")
    for col in ("recipe", "model", "batch x seq", "peak", "verdict", "max batch", "max seq",
                "advice / note"):
        summary.add_column(col, overflow="fold")
    tables = [summary]
    for row in fit["recipes"]:
        if "error" in row:
            summary.add_row(row["recipe"], "", "", "", "[red]invalid[/]", "", "", row["error"])
            continue
        style = STATUS_STYLE.get(row["verdict"], "")
        note = row["advice"] or ("" if row["components"] else row["reason"])
        summary.add_row(
            row["recipe"], row["model"], f"{row['batch_size']} x {row['seq_length']}",
            f"{row['total_gib']:.2f} GiB" if row["components"] else "-",
            f"[{style}]{row['verdict']}[/]",
            str(row["max_batch_size"] or "-"), str(row["max_seq_length"] or "-"), note)
        if len(fit["recipes"]) == 1 and row["components"]:
            detail = Table(title=f"{row['recipe']}: peak VRAM by component", title_justify="left")
            detail.add_column("component")
            detail.add_column("GiB", justify="right")
            for key, value in row["components"].items():
                detail.add_row(COMPONENT_LABELS.get(key, key), f"{value:.3f}")
            detail.add_row("[bold]total[/]", f"[bold]{row['total_gib']:.3f}[/]")
            modes = row["activations_by_mode"]
            detail.add_section()
            for mode, label in (("none", "activations, no checkpointing"),
                                ("standard", "activations, gradient checkpointing"),
                                ("offload", "activations, Unsloth offloaded checkpointing")):
                mark = " (this run)" if mode == row["checkpointing"] else ""
                detail.add_row(f"{label}{mark}", f"{modes[mode]:.3f}")
            tables.append(detail)
    return tables


def _compare_table(compare: dict[str, Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    style = STATUS_STYLE.get(compare["status"], "")
    if compare.get("device") == "cpu":
        return _compare_cpu_table(compare, style)
    title = f"one training step per backend: [{style}]{compare['status']}[/]"
    if compare.get("reason"):
        title += f" ({compare['reason']})"
    if not compare.get("backends"):
        return Text.from_markup(title)
    table = Table(title=title, title_justify="left")
    for col in ("backend", "first loss", "losses", "tokens/s", "peak alloc", "peak reserved",
                "fit estimate"):
        table.add_column(col)
    for name, run in compare.get("backends", {}).items():
        if "error" in run:
            table.add_row(name, f"[red]{run['error']}[/]", "", "", "", "", "")
            continue
        table.add_row(name, f"{run['first_loss']:.4f}",
                      " ".join(f"{x:.3f}" for x in run["losses"]),
                      f"{run['tokens_per_second']:.0f}",
                      f"{run.get('peak_allocated_gib', 0):.2f} GiB",
                      f"{run.get('peak_reserved_gib', 0):.2f} GiB",
                      f"{run.get('estimate_gib', 0):.2f} GiB")
    return table


def _compare_cpu_table(compare: dict[str, Any], style: str) -> Any:
    from rich.table import Table
    from rich.text import Text

    title = (f"{compare.get('steps', '?')} training steps of the demo per backend (CPU, fp32): "
             f"[{style}]{compare['status']}[/]")
    if compare.get("reason"):
        title += f" ({compare['reason']})"
    table = Table(title=title, title_justify="left")
    for col in ("backend", "optimizer", "loss", "first → last loss", "steps/s", "peak RSS"):
        table.add_column(col)
    for name, run in compare.get("backends", {}).items():
        if "error" in run:
            table.add_row(name, Text(run["error"], style="red"), "", "", "", "")
            continue
        settings = run.get("settings", {})
        table.add_row(name, settings.get("optimizer", ""), settings.get("loss", ""),
                      f"{run['losses'][0]:.4f} → {run['losses'][-1]:.4f}",
                      f"{run['steps_per_second']:.2f}", f"{run['peak_rss_gib']:.2f} GiB")
    if "loss_rel_diff" in compare:
        table.caption = (f"largest relative loss difference {compare['loss_rel_diff']:.1e} "
                         f"(tolerance {compare['loss_rtol']:g}); unsloth/reference: speed "
                         f"{compare['speedup']:.2f}x, memory {compare['memory_ratio']:.2f}x")
    return table


def _published_table(published: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="the estimator against published peak memory", title_justify="left")
    for col in ("figure", "published", "slothlab", "diff", "embeddings in CPU RAM", "counts"):
        table.add_column(col, overflow="fold")
    for c in published["peaks"]:
        alt = "" if c["offloaded_gib"] is None else f"{c['offloaded_gib']:.2f} GiB"
        table.add_row(c["name"], f"{c['published_gib']:.2f} GiB", f"{c['predicted_gib']:.2f} GiB",
                      f"{c['diff_percent']:+.0f} %", alt, c["counts"])
    table.add_section()
    for row in published["max_context"]:
        table.add_row(f"Llama-3.1-8B r=32 max context, {row['card']} card",
                      f"{row['published']:,} tokens", f"{row['predicted']:,} tokens",
                      f"{row['diff_percent']:+.0f} %", "", "batch 1")
    return table
