"""Runs recipes through the unsloth backend in a child process, for tests/test_unsloth_backend.py.

Importing unsloth patches TRL and transformers for the whole process (optimizers, SFTTrainer),
so a test process must never import it; its tests start this script instead:

    python tests/unsloth_child.py resume RUNS CACHE      # 12 steps straight; 6 + stop + resume
    python tests/unsloth_child.py recipes RUNS CACHE     # each recipe's tiny mode, a few steps

It prints one JSON object on its last line: the run directories it made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHORT = ["logging_steps=1", "eval_steps=0", "eval_samples=2", "max_new_tokens=4",
         "eval_prompts=1"]


def main() -> int:
    mode, runs, cache = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    from recipes.backends import select_backend

    select_backend("unsloth")  # unsloth first, before transformers/trl/peft
    from recipes.registry import bundled
    from recipes.runner import RunOptions, run
    from recipes.schema import load_recipe

    def options(**extra: object) -> RunOptions:
        return RunOptions(backend="unsloth", runs_root=runs, cache_dir=cache, **extra)

    out: dict[str, str] = {}
    if mode == "resume":
        recipe = load_recipe(bundled()["demo"], overrides=[*SHORT, "max_steps=12",
                                                           "save_steps=100"])
        out["straight"] = str(run(recipe, options()))
        stopped = run(recipe, options(stop_at_step=6))
        run(load_recipe(stopped / "recipe.yaml"), options(resume_dir=stopped))
        out["resumed"] = str(stopped)
    elif mode == "recipes":
        for name in ("finetome-llama3.2-3b", "medqa-tinyllama", "saudial-lfm2",
                     "inkuba-multitask"):
            recipe = load_recipe(bundled()[name], overrides=["tiny=true", *SHORT, "max_steps=3"])
            out[name] = str(run(recipe, options()))
        scratch = load_recipe(bundled()["gemma3-scratch"], overrides=[
            "tiny=true", *SHORT, "pretrain_max_steps=3", "max_steps=3"])
        out["gemma3-scratch"] = str(run(scratch, options()))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
