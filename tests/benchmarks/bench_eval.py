"""Greedy evaluation speed: batched (sorted by length, left-padded) vs one prompt at a time.

    .venv/bin/python tests/benchmarks/bench_eval.py [--examples 100] [--batch-size 16]

Builds the demo's tiny 4-bit model with a fresh LoRA adapter (reference backend, CPU), takes
100 held-out demo prompts, and times slothlab's `generate` with batching and without, back
to back in one process (each twice, best time kept). Also checks both give the same answers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from recipes.backends import reference
    from recipes.data.prepare import load_examples, split
    from recipes.data.render import Renderer
    from recipes.evaluate import build_eval_set, generate, stop_token_ids
    from recipes.host import quiet_libraries
    from recipes.registry import bundled
    from recipes.schema import load_recipe
    from recipes.tiny import build_tiny_model, tokenizer_corpus

    quiet_libraries()
    recipe = load_recipe(bundled()["demo"], overrides=["test_fraction=0.45", "val_fraction=0.05"])
    examples, _, _ = load_examples(recipe, str(ROOT / recipe.dataset))
    with tempfile.TemporaryDirectory() as cache:
        folder = build_tiny_model(recipe, tokenizer_corpus(recipe, examples), Path(cache))
        model, tokenizer = reference.load(folder, recipe, "cpu")
    renderer = Renderer(tokenizer, recipe)
    items = build_eval_set(split(examples, recipe).test, renderer, args.examples)
    prompts = [it.prompt for it in items]
    stop = stop_token_ids(tokenizer, renderer)

    def timed(batch_size: int) -> tuple[float, list[str]]:
        best, answers = float("inf"), []
        for _ in range(2):
            start = time.perf_counter()
            answers = generate(model, tokenizer, prompts, max_new_tokens=recipe.max_new_tokens,
                               stop_ids=stop, batch_size=batch_size)
            best = min(best, time.perf_counter() - start)
        return best, answers

    single_s, single = timed(1)
    batched_s, batched = timed(args.batch_size)
    same = sum(a == b for a, b in zip(single, batched, strict=True))
    print(f"{len(prompts)} prompts, max_new_tokens={recipe.max_new_tokens}, tiny 4-bit model, CPU")
    print(f"{'mode':<22}{'seconds':>10}{'prompts/s':>12}")
    print(f"{'one at a time':<22}{single_s:>10.2f}{len(prompts) / single_s:>12.1f}")
    print(f"{f'batched ({args.batch_size})':<22}{batched_s:>10.2f}{len(prompts) / batched_s:>12.1f}")
    print(f"speed-up: {single_s / batched_s:.1f}x; identical answers: {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
