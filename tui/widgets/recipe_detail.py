"""The highlighted recipe: what it trains, on what, and how long.

In tiny mode it shows what a tiny run trains: the sample data and the tiny overrides applied.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from recipes.safe_text import safe_text
from recipes.schema import data_source
from tui.catalog import RecipeEntry, as_run
from tui.format import plural, short_path


def render_entry(entry: RecipeEntry | None, tiny: bool) -> Table | Text:
    if entry is None:
        return Text("no recipes found", style="dim")
    if entry.recipe is None:
        return Text(safe_text(f"{short_path(entry.path)} does not load:\n{entry.error}"),
                    style="red")
    if tiny and entry.tiny_error:
        text = Text(f"{short_path(entry.path)} does not load in tiny mode "
                    "(slothlab --tiny refuses it too):\n", style="bold red")
        text.append(f"{safe_text(entry.tiny_error)}\n", style="red")
        text.append("fix its tiny_overrides, or turn tiny mode off (t) to use it", style="dim")
        return text
    r = as_run(entry.recipe, tiny)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    if r.description:
        grid.add_row("", Text(safe_text(r.description), style="italic"))
    model = Text(safe_text(r.model, multiline=False))
    if r.tiny:
        model.append("  (tiny: a random miniature)", style="dim")
    grid.add_row("model", model)
    source = data_source(r)
    sample = "sample, " if source != r.dataset else ""
    grid.add_row("data", Text(safe_text(f"{source} ({sample}{r.dataset_format})")))
    steps = plural(r.max_steps, "step") if r.max_steps else plural(r.epochs, "epoch")
    batch = r.batch_size or "auto"  # 0 = auto: picked from the VRAM estimate when it runs
    grid.add_row("train", f"{steps} · batch {batch}×{r.gradient_accumulation_steps} · "
                          f"lr {r.learning_rate:g} {r.lr_scheduler} · {r.optimizer}")
    grid.add_row("lora", f"r {r.lora_r} · alpha {r.lora_alpha} · seq {r.max_seq_length} · "
                         f"{'4-bit' if r.load_in_4bit else '16-bit'}")
    where = f"bundled: recipes/configs/{entry.path.name}" if entry.source == "bundled" \
        else short_path(entry.path)
    grid.add_row("file", Text(where, style="dim"))
    return grid


class RecipeDetail(Static):
    DEFAULT_CSS = """
    RecipeDetail {
        height: auto;
        padding: 0 1;
    }
    """

    def show(self, entry: RecipeEntry | None, tiny: bool) -> None:
        self.update(render_entry(entry, tiny))
