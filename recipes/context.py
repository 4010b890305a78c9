"""What every stage of a run shares: the recipe, the run folder, the event writer, the stop flag.

The runner (recipes/runner.py) builds one ``RunContext`` and hands it to each stage
(recipes/stages/); a stage returns a ``StageOutcome``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipes import events as ev
from recipes.rundir import latest_checkpoint, stage_folder
from recipes.schema import Recipe


class StageWriter:
    """Stamps ``stage`` on the events a stage emits; one events.jsonl holds every stage."""

    def __init__(self, writer: ev.EventWriter, stage: str) -> None:
        self.writer, self.stage = writer, stage

    def emit(self, event: ev.Event) -> None:
        if getattr(event, "stage", None) == "":
            event.stage = self.stage  # type: ignore[attr-defined]
        self.writer.emit(event)


@dataclass
class StageOutcome:
    finished: bool
    step: int = 0
    final_loss: float | None = None
    output: str = ""  # the stage's product: tokenizer folder, model folder or adapter


@dataclass
class RunContext:
    recipe: Recipe
    options: Any  # recipes.runner.RunOptions
    run_dir: Path
    writer: ev.EventWriter
    stop: Any  # recipes.signals.StopFlag
    device: str
    backend: Any  # recipes.backends.BackendChoice
    corpus: Any = None  # staged recipes: the corpus sample every stage reads
    loaded: Any = None  # other recipes: the normalised dataset (recipes.data.Loaded)
    notes: list[str] = field(default_factory=list)  # for the preflight: what the resume did
    checkpoint_bytes: int = 0  # what one checkpoint of the current stage takes on disk

    @property
    def staged(self) -> bool:
        return bool(self.recipe.stages)

    def folder(self, stage: str) -> Path:
        return stage_folder(self.run_dir, stage, staged=self.staged)

    def emitter(self, stage: str) -> StageWriter:
        """Events of a staged recipe carry their stage; a one-stage recipe's carry none."""
        return StageWriter(self.writer, stage if self.staged else "")

    def checkpoint(self, stage: str) -> Path | None:
        return latest_checkpoint(self.folder(stage))
