"""The driver query behind the instant device panel: NVML, nvidia-smi, or "no NVIDIA driver"."""

from __future__ import annotations

import os
import stat
import sys
import types
from pathlib import Path

import pytest

from tui.driver import NO_DRIVER, query_driver

GIB = 2**30


class _Error(Exception):
    pass


class _LibraryNotFound(_Error):
    pass


def fake_nvml(monkeypatch: pytest.MonkeyPatch, gpus: list[tuple[str, float, float]] | None,
              init_error: type[Exception] | None = None) -> None:
    """A ``pynvml`` module that answers like the real one (bytes or str, memory in bytes)."""
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = _Error
    nvml.NVMLError_LibraryNotFound = _LibraryNotFound

    def init() -> None:
        if init_error is not None:
            raise init_error("NVML Shared Library Not Found")

    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: None
    nvml.nvmlSystemGetDriverVersion = lambda: "550.54.14"
    nvml.nvmlSystemGetCudaDriverVersion_v2 = lambda: 12040
    nvml.nvmlDeviceGetCount = lambda: len(gpus or [])
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetName = lambda i: gpus[i][0].encode()
    nvml.nvmlDeviceGetMemoryInfo = lambda i: types.SimpleNamespace(
        total=int(gpus[i][1] * GIB), free=int(gpus[i][2] * GIB))
    nvml.nvmlDeviceGetCudaComputeCapability = lambda i: (8, 6)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)


def fake_smi(monkeypatch: pytest.MonkeyPatch, folder: Path, output: str | None) -> None:
    """An ``nvidia-smi`` on PATH printing ``output`` (None: no nvidia-smi at all)."""
    folder.mkdir(exist_ok=True)
    if output is not None:
        script = folder / "nvidia-smi"
        script.write_text(f"#!/bin/sh\nprintf '%s' '{output}'\n", encoding="utf-8")  # no cat
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(folder))


@pytest.fixture(autouse=True)
def _no_visible_devices_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_nvml_lists_the_gpus_with_memory_driver_and_cuda(monkeypatch) -> None:
    fake_nvml(monkeypatch, [("NVIDIA GeForce RTX 3060", 12.0, 11.25)])
    report = query_driver()
    assert report.found and report.source == "NVML" and not report.failed
    gpu = report.gpus[0]
    assert (gpu.name, gpu.total_gib, gpu.free_gib, gpu.compute_capability) == (
        "NVIDIA GeForce RTX 3060", 12.0, 11.25, "8.6")
    assert (report.driver_version, report.cuda_version) == ("550.54.14", "12.4")


def test_cuda_visible_devices_hides_gpus_as_torch_would(monkeypatch) -> None:
    fake_nvml(monkeypatch, [("A", 24.0, 20.0), ("B", 12.0, 11.0)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    report = query_driver()
    assert [g.name for g in report.gpus] == ["B"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    report = query_driver()
    assert not report.found and "hides 2 of 2" in report.problem


def test_without_the_nvml_library_nvidia_smi_answers(monkeypatch, tmp_path) -> None:
    fake_nvml(monkeypatch, None, init_error=_LibraryNotFound)
    fake_smi(monkeypatch, tmp_path / "bin", "NVIDIA GeForce RTX 4060, 8188, 7800, 560.35.03\n")
    report = query_driver()
    assert report.source == "nvidia-smi" and report.driver_version == "560.35.03"
    assert report.gpus[0].name == "NVIDIA GeForce RTX 4060"
    assert report.gpus[0].total_gib == round(8188 / 1024, 2)


def test_no_driver_is_said_at_once(monkeypatch, tmp_path) -> None:
    fake_nvml(monkeypatch, None, init_error=_LibraryNotFound)
    fake_smi(monkeypatch, tmp_path / "bin", None)
    report = query_driver()
    assert not report.found and not report.failed and report.problem == NO_DRIVER


def test_a_failing_nvidia_smi_is_a_failed_query_not_a_cpu(monkeypatch, tmp_path) -> None:
    fake_nvml(monkeypatch, None, init_error=_LibraryNotFound)
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text('#!/bin/sh\necho "NVIDIA-SMI has failed because it couldn\'t communicate '
                      'with the NVIDIA driver."\nexit 9\n', encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(folder))
    report = query_driver()
    assert report.failed and "couldn't communicate" in report.problem


@pytest.mark.skipif(not os.path.exists("/proc/driver/nvidia"), reason="no NVIDIA driver here")
def test_the_real_driver_answers() -> None:
    report = query_driver()
    assert report.found and report.driver_version
