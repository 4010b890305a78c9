"""The device panel's data: `slothlab check --device --json`, run as a subprocess.

The check imports torch (seconds), so it runs in a worker after the first paint and never in
the TUI's process. Any failure (the command missing, a crash, a timeout, bad JSON) becomes a
``DeviceInfo`` with ``error`` set, shown as "device: unknown (reason)".
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import Any

from tui.runner import SLOTHLAB

PROBE_TIMEOUT_SECONDS = 120.0


@dataclass
class DeviceInfo:
    raw: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    pending: bool = False

    @property
    def known(self) -> bool:
        return not self.error and not self.pending and bool(self.raw)

    @property
    def cuda(self) -> bool:
        return bool(self.raw.get("cuda_available"))

    @property
    def vram_total_gib(self) -> float | None:
        value = self.raw.get("vram_total_gib")
        return float(value) if isinstance(value, (int, float)) and self.cuda else None

    @property
    def summary(self) -> str:
        if self.pending:
            return "device: detecting…"
        if not self.known:
            return f"device: unknown ({self.error or 'no report'})"
        if self.cuda:
            total = self.vram_total_gib
            size = f", {total:.1f} GiB" if total is not None else ""
            return f"GPU: {self.raw.get('gpu_name') or 'CUDA device'}{size}"
        return "CPU only (no CUDA device)"


def _first_line(text: str) -> str:
    lines = [s.strip() for s in text.strip().splitlines() if s.strip()]
    errors = [s for s in lines if s.startswith("error:")]
    return (errors[0] if errors else lines[-1] if lines else "")[:160]


async def probe_device(slothlab: tuple[str, ...] = SLOTHLAB,
                       timeout: float = PROBE_TIMEOUT_SECONDS) -> DeviceInfo:
    argv = [*slothlab, "check", "--device", "--json"]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True)
    except OSError as exc:
        return DeviceInfo(error=f"cannot run the check: {exc}")
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        return DeviceInfo(error=f"`slothlab check --device` took over {timeout:g} s")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        reason = _first_line(err.decode("utf-8", "replace")) or f"exit code {proc.returncode}"
        return DeviceInfo(error=reason)
    try:
        data = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return DeviceInfo(error="`slothlab check --device --json` printed no JSON")
    if not isinstance(data, dict):
        return DeviceInfo(error="`slothlab check --device --json` printed no JSON object")
    return DeviceInfo(raw=data)
