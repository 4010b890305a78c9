"""The device panel: GPU or CPU (from the driver, at once), the backend a run would use and why,
and the libraries (from the full check, filled in when it has run in the background).

It scrolls: at 80×24 it has a handful of rows.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from recipes.safe_text import safe_text
from tui.device import DeviceInfo

REFERENCE_WHY = "no CUDA device"


def _gpu_lines(info: DeviceInfo) -> list[tuple[str, Text | str]]:
    rows: list[tuple[str, Text | str]] = []
    driver = info.driver
    if info.cuda:
        total, free = info.vram_total_gib, info.vram_free_gib
        memory = f"{total:.1f} GiB" if total is not None else "? GiB"
        if free is not None:
            memory += f" ({free:.1f} free)"
        rows.append(("GPU", Text(safe_text(info.gpu_name or "CUDA device", multiline=False),
                                 style="bold")))
        rows.append(("VRAM", memory))
        if driver is not None and len(driver.gpus) > 1:
            rows.append(("", f"+{len(driver.gpus) - 1} more GPU(s); runs use the first"))
    elif driver is not None and driver.found:  # the driver has a GPU, torch (full check) not
        rows.append(("device", Text("CPU only: torch sees no CUDA device", style="bold")))
        rows.append(("driver", Text(f"sees {safe_text(driver.gpus[0].name, multiline=False)}; "
                                    "a CPU-only torch build?", style="yellow")))
    else:
        text = Text("CPU only", style="bold")
        if driver is not None and driver.problem:
            text.append(f" · {safe_text(driver.problem, multiline=False)}", style="dim")
        rows.append(("device", text))
    if driver is not None and driver.driver_version:
        cuda = f" · CUDA ≤{driver.cuda_version}" if driver.cuda_version else ""
        rows.append(("driver", Text(f"{safe_text(driver.driver_version, multiline=False)}{cuda}",
                                    style="dim")))
    return rows


def _backend_line(info: DeviceInfo) -> Text:
    """What `--backend auto` picks: the full check's answer (the training process's own rule),
    or, before it, what the driver already settles (no GPU: reference)."""
    raw = info.raw
    if raw.get("backend"):
        text = Text(safe_text(raw["backend"], multiline=False), style="bold cyan")
        reason = str(raw.get("backend_reason") or "")
        for tail in (": reference backend", ": unsloth backend"):  # the name again: say it once
            reason = reason.split(tail)[0]
        if reason:
            text.append(f": {safe_text(reason)}", style="dim")
        return text
    if not info.cuda:
        return Text.assemble(("reference", "bold cyan"), (f": {REFERENCE_WHY}", "dim"))
    if info.error:
        return Text("unsloth if torch sees the GPU and unsloth imports; else reference",
                    style="dim")
    return Text("unsloth if torch sees the GPU and unsloth imports (checking…)", style="dim")


def _library_lines(info: DeviceInfo) -> list[tuple[str, Text | str]]:
    raw = info.raw
    if not raw:
        if info.error:
            return [("check", Text(f"failed: {safe_text(info.error)}", style="yellow")),
                    ("", Text("d (or the palette) runs it again", style="dim"))]
        if info.checking:
            return [("libs", Text("torch, unsloth: checking in the background…", style="dim"))]
        return []
    rows: list[tuple[str, Text | str]] = []
    torch = raw.get("torch")
    if torch:
        build = f" (CUDA {raw['cuda_version']} build)" if raw.get("cuda_version") else ""
        rows.append(("torch", f"{safe_text(torch, multiline=False)}{build}"))
    if info.cuda:
        rows.append(("bf16", "yes" if raw.get("bf16") else "no (fp16 instead)"))
    version = raw.get("unsloth")
    importable = raw.get("unsloth_importable")
    if importable:
        text = Text(f"{safe_text(version or '?', multiline=False)} imports")
        if not info.cuda:
            # Unsloth selects its CPU backend without a GPU: auto still picks reference here,
            # and --backend unsloth trains through Unsloth's CPU path.
            text.append(" (its CPU backend: --backend unsloth uses it; auto picks reference)",
                        style="dim")
        rows.append(("unsloth", text))
    elif version or "unsloth_importable" in raw:
        rows.append(("unsloth", Text(f"{safe_text(version or 'not installed', multiline=False)}"
                                     " · does not import", style="yellow")))
        problem = raw.get("unsloth_problem")
        if problem and version:
            rows.append(("", Text(safe_text(str(problem)[:200]), style="dim")))
    return rows


def render_device(info: DeviceInfo) -> Table | Text:
    if info.pending:
        return Text("device: detecting…", style="dim")
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    if not info.known:  # neither the driver nor the check answered
        grid.add_row("device", Text(f"unknown ({safe_text(info.why_unknown)})", style="yellow"))
        grid.add_row("", Text("runs still start: the run itself picks its backend", style="dim"))
        return grid
    for label, value in _gpu_lines(info):
        grid.add_row(label, value)
    grid.add_row("auto", _backend_line(info))
    for label, value in _library_lines(info):
        grid.add_row(label, value)
    return grid


class DevicePanel(VerticalScroll):
    DEFAULT_CSS = """
    DevicePanel {
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        padding: 0 1;
        height: auto;
        max-height: 100%;
    }
    DevicePanel > Static {
        height: auto;
    }
    """

    def __init__(self, info: DeviceInfo | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "device"
        self.info = info or DeviceInfo()

    def compose(self):
        yield Static(render_device(self.info))

    def show(self, info: DeviceInfo) -> None:
        self.info = info
        self.query_one(Static).update(render_device(info))
        self.border_subtitle = "checking…" if info.checking else ""
