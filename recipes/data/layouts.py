"""Dataset layouts: which one a file holds, read from its column names through a small table.

    from recipes.data.layouts import detect_layout
    reading = detect_layout(table, recipe)     # Reading(layout="alpaca", roles={...})

| layout              | a row holds (column names, any case)                                 |
|---------------------|----------------------------------------------------------------------|
| `messages`          | `messages`: [{role, content}, ...] (OpenAI / TRL)                    |
| `sharegpt`          | `conversations`: [{from, value}, ...]; optional `system`, `tools`    |
| `prompt_completion` | `prompt` and `completion`: strings or lists of messages (TRL)        |
| `alpaca`            | `instruction`, optional `input`, the answer in `output` / `response` |
|                     | / `answer` / `completion` / `target`; optional `system`, `history`   |
| `qa`                | a question in `question` / `query` / `prompt` / `input` and an       |
|                     | answer in `answer` / `response` / `output` / `completion` / `target` |
| `text`              | `text` alone (other columns ignored): continued pretraining          |

The first that fits wins, in that order (`text` only when nothing else does). Where a row fits
two readings (two answer columns, or both `messages` and `instruction`/`output`) the error lists
both and the ``columns`` mapping that picks one; where rows of one file fit different layouts,
the error names a row of each. ``columns`` maps a role to a column and always wins; its roles:
messages, conversations, instruction (the prompt), input, response (the answer), system,
history, tools, text (prompt/question/query and completion/output/answer/target are accepted as
names of the instruction and response roles).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recipes.data.readers import Table
from recipes.errors import DataError
from recipes.schema import Recipe

ANSWERS = ("output", "response", "answer", "completion", "target")
QUESTIONS = ("question", "query", "prompt", "input")
TURNS = {"messages": "messages", "conversations": "sharegpt"}
ROLE_NAMES = ("messages", "conversations", "instruction", "input", "response", "system",
              "history", "tools", "text")
ROLE_ALIASES = {"prompt": "instruction", "question": "instruction", "query": "instruction",
                "completion": "response", "output": "response", "answer": "response",
                "target": "response"}
PAIR_OPTIONAL = ("input", "system", "history")
OPTIONAL = {"messages": ("system", "tools"), "sharegpt": ("system", "tools"),
            "alpaca": PAIR_OPTIONAL, "qa": PAIR_OPTIONAL, "prompt_completion": PAIR_OPTIONAL,
            "text": ()}
# dataset_format -> the layouts it allows
PAIRS = ("alpaca", "qa", "prompt_completion")
FORMATS = {"messages": ("messages", "sharegpt"), "sharegpt": ("sharegpt", "messages"),
           "instruction": PAIRS, "prompt_completion": PAIRS, "text": ("text",)}
# The recipe's own names for metadata columns (task balancing, per-language scores).
DEFAULT_COLUMNS = {"task": "task", "lang": "langs"}


@dataclass
class Reading:
    """How rows are read: the layout and the file column of each role."""

    layout: str
    roles: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        required = {k: v for k, v in self.roles.items() if k not in OPTIONAL[self.layout]}
        return self.layout, tuple(sorted(required.items()))

    def describe(self) -> str:
        return f"{self.layout} (" + ", ".join(f"{role} ← '{col}'" for role, col in
                                             self.roles.items()) + ")"

    @property
    def format(self) -> str:
        """The dataset_format this reading belongs to."""
        return {"alpaca": "instruction", "qa": "instruction"}.get(self.layout, self.layout)


class Ambiguous(Exception):
    def __init__(self, readings: list[Reading]) -> None:
        super().__init__("ambiguous")
        self.readings = readings


def column_for(recipe: Recipe, key: str) -> str:
    """The file's column for a metadata ``key`` (task, lang): the recipe's mapping, else default."""
    return recipe.columns.get(key, DEFAULT_COLUMNS.get(key, key))


def mapping(recipe: Recipe) -> dict[str, str]:
    """The recipe's ``columns`` by role (aliases resolved; task/lang are metadata, not roles)."""
    out = {}
    for key, column in recipe.columns.items():
        role = ROLE_ALIASES.get(key, key)
        if role in ROLE_NAMES:
            out[role] = column
    return out


def read_columns(names: list[str], recipe: Recipe) -> Reading | None:
    """The reading of one set of column names (Ambiguous when two fit); None if none does."""
    lower = {n.lower().strip(): n for n in names}
    given = mapping(recipe)
    allowed = FORMATS.get(recipe.dataset_format)

    def ok(layout: str) -> bool:
        return allowed is None or layout in allowed

    found: list[Reading] = []
    if given.keys() & {"messages", "conversations"}:
        role = "messages" if "messages" in given else "conversations"
        found.append(Reading(TURNS[role], {role: given[role]}))
    elif given.keys() & {"instruction", "response"}:
        found += _pair_readings(lower, given, ok)
    elif "text" in given:
        found.append(Reading("text", {"text": given["text"]}))
    else:
        found += [Reading(layout, {role: lower[role]}) for role, layout in TURNS.items()
                  if role in lower and ok(layout)]
        found += _pair_readings(lower, given, ok)
        if not found and "text" in lower and ok("text"):
            found.append(Reading("text", {"text": lower["text"]}))
    if len(found) > 1:
        raise Ambiguous(found)
    if not found:
        return None
    reading = found[0]
    for role in OPTIONAL[reading.layout]:
        column = given.get(role) or lower.get(role)
        if column and column not in reading.roles.values():
            reading.roles[role] = column
    return reading


