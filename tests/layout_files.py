"""One small file per dataset layout people bring, written for the tests (12 rows each).

    from tests.layout_files import write_layout
    path = write_layout("alpaca", tmp_path)        # tmp_path / "alpaca.jsonl"

Every layout slothlab detects is here, with its optional parts (Alpaca's system and history,
TRL's conversational prompt/completion, OpenAI content parts, tool calls and tool turns,
ShareGPT's function_call / observation turns and tools column), so the same files drive the
masking tests, the bad-input tests and the two-step training runs.
"""

from __future__ import annotations

import json
from pathlib import Path

ROWS = 12
TOOL = {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
CITIES = ["Oslo", "Lima", "Pune", "Kano", "Baku", "Doha", "Suva", "Riga", "Apia", "Male",
          "Bern", "Rome"]


def alpaca_rows() -> list[dict]:
    rows = [{"instruction": f"Add {i} and 3.", "input": "Show the sum." if i % 3 == 0 else "",
             "output": f"{i} plus 3 is {i + 3}."} for i in range(ROWS)]
    rows[0].update(system="Answer briefly.", history=[["Hi!", "Hello! Ask me a sum."]])
    return rows


def prompt_completion_rows() -> list[dict]:
    rows: list[dict] = []
    for i in range(ROWS):
        if i % 2:
            rows.append({"prompt": f"Name colour number {i}.", "completion": f"Colour {i} is red."})
        else:
            rows.append({"prompt": [{"role": "user", "content": f"Name colour number {i}."},
                                    {"role": "assistant", "content": "Red."},
                                    {"role": "user", "content": "Another one?"}],
                         "completion": [{"role": "assistant", "content": f"Blue, number {i}."}]})
    return rows


def qa_rows() -> list[dict]:
    return [{"question": f"What is the capital of country {i}?",
             "answer": f"The capital is city {i}.", "source": "tests"} for i in range(ROWS)]


def messages_rows() -> list[dict]:
    rows = []
    for i, city in enumerate(CITIES):
        rows.append({"messages": [
            {"role": "system", "content": "You check the weather."},
            {"role": "user", "content": [{"type": "text", "text": f"Weather in {city}?"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call{i}", "type": "function",
                 "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}]},
            {"role": "tool", "tool_call_id": f"call{i}", "content": "sunny"},
            {"role": "assistant", "content": f"It is sunny in {city}."}],
            "tools": [{"type": "function", "function": TOOL}]})
    rows[1]["messages"][2:] = [{"role": "assistant", "content": "Let me look.", "weight": 0},
                               {"role": "user", "content": "Please do."},
                               {"role": "assistant", "content": "Rain in Lima."}]
    return rows


def sharegpt_rows() -> list[dict]:
    return [{"conversations": [
        {"from": "human", "value": f"Weather in {city}?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather",
                                                       "arguments": {"city": city}})},
        {"from": "observation", "value": "rain"},
        {"from": "gpt", "value": f"It rains in {city}."}],
        "system": "You check the weather.", "tools": json.dumps([TOOL])} for city in CITIES]


def text_rows() -> list[dict]:
    return [{"text": f"Chapter {i}. The river ran past the mill, and the miller counted "
                     f"{i} sacks of grain before the rain.", "source": "tests"} for i in range(ROWS)]


LAYOUTS = {"alpaca": ("alpaca.jsonl", alpaca_rows), "prompt_completion": (
    "prompt_completion.jsonl", prompt_completion_rows), "qa": ("qa.csv", qa_rows),
    "messages": ("messages.jsonl", messages_rows), "sharegpt": ("sharegpt.jsonl", sharegpt_rows),
    "text": ("text.jsonl", text_rows)}


def write_rows(path: Path, rows: list[dict]) -> Path:
    """Rows as JSON Lines, CSV or Excel, by the file's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".csv", ".xlsx"):
        import pandas as pd

        frame = pd.DataFrame(rows)
        frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_excel(path,
                                                                                      index=False)
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
    return path


def write_layout(layout: str, folder: Path) -> Path:
    name, rows = LAYOUTS[layout]
    return write_rows(folder / name, rows())
