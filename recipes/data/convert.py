"""Rows to ``Example``s, layout by layout, with every skipped row counted by reason.

    from recipes.data.convert import normalise
    examples, skipped = normalise(rows, recipe, "data.jsonl")   # detects the layout itself

Pairs (alpaca, qa, prompt_completion) become a user turn (instruction, then input after a blank
line) and an assistant turn, after the row's ``system`` and ``history`` turns; a prompt or
completion given as a list of messages is used as it is (the prompt's own assistant turns are
shown, not trained, as in TRL). Chat turns are read by ``recipes.data.turns``. Plain text
becomes one document per row. A row that cannot be read at all (an unknown role, a cell of the
wrong type) is an error naming its file, row and column; a row with nothing to learn from (an
empty answer, a turn with no text) is skipped and counted, with its row named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from recipes.data.checks import name_rows
from recipes.data.layouts import PAIRS, Reading, column_for, detect_layout
from recipes.data.readers import Table
from recipes.data.sources import clean_text
from recipes.data.turns import NonText, TurnError, read_turns, tools_list
from recipes.data.types import Example
from recipes.errors import DataError
from recipes.schema import Recipe

SHOWN_ROWS = 5


class Skips:
    """Rows skipped by reason, with the first few named; ``bad`` ones count toward
    ``max_dropped_fraction`` (rows the user did not ask to drop)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.counts: dict[str, int] = {}
        self.rows: dict[str, list[int]] = {}
        self.bad = 0
        self.first_bad: tuple[int, str, str] | None = None  # index, column, reason
        self.bad_rows: list[int] = []  # the first few, 0-based

    def __call__(self, reason: str, index: int = -1, column: str = "", bad: bool = True) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if index >= 0 and len(self.rows.setdefault(reason, [])) < SHOWN_ROWS:
            self.rows[reason].append(index)
        if bad:
            self.bad += 1
            if index >= 0 and len(self.bad_rows) <= SHOWN_ROWS:
                self.bad_rows.append(index)
            if self.first_bad is None and index >= 0:
                self.first_bad = (index, column, reason)

    def named(self) -> dict[str, int]:
        """Reasons with the rows they name: {"empty answer in 'output' (line 4, line 9)": 2}."""
        out = {}
        for reason, n in self.counts.items():
            shown = self.rows.get(reason, [])
            rows = name_rows([i + 1 for i in shown], self.locate, total=n)
            out[f"{reason} ({rows})" if shown else reason] = n
        return out

    def locate(self, row: int) -> tuple[str, str]:
        return self.table.locate(row - 1)


def normalise(rows: list[dict], recipe: Recipe, source: str, *, table: Table | None = None,
              reading: Reading | None = None) -> tuple[list[Example], dict[str, int]]:
    """Every row as an Example, cleaned. Returns the examples and rows skipped, by reason."""
    examples, skips, _ = convert(table or Table(rows, source), recipe, reading)
    return examples, skips.named()


def convert(table: Table, recipe: Recipe, reading: Reading | None = None, *,
            consume: bool = False) -> tuple[list[Example], Skips, Reading]:
    """Detect the layout (unless given) and convert every row; ``consume`` empties
    ``table.rows`` as it goes, so the raw rows and the examples are never all in memory."""
    reading = reading or detect_layout(table, recipe)
    skips = Skips(table)
    rows = _each(table, consume)
    if reading.layout in PAIRS:
        examples = _from_pairs(rows, table, recipe, reading, skips)
    elif reading.layout == "text":
        examples = _from_text(rows, table, recipe, reading, skips)
    else:
        examples = _from_turns(rows, table, recipe, reading, skips)
    if consume:
        table.rows = []
    return _clean(examples, skips, recipe), skips, reading


def _each(table: Table, consume: bool) -> Iterator[tuple[int, dict]]:
    rows = table.rows
    for i in range(len(rows)):
        row = rows[i]
        if consume:
            rows[i] = None  # type: ignore[call-overload]
        yield i, row


def _error(table: Table, index: int, column: str, what: str, fix: str) -> DataError:
    file, where = table.locate(index)
    return DataError(f"{where}, column '{column}': {what}", where=file, fix=fix)


