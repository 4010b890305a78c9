"""TUI start-up time and responsiveness under a fast event stream.

    .venv/bin/python tests/benchmarks/bench_tui.py                 # both, 10 s of stream
    .venv/bin/python tests/benchmarks/bench_tui.py --seconds 30 --rate 100
    .venv/bin/python tests/benchmarks/bench_tui.py --only startup

startup        `python -m tui.app` in a pseudo-terminal (120x40); the time from spawning it to
               the first frame that shows the recipe list (what a person sees), and to the
               device panel filled from the driver, median of 5, twice: with no NVIDIA driver
               (this machine) and with one (a fake ``pynvml`` first on PYTHONPATH answering as
               NVML does for an RTX 3060; the full check still runs in the background).
responsiveness the app (in this process, headless driver) watches a fake `slothlab` that emits
               ``--rate`` step events a second (tests/tui/fake_slothlab.py, evals every 50
               steps). Every 0.25 s a key switches the Run screen's bottom tab (Log <-> Samples);
               the latency is from the key to the end of the compositor repaint that shows the
               new tab (a hook on App._display). Memory is this process's RSS, sampled every
               second; redraws are compositor updates per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- start-up --------------------------------------------------------------------------------
FAKE_PYNVML = """
import time
class NVMLError(Exception): pass
class NVMLError_LibraryNotFound(NVMLError): pass
class _Memory:
    total, free = 12 * 2**30, 11 * 2**30
def nvmlInit(): time.sleep(0.02)  # a real nvmlInit takes tens of milliseconds
def nvmlShutdown(): pass
def nvmlSystemGetDriverVersion(): return "550.54.14"
def nvmlSystemGetCudaDriverVersion_v2(): return 12040
def nvmlDeviceGetCount(): return 1
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetName(h): return b"NVIDIA GeForce RTX 3060"
def nvmlDeviceGetMemoryInfo(h): return _Memory()
def nvmlDeviceGetCudaComputeCapability(h): return (8, 6)
"""
PANEL_FILLED = {False: b"no NVIDIA driver", True: b"RTX 3060"}


def first_paint_seconds(runs_dir: Path, fake_driver: Path | None = None) -> tuple[float, float]:
    """(seconds to the recipe list, seconds to the device panel filled from the driver)."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the app, at 120x40
        os.environ.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        if fake_driver is not None:
            os.environ["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(fake_driver), os.environ.get("PYTHONPATH")]))
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "tui.app", "--runs-dir", str(runs_dir)])
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    start = time.perf_counter()
    seen = b""
    paint = panel = float("nan")
    marker = PANEL_FILLED[fake_driver is not None]
    try:
        while time.perf_counter() - start < 30:
            ready, _, _ = select.select([fd], [], [], 0.02)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            seen += chunk
            now = time.perf_counter() - start
            if paint != paint and b"Recipes" in seen and b"demo" in seen and b"TinyLlama" in seen:
                paint = now
            if panel != panel and marker in seen:
                panel = now
            if paint == paint and panel == panel:
                break
    finally:
        os.write(fd, b"\x11")  # ctrl+q (the background check is killed with the app)
        deadline = time.time() + 5
        while time.time() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            try:
                os.read(fd, 65536)
            except OSError:
                pass
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    return paint, panel


def _ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:6.0f} ms  (min {min(values) * 1000:.0f}, "
            f"max {max(values) * 1000:.0f}, {len(values)} runs)")


def bench_startup(reps: int) -> None:
    code = "import time; t = time.perf_counter(); import tui.app; print(time.perf_counter() - t)"
    imports = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    cwd=ROOT, check=True).stdout) for _ in range(reps)]
    print(f"{'import tui.app':33s} {_ms(imports)}")
    with tempfile.TemporaryDirectory() as tmp:
        fake = Path(tmp) / "fake_nvml"
        fake.mkdir()
        (fake / "pynvml.py").write_text(FAKE_PYNVML, encoding="utf-8")
        for label, driver in (("no NVIDIA driver", None), ("driver (fake NVML)", fake)):
            runs = [first_paint_seconds(Path(tmp) / "runs", driver) for _ in range(reps)]
            print(f"{label:19s} first paint   {_ms([p for p, _ in runs])}")
            print(f"{label:19s} device panel  {_ms([d for _, d in runs])}")
            print(f"{label:19s} panel - paint {_ms([d - p for p, d in runs])}")


