"""Dataset layouts: which one a file holds (from its columns), and each row as chat messages.

    from recipes.data.layouts import normalise
    examples, skipped = normalise(rows, recipe, source)   # Examples + rows skipped by reason
"""

from __future__ import annotations

from typing import Any

from recipes.data.sources import clean_text, present_columns
from recipes.data.types import Example
from recipes.errors import DataError
from recipes.schema import Recipe

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "bot": "assistant", "model": "assistant"}
MESSAGE_ROLES = {"system", "user", "assistant"}
DEFAULT_COLUMNS = {"messages": "messages", "conversations": "conversations",
                   "instruction": "instruction", "input": "input", "response": "response",
                   "system": "system", "task": "task", "lang": "langs"}


def column_for(recipe: Recipe, key: str) -> str:
    """The file's column for ``key``: the recipe's mapping, else the default name."""
    return recipe.columns.get(key, DEFAULT_COLUMNS[key])



def _require_columns(rows: list[dict], needed: list[str], source: str, fmt: str) -> None:
    present = present_columns(rows)
    missing = [c for c in needed if c not in present]
    if missing:
        raise DataError(
            f"format '{fmt}' needs column(s) {', '.join(repr(m) for m in missing)}; "
            f"the file has {', '.join(repr(p) for p in present)}",
            where=source,
            fix="map them with e.g. --set columns={response: answer} or pick the right "
                "dataset_format",
        )


def normalise(rows: list[dict], recipe: Recipe, source: str,
              fmt: str | None = None) -> tuple[list[Example], dict[str, int]]:
    """Every row as chat messages, cleaned. Returns the examples and rows skipped, by reason.

    ``fmt``: the format already chosen for ``dataset_format: auto`` (else it is detected).
    """
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    if fmt is None:
        fmt = detect_format(rows, recipe, source) if recipe.dataset_format == "auto" \
            else recipe.dataset_format
    if fmt == "instruction":
        examples = _from_instruction(rows, recipe, source, skip)
    else:
        examples = _from_turns(rows, recipe, source, skip, fmt)
    return _clean(examples, skip, recipe), skipped


def detect_format(rows: list[dict], recipe: Recipe, source: str) -> str:
    """``dataset_format: auto``: messages, sharegpt or instruction, from the columns present."""
    present = present_columns(rows)
    if column_for(recipe, "messages") in present:
        return "messages"
    if column_for(recipe, "conversations") in present:
        return "sharegpt"
    if column_for(recipe, "instruction") in present and column_for(recipe, "response") in present:
        return "instruction"
    raise DataError(
        f"cannot tell the dataset's format from its columns "
        f"({', '.join(repr(p) for p in present[:12])})", where=source,
        fix="set dataset_format (messages: a 'messages' list of role/content turns; sharegpt: "
            "a 'conversations' list of from/value turns; instruction: 'instruction' and "
            "'response' columns) and map other names with e.g. "
            "--set columns={instruction: question, response: answer}",
    )


def _from_instruction(rows: list[dict], recipe: Recipe, source: str,
                      skip: Any) -> list[Example]:
    examples: list[Example] = []
    cols = {k: column_for(recipe, k) for k in ("instruction", "input", "response", "system")}
    _require_columns(rows, [cols["instruction"], cols["response"]], source, "instruction")
    for i, row in enumerate(rows, start=1):
        instruction = clean_text(row.get(cols["instruction"]))
        extra = clean_text(row.get(cols["input"]))
        response = clean_text(row.get(cols["response"]))
        if not instruction or not response:
            skip("empty instruction or response")
            continue
        user = f"{instruction}\n\n{extra}" if extra else instruction
        messages = [{"role": "user", "content": user},
                    {"role": "assistant", "content": response}]
        system = clean_text(row.get(cols["system"])) or recipe.system_prompt
        if system:
            messages.insert(0, {"role": "system", "content": system})
        meta = {key: clean_text(row[col]) for key in ("task", "lang")
                if (col := column_for(recipe, key)) in row and clean_text(row[col])}
        examples.append(Example(i, messages, {"instruction": instruction, "input": extra,
                                              "response": response}, meta))
    return examples


def _from_turns(rows: list[dict], recipe: Recipe, source: str, skip: Any,
                fmt: str) -> list[Example]:
    examples: list[Example] = []
    column = column_for(recipe, "messages" if fmt == "messages" else "conversations")
    _require_columns(rows, [column], source, fmt)
    role_key, content_key = ("role", "content") if fmt == "messages" else ("from", "value")
    for i, row in enumerate(rows, start=1):
        turns = row.get(column)
        if column not in row:
            raise DataError(f"row {i} has no '{column}' column", where=source,
                            fix=f"give every row a '{column}' list, or delete the row")
        if not isinstance(turns, list):
            raise DataError(
                f"row {i}: column '{column}' holds {type(turns).__name__}, not a list of turns",
                where=source, fix=f"each row's '{column}' must be a list of "
                f"{{{role_key}, {content_key}}} objects",
            )
        messages = []
        for turn in turns:
            if not isinstance(turn, dict) or role_key not in turn or content_key not in turn:
                raise DataError(
                    f"row {i}: a turn is {turn!r:.80}, expected keys '{role_key}' and "
                    f"'{content_key}'", where=source,
                    fix="use dataset_format: messages for role/content or sharegpt for from/value",
                )
            raw_role = str(turn[role_key]).lower()
            role = SHAREGPT_ROLES.get(raw_role) if fmt == "sharegpt" else raw_role
            if role not in MESSAGE_ROLES:
                raise DataError(f"row {i}: unknown role {turn[role_key]!r}", where=source,
                                fix="roles must be system/user/assistant (messages) or "
                                    "system/human/gpt (sharegpt)")
            messages.append({"role": role, "content": clean_text(turn[content_key])})
        if not any(m["role"] == "assistant" and m["content"] for m in messages):
            skip("no assistant turn with text")
            continue
        if any(not m["content"] for m in messages):
            skip("a turn with empty text")
            continue
        if recipe.system_prompt and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": recipe.system_prompt})
        examples.append(Example(i, messages))
    return examples


def _clean(examples: list[Example], skip: Any, recipe: Recipe) -> list[Example]:
    """The recipe's cleaning rules: over-long rows, then exact duplicates (counted per rule)."""
    kept: list[Example] = []
    seen: set[tuple] = set()
    for ex in examples:
        if recipe.max_chars and any(len(m["content"]) > recipe.max_chars for m in ex.messages):
            skip(f"longer than max_chars={recipe.max_chars}")
            continue
        if recipe.drop_duplicates:
            key = tuple((m["role"], m["content"].casefold()) for m in ex.messages)
            if key in seen:
                skip("duplicate")
                continue
            seen.add(key)
        kept.append(ex)
    return kept