def _group(row: dict, recipe: Recipe, table: Table, index: int) -> str:
    if not recipe.split_by:
        return ""
    if recipe.split_by not in row:
        names = ", ".join(repr(k) for k in row)
        raise _error(table, index, recipe.split_by, "split_by names a column this row lacks",
                     f"set split_by to one of {names}, or leave it empty (rows that share the "
                     "prompt's source text stay together)")
    return clean_text(row[recipe.split_by]).casefold()


def _meta(row: dict, recipe: Recipe) -> dict[str, str]:
    return {key: clean_text(row[col]) for key in ("task", "lang")
            if (col := column_for(recipe, key)) in row and clean_text(row[col])}


def _cell(row: dict, column: str | None, table: Table, index: int) -> str:
    if column is None:
        return ""
    value = row.get(column)
    if isinstance(value, (list, dict)):
        raise _error(table, index, column, f"holds a {type(value).__name__}, not text",
                     "give it text, or map another column with --set columns=...")
    return clean_text(value)


def _from_pairs(rows: Iterable[tuple[int, dict]], table: Table, recipe: Recipe, reading: Reading, skips: Skips) -> list[Example]:
    roles = reading.roles
    prompt_col, answer_col = roles["instruction"], roles["response"]
    examples: list[Example] = []
    for i, row in rows:
        if prompt_col not in row or answer_col not in row:
            missing = answer_col if prompt_col in row else prompt_col
            raise _error(table, i, missing, "missing (this row does not have the column the "
                         f"file's layout, {reading.layout}, reads)",
                         "add it to the row, or delete the row; one file holds one layout")
        prompt, answer = row[prompt_col], row[answer_col]
        if isinstance(prompt, list) or isinstance(answer, list):
            example = _conversational_pair(table, i, row, roles, recipe, skips)
            if example is not None:
                examples.append(example)
            continue
        instruction = _cell(row, prompt_col, table, i)
        extra = _cell(row, roles.get("input"), table, i)
        response = _cell(row, answer_col, table, i)
        if not response:
            skips("empty answer", i, answer_col)
            continue
        if not instruction:
            skips("empty prompt", i, prompt_col)
            continue
        messages = _history(row, roles.get("history"), table, i)
        messages += [{"role": "user", "content": f"{instruction}\n\n{extra}" if extra
                      else instruction}, {"role": "assistant", "content": response}]
        system = _cell(row, roles.get("system"), table, i) or recipe.system_prompt
        if system:
            messages.insert(0, {"role": "system", "content": system})
        examples.append(Example(i + 1, messages, {"instruction": instruction, "input": extra,
                                                  "response": response}, _meta(row, recipe),
                                _group(row, recipe, table, i)))
    return examples


def _history(row: dict, column: str | None, table: Table, index: int) -> list[dict[str, Any]]:
    """Alpaca's ``history``: earlier [instruction, answer] pairs, as turns before the prompt."""
    value = row.get(column) if column else None
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, list) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        raise _error(table, index, column or "history", "history is not a list of "
                     "[instruction, answer] pairs", 'write it as [["earlier question", '
                     '"earlier answer"], ...] or leave it empty')
    turns: list[dict[str, Any]] = []
    for question, answer in value:
        turns += [{"role": "user", "content": clean_text(question)},
                  {"role": "assistant", "content": clean_text(answer)}]
    return turns


def _conversational_pair(table: Table, i: int, row: dict, roles: dict[str, str],
                         recipe: Recipe, skips: Skips) -> Example | None:
    """TRL's conversational prompt/completion: lists of messages (a string side is one turn)."""
    sides = []
    for role, speaker in (("instruction", "user"), ("response", "assistant")):
        column = roles[role]
        value = row[column]
        if isinstance(value, list):
            try:
                turns = read_turns(value)
            except TurnError as exc:
                raise _error(table, i, column, f"turn {exc.turn}: {exc.what}", exc.fix) from None
            except NonText as exc:
                skips(f"non-text content ({exc.kind})", i, column)
                return None
        else:
            turns = [{"role": speaker, "content": _cell(row, column, table, i)}]
        sides.append(turns)
    prompt, completion = sides
    for message in prompt:
        if message["role"] == "assistant":
            message["weight"] = 0  # the prompt is context: only the completion is trained
    if not any(m["role"] == "assistant" and (m["content"] or m.get("tool_calls"))
               for m in completion):
        skips("empty answer", i, roles["response"])
        return None
    messages = prompt + completion
    system = _cell(row, roles.get("system"), table, i) or recipe.system_prompt
    if system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return _checked(Example(i + 1, messages, None, _meta(row, recipe),
                            _group(row, recipe, table, i)), skips, i, roles["response"])


