"""Faults a test cannot cause from outside, caused inside a child training process.

    python tests/fault_child.py kill-in-save RUNS CACHE STEP   # SIGKILL itself while saving STEP

The kill lands after the checkpoint's weights and optimizer state are written and before its
RNG state, trainer state and completion marker: a torn checkpoint, as a kill -9, an OOM kill or
a power cut in the middle of a save leaves it.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    mode, runs, cache, step = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    from transformers import Trainer

    from recipes.registry import bundled
    from recipes.runner import RunOptions, run
    from recipes.schema import load_recipe

    assert mode == "kill-in-save"
    original = Trainer._save_rng_state

    def save_rng_state(self, output_dir):
        if self.state.global_step == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, output_dir)

    Trainer._save_rng_state = save_rng_state
    recipe = load_recipe(bundled()["demo"], overrides=[
        "max_steps=12", "save_steps=3", "logging_steps=1", "eval_steps=0", "eval_samples=2",
        "max_new_tokens=4", "save_total_limit=0"])
    run(recipe, RunOptions(runs_root=runs, cache_dir=cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
