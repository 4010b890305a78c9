"""The recipe list: model, dataset, task, estimated VRAM and a fit badge per recipe."""

from __future__ import annotations

from pathlib import PurePath

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from recipes.safe_text import safe_text
from tui.catalog import RecipeEntry
from tui.fit import Fit

# The verdict first: at 80 columns the model and dataset may scroll off, the fit must not.
COLUMNS = ("recipe", "fit", "VRAM", "task", "model", "dataset")


def short_model(model: str) -> str:
    return model.rsplit("/", 1)[-1]


class RecipeTable(DataTable):
    BINDINGS = [Binding("enter", "select_cursor", "Configure")]
    DEFAULT_CSS = """
    RecipeTable {
        height: 1fr;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
    }
    RecipeTable:focus {
        border: round $primary;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.border_title = "recipes"
        self.entries: list[RecipeEntry] = []

    def on_mount(self) -> None:
        for label in COLUMNS:
            self.add_column(label, key=label)

    def show(self, entries: list[RecipeEntry], fits: dict[str, Fit], tiny: bool,
             card_source: str = "chosen") -> None:
        cursor = self.cursor_row
        self.entries = entries
        self.clear()
        for entry in entries:
            key = str(entry.path)
            recipe = entry.recipe
            name = Text(safe_text(entry.name, multiline=False), style="bold")
            if entry.source == "saved":
                name.append(" ·saved", style="dim")
            if recipe is None:
                self.add_row(name, Text("invalid", style="red"), "", "", "", "", key=key)
                continue
            model = safe_text(short_model(recipe.model), multiline=False)
            if tiny and entry.tiny_error:  # its tiny_overrides do not load: no tiny run
                self.add_row(name, Text("invalid", style="red"), "",
                             safe_text(recipe.task, multiline=False),
                             f"{model} (tiny)", Text("tiny_overrides invalid", style="red"),
                             key=key)
                continue
            dataset = safe_text(PurePath(recipe.dataset).name or recipe.dataset, multiline=False)
            if recipe.tiny or tiny:
                model += " (tiny)"
                if recipe.sample_dataset:  # tiny mode trains on the recipe's sample
                    dataset = f"{PurePath(recipe.sample_dataset).name} (sample)"
            fit = fits.get(key)
            if (recipe.tiny or tiny) and card_source == "none":
                # No GPU to check against, and none needed: a tiny run trains on this CPU.
                need = Text(fit.need if fit and fit.total_gib is not None else "", justify="right")
                badge = Text("CPU ok", style="green")
            elif fit is None:
                need, badge = Text("…", style="dim"), Text("…", style="dim")
            else:
                need = Text(fit.need if fit.total_gib is not None else "?", justify="right")
                badge = Text(*fit.badge_for(card_source))
            self.add_row(name, badge, need, safe_text(recipe.task, multiline=False), model, dataset,
                         key=key)
        if entries:
            self.move_cursor(row=min(max(cursor, 0), len(entries) - 1))

    @property
    def current(self) -> RecipeEntry | None:
        if not self.entries or self.cursor_row < 0:
            return None
        return self.entries[min(self.cursor_row, len(self.entries) - 1)]
