"""Messages the workers and widgets post to the app and its screens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from tui.device import DeviceInfo
from tui.driver import DriverReport
from tui.runstate import RunState


@dataclass
class DriverDetected(Message):
    """The NVIDIA driver answered (NVML or nvidia-smi; or nobody did: ``report.problem``)."""

    report: DriverReport


@dataclass
class DeviceDetected(Message):
    """The full device check finished (or failed: ``info.error``)."""

    info: DeviceInfo


@dataclass
class RunEnded(Message):
    """The live run's process exited (``state.status`` says how)."""

    state: RunState
    exit_code: int


@dataclass
class RunsChanged(Message):
    """A run directory appeared or changed: the History screen rescans."""

    run_dir: Path | None = None
