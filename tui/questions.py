"""The app's questions before it does something that costs (start on a CPU, stop, quit), worded
from what is true now: a stop never promises a checkpoint that cannot be written."""

from __future__ import annotations

from tui.runstate import RunState
from tui.screens.confirm import ConfirmScreen

LEAVE_RUNNING = ("Leave it running: it keeps training after this window closes (as it would "
                 "after a closed terminal); follow or stop it from History (3) later, or with "
                 "slothlab --resume once it stopped.")


def what_stop_saves(state: RunState) -> str:
    """What a stop now leaves behind."""
    if state.step is not None:
        return ("it finishes the current step, saves a checkpoint and stops; resume it later "
                "(r, or from History).")
    if state.started is not None and state.started.resumed_from_step:
        return (f"no new step yet, so nothing new is saved; its checkpoint of step "
                f"{state.started.resumed_from_step} stays for the next resume.")
    return "no training step has run yet, so nothing will be saved; start it again later."


def stop_question(state: RunState) -> ConfirmScreen:
    saves = what_stop_saves(state)
    return ConfirmScreen("Stop the run?", saves[0].upper() + saves[1:], yes="Stop")


def quit_question(state: RunState) -> ConfirmScreen:
    """True: stop (and quit), OTHER: leave it running and quit, False: cancel."""
    return ConfirmScreen("A run is in progress. Quit?",
                         f"Stop: {what_stop_saves(state)}\n{LEAVE_RUNNING}", yes="Stop and quit",
                         no="Cancel", other="Leave it running", other_key="l")


def discard_question(unsaved: list[str]) -> ConfirmScreen:
    shown = ", ".join(unsaved[:6]) + (f" and {len(unsaved) - 6} more" if len(unsaved) > 6
                                      else "")
    return ConfirmScreen("Quit and discard your changes?",
                         f"Changed: {shown}. ctrl+s saves them as a new recipe.",
                         yes="Discard and quit", no="Keep editing")


def cpu_start_question(pending: bool, tiny_offered: bool) -> ConfirmScreen:
    """A full recipe without a CUDA GPU (or before the driver has said): start anyway, or
    (OTHER) tiny mode instead."""
    question = ("No CUDA GPU here: a full recipe trains on the CPU (hours, and needs the "
                "model from the hub). Start anyway?")
    if pending:
        question = ("The GPU check is still running. Without a CUDA GPU a full recipe trains "
                    "on the CPU (hours, and needs the model from the hub). Start anyway?")
    if not tiny_offered:
        return ConfirmScreen(question, "Tiny mode is not offered: this recipe's tiny_overrides "
                             "do not load (slothlab --tiny refuses it).", yes="Start anyway",
                             no="Cancel")
    return ConfirmScreen(question, "Tiny mode runs the same pipeline on a random miniature and "
                         "the sample data: a minute or two on a CPU, offline.",
                         yes="Start anyway", no="Cancel", other="Tiny mode instead")
