"""`slothlab data`: see what the model will train on before spending GPU time.

    slothlab data --recipe demo                              # preflight + 3 examples
    slothlab data --recipe demo --set dataset=my.jsonl -n 5  # your own file, as a run reads it
    slothlab data --recipe medqa-tinyllama --tiny --json     # one JSON object (for front ends)

It loads, detects the layout, splits, renders and tokenizes exactly as a run does, with the
model's tokenizer only (tiny mode: the miniature's, built and cached as a run builds it); no
model weights are loaded and nothing is trained or written under runs/. Trained tokens are
highlighted (green on a terminal; between [[ and ]] when the output is piped), and each part
of an example is counted in tokens. Refusals are the run's own, with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from recipes.errors import SlothlabError

EXIT_OK, EXIT_FAILED = 0, 1
MARK_OPEN, MARK_CLOSE = "[[", "]]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slothlab data", description="Preview a recipe's data as the model will see it: "
        "the preflight, and examples with the trained tokens highlighted. Loads the tokenizer "
        "only; trains nothing.")
    parser.add_argument("--recipe", metavar="NAME|FILE", required=True,
                        help="bundled recipe name or a path to a recipe YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a recipe field (repeatable)")
    parser.add_argument("--tiny", action="store_true",
                        help="the miniature's tokenizer and the recipe's sample data (offline)")
    parser.add_argument("-n", type=int, default=3, metavar="N",
                        help="examples to show (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def load_tokenizer(recipe: Any, examples: list) -> tuple[Any, str]:
    """The tokenizer a run of ``recipe`` would use (tiny: the miniature's), and its name."""
    from recipes.models import CHAT_TEMPLATES

    if recipe.tiny:
        from transformers import AutoTokenizer

        from recipes.host import cache_root
        from recipes.tiny import build_tiny_model, tokenizer_corpus

        folder = build_tiny_model(recipe, tokenizer_corpus(recipe, examples), cache_root())
        tokenizer, name = AutoTokenizer.from_pretrained(str(folder)), f"{recipe.model} (tiny)"
    else:
        from recipes.backends.reference import load_tokenizer as load
        from recipes.data.sources import resolve_path
        from recipes.hub import ensure_available

        if resolve_path(recipe.model) is None:
            ensure_available(recipe.model, kind="model", field="model",
                             local_hint="/path/to/model_folder")
        try:
            tokenizer, name = load(recipe.model, recipe), recipe.model
        except OSError as exc:
            raise SlothlabError(f"could not load the tokenizer of '{recipe.model}' "
                                f"({str(exc).splitlines()[0][:200]})", where="model",
                                fix="check the id / your network, or use --tiny") from None
    if recipe.chat_template != "auto":
        tokenizer.chat_template = CHAT_TEMPLATES[recipe.chat_template]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, name


def build_report(recipe: Any, n: int) -> dict[str, Any]:
    """Load and prepare the recipe's data as a run would; the preview as a JSON-able dict."""
    from recipes.data.prepare import load_examples, prepare
    from recipes.data.preview import describe
    from recipes.host import PROJECT_ROOT, quiet_libraries
    from recipes.schema import data_source

    quiet_libraries()
    source = data_source(recipe)
    loaded = load_examples(recipe, source, base_dirs=[PROJECT_ROOT])
    tokenizer, name = load_tokenizer(recipe, loaded.examples)
    prepared = prepare(recipe, tokenizer, loaded.examples, loaded.skipped, loaded.n_rows,
                       source=source, notes=loaded.notes, locate=loaded.locate)
    report = describe(loaded, prepared, tokenizer, recipe, n=n)
    return {"recipe": recipe.name, "source": source, "tiny": recipe.tiny, "tokenizer": name,
            **report}


def render(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    pre = report["preflight"]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    columns = ", ".join(f"{role} ← {col!r}" for role, col in report["columns"].items())
    splits = " · ".join(f"{k} {v}" for k, v in pre["splits"].items())
    head.add_row("data", Text(f"{report['source']} ({report['layout']}: {columns})"))
    head.add_row("tokenizer", Text(report["tokenizer"]))
    head.add_row("examples", Text(f"{pre['examples']} of {pre['rows']} rows · {splits}"))
    head.add_row("tokens", Text(f"min {pre['tokens_min']} · median {pre['tokens_median']:g} · "
                                f"max {pre['tokens_max']} (max_seq_length "
                                f"{pre['max_seq_length']}) · trained "
                                f"{pre['trained_token_share']:.0%}"))
    console.print(head)
    for note in report["notes"]:
        console.print(Text(f"  • {note}", style="dim"))
    colour = console.is_terminal
    legend = ("trained tokens in green" if colour
              else f"trained text between {MARK_OPEN} and {MARK_CLOSE}")
    console.print(Text(f"\n{len(report['examples'])} training example(s), {legend}:",
                       style="bold"))
    for ex in report["examples"]:
        cut = " · truncated" if ex["truncated"] else ""
        console.print(Text(f"\n── {ex['where']} · {ex['tokens']} tokens, "
                           f"{ex['trained_tokens']} trained{cut}", style="bold cyan"))
        body = Text()
        for part in ex["parts"]:
            if colour:
                body.append(part["text"], style="bold green" if part["trained"] else "dim")
            else:
                body.append(f"{MARK_OPEN}{part['text']}{MARK_CLOSE}" if part["trained"]
                            else part["text"])
        console.print(body)
        counts = " · ".join(f"{p['tokens']} {'trained' if p['trained'] else 'not trained'}"
                            for p in ex["parts"])
        console.print(Text(f"parts: {counts}", style="dim"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from recipes.registry import find_recipe
    from recipes.schema import load_recipe

    stdout = sys.stdout
    try:
        overrides = [*args.overrides, *(["tiny=true"] if args.tiny else [])]
        recipe = load_recipe(find_recipe(args.recipe), overrides=overrides)
        if recipe.stages:
            raise SlothlabError("staged recipes (gemma3-scratch) prepare their data in stages",
                                where=args.recipe, fix="preview an ordinary recipe")
        if args.json:
            sys.stdout = sys.stderr  # library chatter must not corrupt the JSON on stdout
        report = build_report(recipe, max(0, args.n))
    except SlothlabError as exc:
        sys.stdout = stdout
        if args.debug:
            raise
        if args.json:
            print(json.dumps({"error": {"what": exc.what, "where": exc.where, "fix": exc.fix,
                                        "message": exc.render()}}, ensure_ascii=False))
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        sys.stdout = stdout
        if args.debug:
            raise
        message = f"{type(exc).__name__}: {exc}"
        if args.json:
            print(json.dumps({"error": {"what": message, "where": None, "fix": None,
                                        "message": message}}, ensure_ascii=False))
        print(f"error: {message}\n  → rerun with --debug for the traceback", file=sys.stderr)
        return EXIT_FAILED
    finally:
        sys.stdout = stdout
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return EXIT_OK
    from rich.console import Console

    render(report, Console() if sys.stdout.isatty() else Console(width=200))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
