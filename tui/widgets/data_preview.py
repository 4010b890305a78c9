"""The Configure screen's data preview: `slothlab data --json` for the form's current values.

The preview runs in a subprocess (torch and transformers never load in the TUI's process),
started a moment after the form stops changing; a newer request cancels the one in flight
(its process is killed). It shows the layout, the splits and token figures, the preflight's
notes, and the first example with its trained tokens highlighted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import Static

from recipes.schema import Recipe, dump_recipe

DEBOUNCE_SECONDS = 0.8
OUTPUT_LIMIT = 32 * 1024 * 1024


def preview_text(report: dict[str, Any]) -> Text:
    """A report from `slothlab data --json` as Rich text (an error report too)."""
    if "error" in report:
        error = report["error"]
        text = Text("cannot prepare the data\n", style="bold red")
        text.append(f"{error.get('where') + ': ' if error.get('where') else ''}"
                    f"{error.get('what', '')}\n", style="red")
        if error.get("fix"):
            text.append(f"→ {error['fix']}", style="")
        return text
    pre = report["preflight"]
    columns = ", ".join(f"{role} ← {col}" for role, col in report.get("columns", {}).items())
    text = Text(f"{report.get('layout', '?')}", style="bold")
    text.append(f" ({columns})\n" if columns else "\n", style="dim")
    splits = " · ".join(f"{k} {v}" for k, v in pre["splits"].items())
    text.append(f"{pre['examples']} of {pre['rows']} rows · {splits}\n")
    text.append(f"tokens {pre['tokens_min']}–{pre['tokens_max']} (median "
                f"{pre['tokens_median']:g}) · trained {pre['trained_token_share']:.0%}\n")
    for note in report.get("notes", []):
        if not note.startswith("dataset_format"):
            text.append(f"• {note}\n", style="dim")
    for example in report.get("examples", [])[:1]:
        text.append(f"\n{example['where']} · {example['tokens']} tokens, "
                    f"{example['trained_tokens']} trained\n", style="bold")
        for part in example["parts"]:
            text.append(part["text"], style="bold green" if part["trained"] else "dim")
    return text


class DataPreview(VerticalScroll):
    """Shows `slothlab data --json` for a recipe; ``request(recipe)`` refreshes it."""

    DEFAULT_CSS = """
    DataPreview {
        height: 1fr;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    DataPreview #preview-body {
        width: 1fr;
    }
    """

    def __init__(self, slothlab: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.slothlab = slothlab
        self._timer: Timer | None = None
        self._wanted: str | None = None  # the recipe YAML last asked for
        self._shown: str | None = None  # ... and the one shown

    def compose(self):
        yield Static(Text("waiting for the form…", style="dim"), id="preview-body")

    def on_mount(self) -> None:
        self.border_title = "data preview"

    def request(self, recipe: Recipe | None, *, now: bool = False) -> None:
        """Preview ``recipe`` (None: the form is invalid) after the debounce delay."""
        if recipe is None:
            return
        wanted = dump_recipe(recipe)
        if wanted == self._wanted:
            return
        self._wanted = wanted
        if self._timer is not None:
            self._timer.stop()
        if now:
            self._start()
        else:
            self._timer = self.set_timer(DEBOUNCE_SECONDS, self._start)

    def _start(self) -> None:
        self.run_worker(self._preview(self._wanted or ""), group="data-preview", exclusive=True)

    def show(self, text: Text) -> None:
        self.query_one("#preview-body", Static).update(text)

    async def _preview(self, recipe_yaml: str) -> None:
        self.border_subtitle = "preparing…"
        folder = tempfile.mkdtemp(prefix="slothlab-preview-")
        path = Path(folder) / "preview.yaml"
        proc = None
        try:
            path.write_text(recipe_yaml, encoding="utf-8")
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.slothlab, "data", "--recipe", str(path), "--json", "-n", "1",
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE, limit=OUTPUT_LIMIT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            except OSError as exc:
                self.show(preview_text({"error": {"what": f"cannot run the preview: {exc}"}}))
                self.border_subtitle = ""
                return
            out, err = await proc.communicate()
            report = _last_json(out.decode("utf-8", "replace"))
            if report is None:
                tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
                report = {"error": {"what": "the preview command failed (exit "
                                            f"{proc.returncode}): {' '.join(tail)[:300]}"}}
            self._shown = recipe_yaml
            self.show(preview_text(report))
            self.border_subtitle = ""
        finally:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                # Read the pipes to their end, not only the exit: pipes left open are closed
                # when garbage-collected, which fails once the app's event loop has closed.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.communicate(), 5)
            with contextlib.suppress(OSError):
                path.unlink()
                os.rmdir(folder)


def _last_json(output: str) -> dict[str, Any] | None:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(line)
    return None
