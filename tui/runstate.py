"""What the TUI knows about one run, folded from its event stream.

``RunState.apply(event)`` is cheap and never touches the screen: the reader worker applies
every event as it arrives, and the Run screen redraws from the state a few times a second
(``version`` says whether anything changed). Everything here is bounded: the loss series are
downsampled (``tui.series``) and the log is a capped deque, so a run of any length holds a
fixed amount of memory.

The same class reopens a past run: ``RunState.from_run_dir(path)`` replays ``events.jsonl``.

A run stopped and resumed has several segments (one ``run_started`` each) in one events.jsonl.
Its clock is active time, the sum of the segments (not the pause between them): the header's
elapsed time, the log's ``+m:ss`` stamps and the Results' run time all read it. The memory
peak is the run's, over every segment; the phase shown while starting is the segment's own.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from recipes import events as ev
from recipes.host import slothlab_alive
from recipes.lock import LOCK_FILE, holder
from recipes.rundir import EVENTS_FILE, recipe_stages, resume_point
from tui import format as fmt
from tui.series import Series

LOG_CAP = 1000
STDERR_CAP = 40


@dataclass(frozen=True)
class LogLine:
    text: str
    style: str = ""


class RunState:
    def __init__(self, run_dir: Path | None = None, title: str = "") -> None:
        self.run_dir = run_dir
        self.title = title  # recipe name until run_started says otherwise
        self.started: ev.RunStarted | None = None
        self.segments = 0  # run_started events: 2 after one stop and resume
        self.preflight: ev.Preflight | None = None
        self.step: ev.Step | None = None
        self.peak_mb = 0.0  # the run's memory peak, over every segment
        self.total_steps = 0
        # Multi-stage pipelines (pretrain, finetune) restart their step count: one pair of
        # series per stage; ``train_loss``/``eval_loss`` are the current stage's.
        self.stage = ""
        self.series: dict[str, tuple[Series, Series]] = {"": (Series(), Series())}
        # Learning rate and grad norm per stage, for the Run screen's other plots.
        self.schedule: dict[str, tuple[Series, Series]] = {"": (Series(), Series())}
        # The latest greedy samples of each stage: stage -> (step, samples).
        self.stage_samples: dict[str, tuple[int, list[ev.Sample]]] = {}
        self.last_eval: ev.Eval | None = None
        self.samples: list[ev.Sample] = []
        self.samples_step: int | None = None
        self.checkpoint: ev.Checkpoint | None = None
        self.metrics: dict[str, dict[str, float]] = {}
        self.outcome: ev.Finished | ev.Stopped | ev.Failed | None = None
        self.exit_code: int | None = None
        self.stderr: deque[str] = deque(maxlen=STDERR_CAP)
        self.error: str = ""  # a refusal or crash that came without a `failed` event
        self.log: deque[LogLine] = deque(maxlen=LOG_CAP)
        self.log_total = 0  # lines ever logged; a view shows the ones it has not seen
        self.version = 0
        self.live = False  # a process of this app is producing the events
        self.stop_requested = False
        # For the ETA: the first step of the current segment (a resume starts a new one).
        self._segment_first: ev.Step | None = None
        self._segment_start: float | None = None
        self._past_seconds = 0.0  # active time of earlier segments
        self._last_time: float | None = None
        # What this segment has done so far, for the phase shown before its first step.
        self._segment_seen: set[str] = set()

    @property
    def train_loss(self) -> Series:
        return self.series[self.stage][0]

    @property
    def eval_loss(self) -> Series:
        return self.series[self.stage][1]

    @property
    def learning_rate(self) -> Series:
        return self.schedule[self.stage][0]

    @property
    def grad_norm(self) -> Series:
        return self.schedule[self.stage][1]

    @property
    def stages(self) -> list[str]:
        return [name for name, (train, _) in self.series.items() if name or len(train)]

    def _enter_stage(self, stage: str) -> None:
        if stage != self.stage:
            self.series.setdefault(stage, (Series(), Series()))
            self.schedule.setdefault(stage, (Series(), Series()))
            self.stage = stage

    # -- building ----------------------------------------------------------------------
    @classmethod
    def from_run_dir(cls, run_dir: Path) -> RunState:
        state = cls(run_dir=run_dir, title=run_dir.name)
        path = run_dir / EVENTS_FILE
        if path.is_file():
            for event in ev.read_events(path):
                state.apply(event)
        return state

    def note(self, text: str, style: str = "") -> None:
        self.log.append(LogLine(text, style))
        self.log_total += 1
        self.version += 1

    def clock(self, at: float) -> float | None:
        """Active run time at the time ``at`` of this segment (None outside a segment)."""
        if self._segment_start is None:
            return None
        return self._past_seconds + max(0.0, at - self._segment_start)

    def _stamp(self, event: ev.Event) -> str:
        at = self.clock(event.time)
        return f"+{fmt.duration(at)}" if at is not None else ""

    def apply(self, event: ev.Event) -> None:
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)
        self._last_time = event.time
        self.version += 1

    def _close_segment(self, end: float | None) -> None:
        if self._segment_start is not None and end is not None:
            self._past_seconds += max(0.0, end - self._segment_start)
        self._segment_start = None
        self._segment_first = None

    def _on_run_started(self, e: ev.RunStarted) -> None:
        self._close_segment(self._last_time)
        self.segments += 1
        self._segment_seen = {"run_started"}
        self.started = e
        self.title = e.recipe
        self.outcome = None
        self.error = ""
        self._segment_start = e.time
        if e.resumed_from_step:
            for series in (self.train_loss, self.eval_loss, self.learning_rate, self.grad_norm):
                series.truncate_after(e.resumed_from_step)
            self.note(f"{self._stamp(e)} resumed {e.recipe} from step {e.resumed_from_step}",
                      "bold")
        else:
            self.note(f"{self._stamp(e)} started {e.recipe}{' (tiny mode)' if e.tiny else ''}",
                      "bold")
        self.note(f"  run dir  {fmt.short_path(self.run_dir or e.run_dir)}")
        self.note(f"  backend  {e.backend}: {e.backend_reason}")
        self.note(f"  device   {e.device}")

    def _on_preflight(self, e: ev.Preflight) -> None:
        self._enter_stage(getattr(e, "stage", "") or "")
        self.preflight = e
        self._segment_seen.add("preflight")
        self.total_steps = e.total_steps
        splits = " · ".join(f"{k} {v}" for k, v in e.splits.items())
        self.note(f"{self._stamp(e)} preflight: {splits} examples; tokens min {e.tokens_min} · "
                  f"median {e.tokens_median:g} · max {e.tokens_max}; "
                  f"{e.trained_token_share:.0%} trained; {e.truncated} truncated; "
                  f"{e.total_steps} steps")
        for name, value in e.settings.items():
            self.note(f"  {name}: {value}")
        for change in e.changes:
            self.note(f"  changed: {change}", "yellow")
        for note in e.notes:
            self.note(f"  note: {note}", "yellow")

    def _on_step(self, e: ev.Step) -> None:
        self._enter_stage(getattr(e, "stage", "") or "")
        self.step = e
        if e.memory is not None:
            self.peak_mb = max(self.peak_mb, e.memory.peak_mb, e.memory.now_mb)
        self.total_steps = e.total_steps or self.total_steps
        if e.loss is not None:  # None: a NaN/Inf loss (the run stops there)
            self.train_loss.add(e.step, e.loss)
        self.learning_rate.add(e.step, e.learning_rate)
        if e.grad_norm is not None:
            self.grad_norm.add(e.step, e.grad_norm)
        if self._segment_first is None:
            self._segment_first = e
        grad = f" grad {e.grad_norm:.3g}" if e.grad_norm is not None else ""
        stage = f"{self.stage} " if self.stage else ""
        self.note(f"{self._stamp(e)} {stage}step {e.step}/{e.total_steps} loss {e.loss:.4f} "
                  f"lr {e.learning_rate:.1e}{grad} {e.tokens_per_second:,.0f} tok/s", "dim")

    def _on_eval(self, e: ev.Eval) -> None:
        self._enter_stage(getattr(e, "stage", "") or "")
        self.last_eval = e
        if e.loss is not None:
            self.eval_loss.add(e.step, e.loss)
        if e.samples:
            self.samples = list(e.samples)
            self.samples_step = e.step
            self.stage_samples[self.stage] = (e.step, list(e.samples))
        ppl = f" · perplexity {e.perplexity:.2f}" if e.perplexity is not None else ""
        loss = f"loss {e.loss:.4f}" if e.loss is not None else "no loss"
        stage = f"{self.stage} " if self.stage else ""
        self.note(f"{self._stamp(e)} {stage}eval @ step {e.step}: {loss}{ppl}", "cyan")

    def _on_checkpoint(self, e: ev.Checkpoint) -> None:
        self.checkpoint = e
        self.note(f"{self._stamp(e)} checkpoint @ step {e.step}: {fmt.short_path(e.path)}", "dim")

    def _on_metrics(self, e: ev.Metrics) -> None:
        self.metrics[e.stage] = dict(e.values)
        self._segment_seen.add(f"metrics:{e.stage}")
        values = " · ".join(f"{k} {v:.4g}" for k, v in e.values.items())
        self.note(f"{self._stamp(e)} metrics ({e.stage}): {values}", "cyan")

    def _on_oom(self, e: ev.Oom) -> None:
        if e.phase == "train":  # the steps after the checkpoint run again, with the new settings
            self.train_loss.truncate_after(e.resume_step)
            self.eval_loss.truncate_after(e.resume_step)
        phase = "training" if e.phase == "train" else "evaluation"
        self.note(f"{self._stamp(e)} out of memory at step {e.step} ({phase}): {e.message}",
                  "bold yellow")

    def _on_finished(self, e: ev.Finished) -> None:
        self.outcome = e
        stamp = self._stamp(e)
        self._close_segment(e.time)
        loss = f"{e.final_loss:.4f}" if e.final_loss is not None else "n/a"
        self.note(f"{stamp} finished: {e.step} steps, final loss {loss}", "bold green")
        self.note(f"  adapter  {fmt.short_path(e.adapter_dir)}")

    def _on_stopped(self, e: ev.Stopped) -> None:
        self.outcome = e
        stamp = self._stamp(e)
        self._close_segment(e.time)
        self.note(f"{stamp} stopped at step {e.step}; checkpoint "
                  f"{fmt.short_path(e.checkpoint) or 'none'}", "bold yellow")
        self.note(f"  resume: {e.resume_command}")

    def _on_failed(self, e: ev.Failed) -> None:
        self.outcome = e
        stamp = self._stamp(e)
        self._close_segment(e.time)
        self.note(f"{stamp} failed: {e.error}", "bold red")
        if e.advice:
            self.note(f"  → {e.advice}", "red")

    # -- the process around the events -------------------------------------------------
    def begin_live(self) -> None:
        """A process of this app is about to produce events (a new run, or a resume of this
        one: the earlier outcome no longer describes it)."""
        self.live = True
        self.outcome = None
        self.error = ""
        self.exit_code = None
        self.stop_requested = False
        self._segment_seen = set()  # a resume starts over: nothing of it has happened yet
        self.version += 1

    def add_stderr(self, line: str) -> None:
        self.stderr.append(line)
        self.note(line, "dim italic")

    def process_exited(self, code: int) -> None:
        """The producer exited; explain an exit that left no terminal event."""
        self.exit_code = code
        self.live = False
        self._close_segment(self._last_time)
        if self.outcome is None:
            lines = [s for s in self.stderr if s.strip()]
            errors = [s for s in lines if s.startswith("error:")]
            if errors:  # the CLI refused the input: "error: <where>: <what>\n  → <fix>"
                start = lines.index(errors[-1])
                self.error = "\n".join(lines[start:])[len("error:"):].strip()
            elif code == 130:
                self.error = "stopped before training started (no checkpoint)"
            elif code != 0:
                tail = "\n".join(lines[-8:]) or "no output"
                self.error = f"the run exited with code {code}:\n{tail}"
        self.note(f"process exited with code {code}", "dim")

    # -- what the screens ask ----------------------------------------------------------
    @property
    def status(self) -> str:
        """starting | running | stopping | finished | stopped | failed | interrupted."""
        if self.outcome is not None:
            return self.outcome.type
        if self.error:
            return "stopped" if self.exit_code == 130 else "failed"
        if self.live:
            if self.stop_requested:
                return "stopping"
            return "running" if self._segment_first is not None else "starting"
        if self.started is not None and self.run_dir is not None \
                and (self.run_dir / LOCK_FILE).exists():  # the run's lock says it, pid reuse aside
            return "running" if holder(self.run_dir) is not None else "interrupted"
        if self.started is not None and pid_alive(self.started.pid):
            return "running"
        return "interrupted"

    @property
    def phase(self) -> str:
        """What a starting segment is doing before its first step (a resumed run's earlier
        segments do not count: their preflight and base evaluation are not this one's)."""
        seen = self._segment_seen
        if "run_started" not in seen:
            return "starting the process…"
        if "preflight" not in seen:
            return "loading the data and the model…"
        if "metrics:base" in seen:
            return "base model evaluated; training starts…"
        return "preflight done; evaluating the base model and starting to train…"

    @property
    def terminal(self) -> bool:
        return self.status in ("finished", "stopped", "failed", "interrupted")

    @property
    def resume_from(self) -> str | None:
        """What a resume would continue from, in words ("checkpoint-120", "the pretrain stage
        afresh"); None when nothing can be resumed (finished, running, or no whole checkpoint)."""
        if self.status not in ("stopped", "failed", "interrupted") or self.run_dir is None:
            return None
        stages = recipe_stages(self.run_dir)
        point = resume_point(self.run_dir, stages)
        if point is None:
            return None
        stage, checkpoint = point
        if checkpoint is not None:
            return f"{stage + ' ' if stages else ''}{checkpoint.name}"
        # A staged run stopped between stages starts the next one afresh (the earlier are done).
        return f"the {stage} stage afresh" if stages and stages.index(stage) > 0 else None

    @property
    def resumable(self) -> bool:
        return self.resume_from is not None

    @property
    def current_step(self) -> int:
        """The latest step known: from step events, or a stop/finish/checkpoint that came later
        (steps are logged every ``logging_steps``, a stop can land in between)."""
        candidates = [self.step.step if self.step else 0,
                      self.started.resumed_from_step if self.started else 0]
        if self.outcome is not None and getattr(self.outcome, "step", None) is not None:
            candidates.append(self.outcome.step)  # type: ignore[union-attr]
        if self.checkpoint is not None and getattr(self.checkpoint, "stage", "") == self.stage:
            candidates.append(self.checkpoint.step)
        return max(candidates)

    def elapsed(self, now: float | None = None) -> float:
        running = 0.0
        if self._segment_start is not None:
            ongoing = self.live or (self.outcome is None and self.status == "running")
            end = (now or time.time()) if ongoing else (self._last_time or self._segment_start)
            running = max(0.0, end - self._segment_start)
        return self._past_seconds + running

    def steps_per_second(self) -> float | None:
        first, last = self._segment_first, self.step
        if first is None or last is None or last.step <= first.step or last.time <= first.time:
            return None
        return (last.step - first.step) / (last.time - first.time)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds to the last step: the remaining steps at this segment's rate, counted down
        since the latest step event (step events come every ``logging_steps``)."""
        rate = self.steps_per_second()
        if rate is None or not self.total_steps or self.terminal or self.step is None:
            return None
        since = max(0.0, (now or time.time()) - self.step.time)
        return max(0.0, max(0, self.total_steps - self.current_step) / rate - since)

    @property
    def steps_done(self) -> bool:
        """Every step trained, the run not over yet: the final evaluation and saving."""
        return bool(self.total_steps and self.current_step >= self.total_steps
                    and not self.terminal)

    @property
    def memory(self) -> ev.Memory | None:
        """The latest memory reading, with the run's peak (a resumed process starts at 0)."""
        if self.step is None or self.step.memory is None:
            return None
        memory = self.step.memory
        return dataclasses.replace(memory, peak_mb=max(memory.peak_mb, self.peak_mb))

    @property
    def error_text(self) -> tuple[str, str] | None:
        """(error, advice) when the run failed, from the event or the process."""
        if isinstance(self.outcome, ev.Failed):
            return self.outcome.error, self.outcome.advice
        if self.error and self.status == "failed":
            return self.error, ""
        return None


def pid_alive(pid: int) -> bool:
    """Whether a run's training process still runs (it wrote its pid in run_started)."""
    return slothlab_alive(pid)
