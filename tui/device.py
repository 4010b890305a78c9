"""The device panel's data: the driver's answer at once, the full check in the background.

Two sources, merged into one ``DeviceInfo``:

* ``tui.driver.query_driver`` (NVML or nvidia-smi, no torch): GPUs, memory, driver. It answers
  in well under a second, before or just after the first paint, and "no NVIDIA driver" at once.
* ``slothlab check --device --json`` (``probe_device``), a subprocess that imports torch and
  tries ``import unsloth``: torch and CUDA versions, bf16, unsloth importability and the
  backend ``--backend auto`` picks. It takes tens of seconds, so it runs in the background
  after the first paint, at a lower CPU priority. Any failure (the command missing, a crash, a
  timeout, bad JSON) sets ``error``; what the driver said still stands.

Where both speak, the full check wins: it is what the training process itself will see (a
CPU-only torch build, a hidden GPU).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from tui.driver import DriverReport
from tui.runner import SLOTHLAB

PROBE_TIMEOUT_SECONDS = 120.0
BACKGROUND_NICENESS = 10


@dataclass
class DeviceInfo:
    driver: DriverReport | None = None  # None until the driver has answered
    raw: dict[str, Any] = field(default_factory=dict)  # the full check's report
    error: str = ""  # why the full check failed
    checking: bool = False  # the full check is running

    @property
    def pending(self) -> bool:
        """Nothing known yet: neither the driver nor the full check has answered."""
        return self.driver is None and not self.raw and not self.error

    @property
    def known(self) -> bool:
        """Whether this machine has a CUDA GPU is known (from either source)."""
        return bool(self.raw) or (self.driver is not None and not self.driver.failed)

    @property
    def full(self) -> bool:
        return bool(self.raw)

    @property
    def cuda(self) -> bool:
        if self.raw:
            return bool(self.raw.get("cuda_available"))
        return self.driver is not None and self.driver.found

    @property
    def gpu_name(self) -> str | None:
        if self.raw.get("gpu_name"):
            return str(self.raw["gpu_name"])
        return self.driver.gpus[0].name if self.driver and self.driver.found else None

    @property
    def vram_total_gib(self) -> float | None:
        if not self.cuda:
            return None
        value = self.raw.get("vram_total_gib")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return self.driver.gpus[0].total_gib if self.driver and self.driver.found else None

    @property
    def vram_free_gib(self) -> float | None:
        value = self.raw.get("vram_free_gib")
        if self.cuda and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return self.driver.gpus[0].free_gib if self.cuda and self.driver and self.driver.found \
            else None

    @property
    def why_unknown(self) -> str:
        reasons = [self.driver.problem if self.driver and self.driver.failed else "",
                   self.error or ("checking…" if self.checking else "")]
        return "; ".join(r for r in reasons if r) or "no report"

    @property
    def summary(self) -> str:
        if self.pending:
            return "device: detecting…"
        if not self.known:
            return f"device: unknown ({self.why_unknown})"
        if self.cuda:
            total = self.vram_total_gib
            size = f", {total:.1f} GiB" if total is not None else ""
            more = len(self.driver.gpus) - 1 if self.driver and not self.raw else 0
            extra = f" (+{more} more)" if more > 0 else ""
            return f"GPU: {self.gpu_name or 'CUDA device'}{size}{extra}"
        if self.driver is not None and self.driver.found:  # the driver has one, torch does not
            return "CPU only: torch sees no CUDA device"
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
    try:  # in the background: leave the CPU to the UI (and to a run) first
        os.setpriority(os.PRIO_PROCESS, proc.pid, BACKGROUND_NICENESS)
    except OSError:
        pass
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        return DeviceInfo(error=f"`slothlab check --device` took over {timeout:g} s")
    finally:
        if proc.returncode is None:  # timed out, or the app closed: the check's children too
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
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
