"""Chat turns as they come (OpenAI / TRL messages, ShareGPT, tool calls) into one message form.

A normalised message is ``{role, content}`` with role system / user / assistant / tool:

- ``{role, content}`` and ``{from, value}`` turns are both read, in either column;
- roles: human/user → user; gpt/assistant/bot/model/chatgpt → assistant; system/developer →
  system; tool/observation/function/ipython → tool; ShareGPT's ``function_call`` turn → an
  assistant turn with ``tool_calls``;
- ``content`` given as a list of parts keeps its text parts (joined by a newline);
- assistant ``tool_calls`` (and OpenAI's older ``function_call``) become
  ``[{type: function, function: {name, arguments}}]`` with the arguments as an object;
- ``weight: 0`` on an assistant turn (OpenAI's fine-tuning format) keeps it out of the loss.

A turn that cannot be read raises ``TurnError`` with what is wrong and which turn; the caller
names the file, row and column.
"""

from __future__ import annotations

import json
from typing import Any

from recipes.data.sources import clean_text

ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
         "bot": "assistant", "model": "assistant", "chatgpt": "assistant", "system": "system",
         "developer": "system", "tool": "tool", "observation": "tool", "function": "tool",
         "ipython": "tool", "function_call": "assistant"}
KNOWN_ROLES = ("system, user, assistant, tool (messages); system, human, gpt, function_call, "
               "observation (sharegpt)")


class TurnError(Exception):
    """A turn that cannot be read: ``turn`` is its 1-based position, ``what`` says why."""

    def __init__(self, turn: int, what: str, fix: str = "") -> None:
        super().__init__(what)
        self.turn, self.what, self.fix = turn, what, fix


class NonText(Exception):
    """Content that is not text (an image, audio): the row is skipped and counted."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def content_text(value: Any) -> str:
    """A turn's text: a string, None, or a list of parts (only text parts are allowed)."""
    if value is None or isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        texts = []
        for part in value:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text":
                texts.append(str(part.get("text", "")))
            else:
                raise NonText(part.get("type", "?") if isinstance(part, dict) else
                              type(part).__name__)
        return clean_text("\n".join(texts))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return clean_text(value)
    raise TypeError(type(value).__name__)


def tool_calls(value: Any) -> list[dict[str, Any]]:
    """Tool calls in any common shape as ``[{type: function, function: {name, arguments}}]``."""
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("expected a list of tool calls")
    calls = []
    for call in value:
        if not isinstance(call, dict):
            raise ValueError("a tool call is not an object")
        function = call.get("function", call)
        if not isinstance(function, dict) or not function.get("name"):
            raise ValueError("a tool call has no function name")
        arguments = function.get("arguments", function.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                pass  # kept as the text it is
        out = {"type": "function", "function": {"name": str(function["name"]),
                                                "arguments": arguments}}
        if call.get("id"):
            out["id"] = str(call["id"])
        calls.append(out)
    return calls


def tools_list(value: Any) -> list[dict[str, Any]] | None:
    """A row's tool schemas (a list, or JSON text of one) as ``[{type: function, function}]``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and value != value:  # NaN from pandas
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ValueError("expected a list of tool schemas")
    return [t if "function" in t and t.get("type", "function") == "function"
            else {"type": "function", "function": t} for t in value] or None


def read_turns(turns: list[Any]) -> list[dict[str, Any]]:
    """Normalised messages of one conversation; an assistant text turn directly followed by a
    ShareGPT ``function_call`` turn becomes one message with text and tool calls."""
    messages: list[dict[str, Any]] = []
    for n, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            raise TurnError(n, f"a turn is {turn!r:.60}, not an object",
                            "each turn is {role, content} (messages) or {from, value} (sharegpt)")
        if "role" in turn:
            raw_role, raw_content = turn["role"], turn.get("content")
        elif "from" in turn:
            raw_role, raw_content = turn["from"], turn.get("value")
        else:
            raise TurnError(n, f"a turn has no role: keys {', '.join(map(repr, turn))}",
                            "each turn is {role, content} (messages) or {from, value} (sharegpt)")
        role = ROLES.get(str(raw_role).lower().strip())
        if role is None:
            raise TurnError(n, f"unknown role {raw_role!r}",
                            f"use one of {KNOWN_ROLES}; other roles cannot be trained")
        try:
            content = content_text(raw_content)
        except TypeError as exc:
            raise TurnError(n, f"content is {exc}, not text") from None
        message: dict[str, Any] = {"role": role, "content": content}
        try:
            if str(raw_role).lower().strip() == "function_call":
                message = {"role": "assistant", "content": "",
                           "tool_calls": tool_calls(raw_content)}
                if messages and messages[-1]["role"] == "assistant" and \
                        "tool_calls" not in messages[-1]:
                    messages[-1]["tool_calls"] = message["tool_calls"]
                    continue
            elif role == "assistant" and (turn.get("tool_calls") or turn.get("function_call")):
                message["tool_calls"] = tool_calls(turn.get("tool_calls") or
                                                   turn["function_call"])
        except (ValueError, json.JSONDecodeError) as exc:
            raise TurnError(n, f"a tool call that cannot be read ({exc})",
                            'write it as {"name": ..., "arguments": {...}}') from None
        if role == "tool" and turn.get("name"):
            message["name"] = str(turn["name"])
        if role == "assistant" and turn.get("weight") in (0, 0.0, "0", False):
            message["weight"] = 0
        messages.append(message)
    return messages
