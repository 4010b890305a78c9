"""What the NVIDIA driver says about this machine's GPUs, in a fraction of a second.

    from tui.driver import query_driver
    query_driver()   # DriverReport(gpus=(Gpu("NVIDIA GeForce RTX 3060", 12.0, 11.2, "8.6"),), ...)

NVML (``pynvml`` from the ``nvidia-ml-py`` package) answers first; ``nvidia-smi`` is asked when
NVML is not installed or cannot load its library; with neither the answer is "no NVIDIA
driver", at once. No torch is imported: the TUI's device panel fills from this while the full
check (``slothlab check --device``: torch, CUDA build, bf16, unsloth) runs in the background.

``CUDA_VISIBLE_DEVICES`` is honoured as torch honours it for plain indices ("0,2"; "" or "-1"
hide every GPU); UUID and MIG forms are left to the full check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

GIB = 2**30
SMI_TIMEOUT_SECONDS = 2.0
NO_DRIVER = "no NVIDIA driver"


@dataclass(frozen=True)
class Gpu:
    name: str
    total_gib: float
    free_gib: float | None = None
    compute_capability: str | None = None


@dataclass(frozen=True)
class DriverReport:
    gpus: tuple[Gpu, ...] = ()
    driver_version: str | None = None
    cuda_version: str | None = None  # the newest CUDA the driver supports
    source: str = ""  # "NVML" | "nvidia-smi" | "" (nothing answered)
    problem: str = ""  # why no GPU is listed, when none is
    failed: bool = False  # the query itself failed: whether there is a GPU is not known

    @property
    def found(self) -> bool:
        return bool(self.gpus)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _visible(count: int) -> list[int] | None:
    """The device indices CUDA programs will see; None when CUDA_VISIBLE_DEVICES uses names
    this module does not resolve (UUIDs, MIG): then every GPU is listed."""
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return list(range(count))
    shown: list[int] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part.lstrip("-").isdigit():
            return None if part else shown
        index = int(part)
        if index < 0 or index >= count:
            break  # CUDA stops at the first invalid index
        shown.append(index)
    return shown


def _hidden_note(total: int, shown: int) -> str:
    return (f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r} hides "
            f"{total - shown} of {total} GPU(s)") if shown < total else ""


def _from_nvml() -> DriverReport | None:
    """None when NVML is not installed or its library is missing (then nvidia-smi is asked)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return None
    except pynvml.NVMLError as exc:  # driver not loaded, no permission...
        return DriverReport(source="NVML", problem=f"NVIDIA driver: {exc}", failed=True)
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        count = pynvml.nvmlDeviceGetCount()
        visible = _visible(count)
        gpus = []
        for index in visible if visible is not None else range(count):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
                capability: str | None = f"{major}.{minor}"
            except pynvml.NVMLError:
                capability = None
            gpus.append(Gpu(_text(pynvml.nvmlDeviceGetName(handle)),
                            round(memory.total / GIB, 2), round(memory.free / GIB, 2),
                            capability))
    except pynvml.NVMLError as exc:
        return DriverReport(source="NVML", problem=f"NVML: {exc}", failed=True)
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
    problem = _hidden_note(count, len(gpus)) or ("" if gpus else "the driver lists no GPU")
    return DriverReport(tuple(gpus), driver, f"{cuda // 1000}.{cuda % 1000 // 10}", "NVML",
                        problem)


def _from_nvidia_smi(timeout: float = SMI_TIMEOUT_SECONDS) -> DriverReport:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return DriverReport(problem=NO_DRIVER)  # neither the NVML library nor nvidia-smi
    query = "name,memory.total,memory.free,driver_version"
    try:
        proc = subprocess.run([smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return DriverReport(source="nvidia-smi", problem=f"nvidia-smi: {exc}", failed=True)
    if proc.returncode != 0:
        reason = (proc.stdout.strip() or proc.stderr.strip() or f"exit code {proc.returncode}")
        return DriverReport(source="nvidia-smi", problem=f"nvidia-smi: {reason.splitlines()[0]}",
                            failed=True)
    rows = [[c.strip() for c in line.split(",")] for line in proc.stdout.splitlines()
            if line.strip()]
    visible = _visible(len(rows))
    gpus, driver = [], None
    for index in visible if visible is not None else range(len(rows)):
        row = rows[index]
        if len(row) < 4:
            continue
        try:
            total, free = float(row[1]) / 1024, float(row[2]) / 1024  # MiB
        except ValueError:
            continue
        gpus.append(Gpu(row[0], round(total, 2), round(free, 2)))
        driver = row[3]
    problem = _hidden_note(len(rows), len(gpus)) or ("" if gpus else "nvidia-smi lists no GPU")
    return DriverReport(tuple(gpus), driver, None, "nvidia-smi", problem)


def query_driver() -> DriverReport:
    """The driver's answer: NVML, else nvidia-smi, else "no NVIDIA driver". Never raises."""
    try:
        return _from_nvml() or _from_nvidia_smi()
    except Exception as exc:  # noqa: BLE001 - a panel line, not a crash
        return DriverReport(problem=f"driver query failed: {type(exc).__name__}: {exc}",
                            failed=True)
