"""Export a run (from Results): pick merged / GGUF / Ollama and a type, watch the progress.

The work is `slothlab export RUN --to ... --json` in a subprocess (tui/export_process.py): the
model never loads in the TUI's process. Esc stops a running export (nothing is left behind)
or closes the dialog.
"""

from __future__ import annotations

import types
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, ProgressBar, Select, Static

from recipes.export import DEFAULT_DTYPE
from recipes.to_gguf import CONVERTER_TYPES
from tui.export import human_size, usage
from tui.export_process import ExportProcess, export_command

TARGET_LABELS = [("merged 16-bit model (safetensors, transformers / vLLM)", "merged"),
                 ("GGUF file (llama.cpp)", "gguf"),
                 ("Ollama model (GGUF + Modelfile)", "ollama")]
QUANTIZE_ONLY = ("q4_k_m", "q5_k_m", "q6_k")  # offered; the export says if llama-quantize is missing


def dtype_options(target: str) -> list[tuple[str, str]]:
    if target == "merged":
        return [("bf16", "bf16"), ("f16", "f16")]
    return [(t, t) for t in CONVERTER_TYPES] + [(f"{t} (needs llama-quantize)", t)
                                                 for t in QUANTIZE_ONLY]


class ExportScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    ExportScreen {
        align: center middle;
    }
    ExportScreen > Vertical {
        width: 84;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: thick $primary;
        background: $panel;
        padding: 1 2;
    }
    ExportScreen #export-title {
        text-style: bold;
        padding-bottom: 1;
    }
    ExportScreen .row {
        height: auto;
    }
    ExportScreen .row Label {
        width: 7;
        padding: 1 0;
    }
    ExportScreen .row Select {
        width: 1fr;
    }
    ExportScreen #export-buttons {
        height: auto;
        align-horizontal: right;
        padding-top: 1;
    }
    ExportScreen #export-stage {
        height: auto;
        color: $text-muted;
        padding-top: 1;
    }
    ExportScreen ProgressBar {
        margin-bottom: 1;
    }
    ExportScreen #export-result {
        height: auto;
    }
    """
    BINDINGS = [
        Binding("escape", "close", "Close / stop"),
        Binding("ctrl+e", "start", "Export"),
    ]

    def __init__(self, run_dir: Path, slothlab: tuple[str, ...]) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.slothlab = slothlab
        self.process: ExportProcess | None = None
        self.outcome: dict | None = None
        self.stopping = False  # Esc asked the running export to stop

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Export {self.run_dir.name}", id="export-title")
            with Horizontal(classes="row"):
                yield Label("to")
                yield Select(TARGET_LABELS, value="merged", allow_blank=False, id="target")
            with Horizontal(classes="row"):
                yield Label("type")
                yield Select(dtype_options("merged"), value=DEFAULT_DTYPE["merged"],
                             allow_blank=False, id="dtype")
            yield Static("", id="export-stage")
            yield ProgressBar(total=1, show_eta=False, id="export-bar")
            yield Static("", id="export-result")
            with Horizontal(id="export-buttons"):
                yield Button("Close (esc)", id="close")
                yield Button("Export (ctrl+e)", id="start", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#start", Button).focus()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "target" and isinstance(event.value, str):
            dtype = self.query_one("#dtype", Select)
            dtype.set_options(dtype_options(event.value))
            dtype.value = DEFAULT_DTYPE[event.value]

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        else:
            self.action_close()

    def action_start(self) -> None:
        if self.running:
            return
        target = str(self.query_one("#target", Select).value)
        dtype = str(self.query_one("#dtype", Select).value)
        self.outcome, self.stopping = None, False
        self.query_one("#export-result", Static).update("")
        self._stage(f"starting slothlab export --to {target} --dtype {dtype} …")
        self.query_one("#export-bar", ProgressBar).update(total=1, progress=0)
        self.query_one("#start", Button).disabled = True
        argv = export_command(self.slothlab, self.run_dir, target, dtype)
        self.process = ExportProcess(argv, self.on_export_message)
        self.run_worker(self._drive(self.process), exclusive=True, group="export")

    async def _drive(self, process: ExportProcess) -> None:
        code = await process.run()
        self._ended(code, process)

    def on_export_message(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "export_started":
            notes = "\n".join(f"note: {n}" for n in message.get("notes", []))
            self._stage(f"→ {message.get('out', '')}" + (f"\n{notes}" if notes else ""))
        elif kind == "export_progress":
            bar = self.query_one("#export-bar", ProgressBar)
            bar.update(total=max(float(message.get("total") or 1), 1.0),
                       progress=float(message.get("done") or 0))
            self._stage(f"{message.get('stage', '')}: {message.get('message', '')}")
        elif kind in ("export_finished", "export_failed"):
            self.outcome = message

    def _ended(self, code: int, process: ExportProcess) -> None:
        self.query_one("#start", Button).disabled = False
        result = self.query_one("#export-result", Static)
        outcome = self.outcome or {}
        if outcome.get("type") == "export_finished":
            done = types.SimpleNamespace(**outcome)
            text = Text(f"exported in {done.seconds:.1f} s → {done.out}\n", style="green")
            for path, size in done.files.items():
                text.append(f"  {human_size(size):>9}  {Path(path).name}\n")
            text.append("\n".join(usage(done)))
            bar = self.query_one("#export-bar", ProgressBar)
            bar.update(total=bar.total, progress=bar.total)
            self._stage("done")
            result.update(text)
        elif code == 130:
            self._stage("stopped: nothing was written")
        elif self.stopping and code < 0:  # it did not answer SIGINT in time: killed
            self._stage("stopped: the export did not answer and was killed; a partial folder "
                        f"may be left under {self.run_dir / 'export'}")
        elif outcome.get("type") == "export_failed":
            text = Text(outcome.get("what", "failed"), style="bold red")
            if outcome.get("where"):
                text.append(f"\n{outcome['where']}", style="dim")
            if outcome.get("fix"):
                text.append(f"\n→ {outcome['fix']}")
            self._stage("refused" if code == 2 else "failed")
            result.update(text)
        else:
            tail = "\n".join(list(process.stderr)[-4:])
            self._stage("failed")
            result.update(Text(f"the export process exited with code {code}\n{tail}",
                               style="red"))

    def _stage(self, text: str) -> None:
        self.query_one("#export-stage", Static).update(Text(text))

    def action_close(self) -> None:
        if self.running:
            self._stage("stopping (the export removes what it had written) …")
            self.stopping = True
            self.process.stop()  # type: ignore[union-attr]
            return
        self.dismiss(None)
