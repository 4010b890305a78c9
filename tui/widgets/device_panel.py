"""The device panel: GPU or CPU, and which backend a run would use and why."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tui.device import DeviceInfo


class DevicePanel(Static):
    DEFAULT_CSS = """
    DevicePanel {
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        padding: 0 1;
        height: auto;
    }
    """

    def __init__(self, info: DeviceInfo | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "device"
        self.info = info or DeviceInfo(pending=True)

    def on_mount(self) -> None:
        self.show(self.info)

    def show(self, info: DeviceInfo) -> None:
        self.info = info
        self.update(self._render_info(info))

    @staticmethod
    def _render_info(info: DeviceInfo) -> Table | Text:
        if not info.known:
            style = "dim" if info.pending else "yellow"
            text = Text(info.summary, style=style)
            if not info.pending:
                text.append("\nruns still start: the run itself picks its backend", "dim")
            return text
        raw = info.raw
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        grid.add_row("device", info.summary)
        if info.cuda:
            free = raw.get("vram_free_gib")
            if isinstance(free, (int, float)):
                grid.add_row("free", f"{free:.1f} GiB")
            grid.add_row("bf16", "yes" if raw.get("bf16") else "no")
        backend = raw.get("backend") or "?"
        grid.add_row("backend", Text(str(backend), style="bold cyan"))
        if raw.get("backend_reason"):
            grid.add_row("why", Text(str(raw["backend_reason"]), style="dim"))
        versions = []
        if raw.get("torch"):
            versions.append(f"torch {raw['torch']}")
        unsloth = raw.get("unsloth")
        if unsloth or "unsloth_importable" in raw:
            ok = raw.get("unsloth_importable")
            versions.append(f"unsloth {unsloth or '-'}{'' if ok else ' (not importable)'}")
        if versions:
            grid.add_row("libs", " · ".join(versions))
        if raw.get("unsloth_problem") and not raw.get("unsloth_importable"):
            grid.add_row("", Text(str(raw["unsloth_problem"])[:160], style="dim"))
        return grid