def _checked(example: Example, skips: Skips, i: int, column: str) -> Example | None:
    """None (skipped) when a turn has no text, or no assistant turn is trained."""
    messages = example.messages
    if not any(m["role"] == "assistant" and m.get("weight", 1) != 0 and
               (m["content"] or m.get("tool_calls")) for m in messages):
        skips("no assistant turn with text", i, column)
        return None
    if any(not m["content"] and not m.get("tool_calls") and m["role"] != "tool"
           for m in messages):
        skips("a turn with empty text", i, column)
        return None
    return example


def _from_turns(rows: Iterable[tuple[int, dict]], table: Table, recipe: Recipe, reading: Reading, skips: Skips) -> list[Example]:
    column = reading.roles.get("messages") or reading.roles["conversations"]
    tools_col, system_col = reading.roles.get("tools"), reading.roles.get("system")
    examples: list[Example] = []
    for i, row in rows:
        if column not in row:
            raise _error(table, i, column, "missing (the file's other rows hold "
                         f"{reading.layout} turns in it)", f"give every row a '{column}' list, "
                         "or delete the row; one file holds one layout")
        turns = row[column]
        if isinstance(turns, str):
            import json

            try:
                turns = json.loads(turns)  # CSV and Excel hold turns as JSON text
            except json.JSONDecodeError:
                pass
        if not isinstance(turns, list):
            raise _error(table, i, column, f"holds {type(turns).__name__}, not a list of turns",
                         f"each row's '{column}' must be a list of {{role, content}} (or "
                         "{from, value}) objects")
        try:
            messages = read_turns(turns)
        except TurnError as exc:
            raise _error(table, i, column, f"turn {exc.turn}: {exc.what}", exc.fix) from None
        except NonText as exc:
            skips(f"non-text content ({exc.kind})", i, column)
            continue
        system = _cell(row, system_col, table, i) or recipe.system_prompt
        if system and (not messages or messages[0]["role"] != "system"):
            messages.insert(0, {"role": "system", "content": system})
        if tools_col and messages:
            try:
                tools = tools_list(row.get(tools_col))
            except ValueError as exc:
                raise _error(table, i, tools_col, f"cannot read the tools ({exc})",
                             "give a JSON list of function schemas {name, description, "
                             "parameters}") from None
            if tools:
                messages[0]["tools"] = tools
        example = _checked(Example(i + 1, messages, None, _meta(row, recipe),
                                   _group(row, recipe, table, i)), skips, i, column)
        if example is not None:
            examples.append(example)
    return examples


def _from_text(rows: Iterable[tuple[int, dict]], table: Table, recipe: Recipe, reading: Reading, skips: Skips) -> list[Example]:
    column = reading.roles["text"]
    examples = []
    for i, row in rows:
        text = _cell(row, column, table, i) if column in row else ""
        if not text:
            skips("empty text", i, column)
            continue
        examples.append(Example(i + 1, [], None, _meta(row, recipe),
                                _group(row, recipe, table, i), text=text))
    return examples


def _clean(examples: list[Example], skips: Callable[..., None],
           recipe: Recipe) -> list[Example]:
    """The recipe's cleaning rules: over-long rows, then exact duplicates (counted per rule)."""
    if not recipe.max_chars and not recipe.drop_duplicates:
        return examples
    kept: list[Example] = []
    seen: set[tuple] = set()
    for ex in examples:
        contents = [ex.text] if ex.text is not None else [m["content"] for m in ex.messages]
        if recipe.max_chars and any(len(c) > recipe.max_chars for c in contents):
            skips(f"longer than max_chars={recipe.max_chars}", ex.row - 1, bad=False)
            continue
        if recipe.drop_duplicates:
            key = (ex.text,) if ex.text is not None else tuple(
                (m["role"], m["content"].casefold()) for m in ex.messages)
            if key in seen:
                skips("duplicate", ex.row - 1, bad=False)
                continue
            seen.add(key)
        kept.append(ex)
    return kept
