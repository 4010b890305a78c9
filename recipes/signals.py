"""Stop signals: the first Ctrl-C, SIGTERM or SIGHUP ends the run cleanly, a second one at once.

    stop = StopFlag()
    restore = stop.install()         # SIGINT, SIGTERM, and SIGHUP unless nohup ignores it
    ... the trainer checks stop.requested at the end of every step ...
    restore()

SIGTERM is what `timeout`, `docker stop`, systemd and Slurm preemption send; SIGHUP is what a
closed terminal or a dropped SSH session sends (a run started by the TUI is in a session of its
own and never gets it; under `nohup` it stays ignored, as the user asked). Each asks
for the same clean stop as Ctrl-C: the current step ends, a checkpoint is saved, the run is
marked stopped, and the process exits with 128 + the signal number.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any


class StopFlag:
    """Set by the first stop signal; the trainer checks it at the end of each step."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = "SIGINT"
        self.phase = "this training step"  # what finishes before the run stops (stages set it)

    def install(self) -> Callable[[], None]:
        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.requested:  # a second signal means now
                raise KeyboardInterrupt
            self.requested, self.signal_name = True, name
            print(f"slothlab: {name} received: stopping after {self.phase} (a checkpoint is "
                  f"saved); send it again to stop at once", file=sys.stderr, flush=True)

        wanted = [signal.SIGINT, signal.SIGTERM]
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # nohup: leave it ignored
            wanted.append(signal.SIGHUP)
        previous = {sig: signal.signal(sig, handler) for sig in wanted}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    @property
    def exit_code(self) -> int:
        return 128 + int(getattr(signal, self.signal_name))