# -- responsiveness --------------------------------------------------------------------------
async def responsiveness(seconds: float, rate: int) -> None:
    from textual import events
    from textual.widgets import TabbedContent

    from tests.tui.conftest import CPU_ONLY, FAKE_SLOTHLAB, device_probe, fake_fit
    from tui.app import SlothlabApp

    os.environ.update(FAKE_RATE=str(rate), FAKE_STEPS=str(int(rate * (seconds + 30))),
                      FAKE_EVAL_EVERY="50")
    tmp = tempfile.mkdtemp(prefix="bench-tui-")
    app = SlothlabApp(runs_dir=Path(tmp) / "runs", saved_dir=Path(tmp) / "saved",
                      slothlab=FAKE_SLOTHLAB, device_probe=device_probe(CPU_ONLY),
                      fit_estimator=fake_fit, stop_grace=5)
    repaints: list[float] = []
    original = app._display

    def display(screen, renderable) -> None:
        original(screen, renderable)
        if renderable is not None:
            repaints.append(time.perf_counter())

    app._display = display  # type: ignore[method-assign]
    latencies: list[float] = []
    memory: list[tuple[float, float]] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s")
        state = None
        while state is None or state.current_step < 5:
            await asyncio.sleep(0.05)
            state = app.live_state
        tabs = app.screen.query_one(TabbedContent)
        quiet_frames = len(repaints)
        await asyncio.sleep(3.0)  # the stream alone, no keys: the throttled redraw rate
        quiet_rate = (len(repaints) - quiet_frames) / 3.0
        start, cpu_start = time.perf_counter(), time.process_time()
        steps_start, frames_start = state.current_step, len(repaints)
        next_sample = start
        key = "e"
        while time.perf_counter() - start < seconds:
            now = time.perf_counter()
            if now >= next_sample:
                memory.append((now - start, rss_mb()))
                next_sample += 1.0
            want = "samples" if key == "e" else "log"
            sent = time.perf_counter()
            # As the terminal driver does (Pilot.press would also wait for idle + animations).
            app._driver.send_message(events.Key(key, key))
            while tabs.active != want:
                await asyncio.sleep(0.001)
            seen = len(repaints)
            while len(repaints) == seen or repaints[-1] < sent:
                await asyncio.sleep(0.001)
            # the first repaint after the tab changed is the one that shows it
            latencies.append(repaints[-1] - sent)
            key = "l" if key == "e" else "e"
            await asyncio.sleep(0.25)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        events = state.current_step - steps_start
        frames = len(repaints) - frames_start
        log_lines, points = len(state.log), len(state.train_loss)
        app.live.request_stop()
        while state.live:
            await asyncio.sleep(0.05)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print(f"stream              {events / wall:6.1f} step events/s received for {wall:.1f} s")
    print(f"keypress->repaint   median {p(0.5):.1f} ms, p95 {p(0.95):.1f} ms, max {p(1.0):.1f} ms "
          f"({len(latencies)} keys)")
    print(f"repaints            {quiet_rate:.1f} /s with the stream alone (redraw timer 0.2 s, plot "
          f"0.5 s); {frames / wall:.1f} /s while switching tabs (the tab underline animates)")
    print(f"app CPU             {cpu / wall:.0%} of one core (reader + redraws)")
    first, last = memory[1] if len(memory) > 1 else memory[0], memory[-1]
    print(f"memory (RSS)        {first[1]:.1f} MB at {first[0]:.0f} s -> {last[1]:.1f} MB at "
          f"{last[0]:.0f} s ({last[1] - first[1]:+.1f} MB); log {log_lines} lines (cap), "
          f"plot {points} points (cap 400)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", choices=("startup", "responsiveness"))
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    if args.only != "responsiveness":
        bench_startup(args.reps)
    if args.only != "startup":
        asyncio.run(responsiveness(args.seconds, args.rate))


if __name__ == "__main__":
    main()
