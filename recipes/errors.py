"""The one error type a person sees: what was wrong, where, and what to do.

Everything slothlab refuses (a bad recipe value, a missing data file, a run directory that is
not a run) raises ``SlothlabError``. The CLI prints it without a traceback (``--debug`` shows
one) and exits non-zero; the training process also writes it as a ``failed`` event so the TUI
can show the same words.
"""

from __future__ import annotations

from recipes.safe_text import safe_text


class SlothlabError(Exception):
    """A problem the user can fix. ``where`` names the file/field/row, ``fix`` says what to do."""

    exit_code = 2

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        """The message as printed; a data cell quoted in it shows its control characters as
        escapes (``recipes.safe_text``)."""
        what = safe_text(self.what)
        head = f"{safe_text(self.where)}: {what}" if self.where else what
        return f"{head}\n  → {safe_text(self.fix)}" if self.fix else head


class RecipeError(SlothlabError):
    """The recipe (YAML or --set) is invalid: nothing has started."""


class DataError(SlothlabError):
    """The dataset cannot be read or does not fit the declared format."""


class RunDirError(SlothlabError):
    """A run directory is missing, incomplete or not a slothlab run."""


class BackendError(SlothlabError):
    """The requested backend cannot run on this machine."""


class ExportError(SlothlabError):
    """A run cannot be exported as asked (slothlab export); nothing was written."""
