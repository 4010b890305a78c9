r"""Model and dataset text made safe to show: control characters become visible escapes.

    safe_text(output)                    # "\x1b[31m" shows as the 8 characters \x1b[31m
    safe_text(cell, multiline=False)     # for one line: newlines and tabs escaped too

A greedy answer or a data cell can hold ESC, BEL, backspace, C1 controls (U+0080-U+009F) and
whole ANSI sequences. Written raw to a terminal they recolour it, move the cursor or retitle
the window; in report.md they are invisible bytes. Every front end (TUI widgets, the headless
renderer, ``--list``, error messages, report tables) passes such text through ``safe_text``
first, so each control character is shown as ``\x1b``, ``\r``, ``\x9b``... and never emitted.

Newlines and tabs are text in a multi-line view (an answer, a log) and controls on one line (a
table cell, a title): ``multiline=False`` escapes them too. Only the C0 and C1 control
characters, DEL, the bidirectional embedding / override / isolate controls (U+202A-U+202E,
U+2066-U+2069, which reorder what a terminal shows: "Trojan Source") and lone surrogates (which
no terminal encoding can write) are changed; every other character, zero-width joiners and
right-to-left marks included (Arabic and Indic text need them), is left as it is.

Standard library only: the CLI imports it before anything heavy.
"""

from __future__ import annotations

import re

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
# str.translate tables: one for one-line contexts (everything escaped), one keeping \n and \t.
_ONE_LINE = {c: _NAMED.get(chr(c), f"\\x{c:02x}") for c in _CONTROLS}
_ONE_LINE.update({c: f"\\u{c:04x}" for c in _BIDI})
_MULTILINE = {c: v for c, v in _ONE_LINE.items() if chr(c) not in "\n\t"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_text(text: object, *, multiline: bool = True) -> str:
    r"""``text`` (any object: ``str()`` of it) with every control character shown as an escape.

    ``multiline``: keep line breaks and tabs (a CRLF line end becomes ``\n``; a lone CR, which
    would overwrite the line, is escaped); otherwise ``\n`` and ``\t`` are escaped too."""
    text = text if isinstance(text, str) else str(text)
    if text.isprintable():  # the common case: nothing to do (isprintable is False for \n too)
        return text
    if multiline:
        text = text.replace("\r\n", "\n")
        text = text.translate(_MULTILINE)
    else:
        text = text.translate(_ONE_LINE)
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text