def _pair_readings(lower: dict[str, str], given: dict[str, str], ok) -> list[Reading]:
    if "instruction" in given:
        prompts = [given["instruction"]]
    elif "instruction" in lower:
        prompts = [lower["instruction"]]
    else:
        prompts = [lower[q] for q in QUESTIONS if q in lower]
    answers = [given["response"]] if "response" in given else [lower[a] for a in ANSWERS
                                                                if a in lower]
    if not given and "prompt" in lower and "completion" in lower and "instruction" not in lower:
        prompts, answers = [lower["prompt"]], [lower["completion"]]  # TRL's pair, not a choice
    readings = [Reading(_pair_layout(p, a), {"instruction": p, "response": a})
                for p in prompts for a in answers if a != p]
    return [r for r in readings if ok(r.layout)]


def _pair_layout(prompt: str, answer: str) -> str:
    if prompt.lower().strip() == "instruction":
        return "alpaca"
    if prompt.lower().strip() == "prompt" and answer.lower().strip() == "completion":
        return "prompt_completion"
    return "qa"


def detect_layout(table: Table, recipe: Recipe) -> Reading:
    """The one reading every row of ``table`` fits; a DataError naming rows otherwise."""
    rows = table.rows
    shapes: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        key = tuple(row)
        if key not in shapes:
            shapes[key] = i
    readings: dict[tuple, tuple[Reading, int]] = {}
    for names, first in shapes.items():
        try:
            reading = read_columns(list(names), recipe)
        except Ambiguous as amb:
            raise ambiguous_error(amb.readings, table, first) from None
        if reading is not None and reading.key not in readings:
            readings[reading.key] = (reading, first)
    if not readings:
        raise unknown_error(table, recipe, next(iter(shapes.values()), 0))
    if len(readings) > 1:
        (a, ia), (b, ib) = sorted(readings.values(), key=lambda r: r[1])[:2]
        file_a, where_a = table.locate(ia)
        _, where_b = table.locate(ib)
        raise DataError(
            f"{where_a} holds {a.describe()} but {where_b} holds {b.describe()}: mixed layouts",
            where=file_a, fix="one file holds one layout: split the file (or convert the rows "
                              "to one layout), or name the columns to read with --set "
                              f"'columns={{{_mapping_text(a)}}}' (rows without them are refused)")
    reading = next(iter(readings.values()))[0]
    present = {name for names in shapes for name in names}
    lower = {n.lower().strip(): n for n in present}
    for role in OPTIONAL[reading.layout]:
        column = mapping(recipe).get(role) or lower.get(role)
        if column and column not in reading.roles.values():
            reading.roles[role] = column
    return reading


def _mapping_text(reading: Reading) -> str:
    return ", ".join(f"{role}: {col}" for role, col in reading.roles.items()
                     if role not in OPTIONAL[reading.layout])


def ambiguous_error(readings: list[Reading], table: Table, index: int) -> DataError:
    file, where = table.locate(index)
    options = " or ".join(f"--set 'columns={{{_mapping_text(r)}}}'" for r in readings)
    return DataError(f"{where}: two readings fit: " + " and ".join(r.describe() for r in readings),
                     where=file, fix=f"pick one: {options}")


def unknown_error(table: Table, recipe: Recipe, index: int) -> DataError:
    names = list(table.rows[index]) if table.rows else []
    file, where = table.columns_at(index)
    have = ", ".join(repr(n) for n in names[:12]) or "no columns"
    lower = {n.lower() for n in names}
    fmt = recipe.dataset_format
    if fmt != "auto":
        needs = {"messages": "'messages' (or 'conversations')", "sharegpt": "'conversations'",
                 "text": "'text'", "prompt_completion": "'prompt' and 'completion'",
                 "instruction": "a prompt column (instruction/question/query/prompt/input) and "
                                "an answer column (output/response/answer/completion/target)"}
        return DataError(f"{where}: format '{fmt}' needs {needs[fmt]}; the file has {have}",
                         where=file,
                         fix="name them with e.g. --set 'columns={instruction: question, "
                             "response: answer}', or set dataset_format to the file's layout "
                             "(auto detects it)")
    if lower & {"instruction", *QUESTIONS} and not lower & set(ANSWERS):
        what = (f"{where}: no answer column (one of {', '.join(ANSWERS)}); the file has {have}")
    elif lower & set(ANSWERS) and not lower & {"instruction", *QUESTIONS}:
        what = (f"{where}: no prompt column (instruction, {', '.join(QUESTIONS)}); "
                f"the file has {have}")
    else:
        what = f"{where}: cannot tell the dataset's layout from its columns ({have})"
    return DataError(
        what, where=file,
        fix="name the columns: --set 'columns={instruction: <prompt column>, response: <answer "
            "column>}' (or messages: / conversations: / text: <column>); the layouts and "
            "their column names are in the README (Your own data)")


def detect_format(rows: list[dict], recipe: Recipe, source: str) -> str:
    """The dataset_format the rows hold (messages, sharegpt, instruction, prompt_completion,
    text); a DataError naming rows when none or several fit."""
    return detect_layout(Table(rows, source), recipe).format
