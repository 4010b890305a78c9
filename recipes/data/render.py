"""Rendering and tokenizing: a conversation through the chat template (or a prompt
template), then tokens with labels masked to the responses.

How responses are found: each assistant message is wrapped in two private-use characters
before the chat template is rendered, so one render per conversation yields both the text
and the exact character span of every response (templates such as Llama-3's ``| trim`` leave
them alone because contents are stripped first). The end-of-turn marker the template writes
after a response (``<|eot_id|>``, ``</s>``, ``<|im_end|>``) is learned from a probe render and
added to each span. Tokens are then matched to spans through the fast tokenizer's offsets.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from recipes.data.types import IGNORE_INDEX, Example, Tokenized
from recipes.errors import DataError
from recipes.schema import Recipe

# Private-use code points: never in real text, single characters, stable under trim().
OPEN, CLOSE = "\ue000", "\ue001"


def compile_template(source: str):
    """A Jinja template compiled the way transformers renders chat templates."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise DataError(f"chat template refused the conversation: {message}", where="chat_template")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
    return env.from_string(source)


TOOLS_PREAMBLE = ("You can call these tools. To call one, answer with <tool_call>\n"
                  '{"name": ..., "arguments": {...}}\n</tool_call>.\n<tools>\n')
PROBE_TOOLS = [{"type": "function", "function": {
    "name": "probe_tool_schema", "description": "probe",
    "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}]
PROBE_CALL = [{"role": "user", "content": "hi"},
              {"role": "assistant", "content": "", "tool_calls": [
                  {"type": "function", "function": {"name": "probe_call_name",
                                                    "arguments": {"x": 1}}}]},
              {"role": "tool", "content": "probe_tool_result"},
              {"role": "assistant", "content": "ok"}]


def uses_tools(messages: list[dict[str, Any]]) -> bool:
    return any("tool_calls" in m or "tools" in m or m["role"] == "tool" for m in messages)


def tools_as_text(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool use written as plain text, for templates that cannot render it.

    The row's tools go at the end of the system message (after ``TOOLS_PREAMBLE``, one JSON
    schema a line, then ``</tools>``); an assistant tool call is its text followed by
    ``<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>`` (trained, like any
    assistant text); a tool result becomes a user turn ``<tool_response>\n...\n
    </tool_response>`` (consecutive results share one turn; never trained).
    """
    tools = messages[0].get("tools") if messages else None
    out: list[dict[str, Any]] = []
    last_was_tool = False
    for m in messages:
        m = {k: v for k, v in m.items() if k != "tools"}
        if m["role"] == "tool":
            block = f"<tool_response>\n{m['content']}\n</tool_response>"
            if last_was_tool:
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block})
            last_was_tool = True
            continue
        last_was_tool = False
        if m["role"] == "assistant" and m.get("tool_calls"):
            calls = "\n".join(
                "<tool_call>\n" + json.dumps({"name": c["function"]["name"],
                                              "arguments": c["function"]["arguments"]},
                                             ensure_ascii=False) + "\n</tool_call>"
                for c in m.pop("tool_calls"))
            m["content"] = f"{m['content']}\n{calls}" if m["content"] else calls
        out.append(m)
    if tools:
        listing = TOOLS_PREAMBLE + "\n".join(json.dumps(t, ensure_ascii=False)
                                              for t in tools) + "\n</tools>"
        if out and out[0]["role"] == "system":
            out[0]["content"] = f"{out[0]['content']}\n\n{listing}"
        else:
            out.insert(0, {"role": "system", "content": listing})
    return out


class Renderer:
    """Turns a conversation into text plus the character spans of its trained responses.

    Tool use (tool lists, assistant tool calls, tool results) goes through the model's chat
    template when a probe render shows the template writes all three; otherwise it is written
    as text (``tools_as_text``). ``native_tools`` says which.
    """

    def __init__(self, tokenizer: Any, recipe: Recipe) -> None:
        self.tokenizer = tokenizer
        self.prompt_template = recipe.prompt_template
        self.eos = tokenizer.eos_token or ""
        self.special = {"bos_token": tokenizer.bos_token or "", "eos_token": self.eos,
                        "pad_token": tokenizer.pad_token or "", "unk_token": tokenizer.unk_token or ""}
        self.native_tools = False
        if not self.prompt_template:
            if not getattr(tokenizer, "chat_template", None):
                raise DataError("the tokenizer has no chat template", where="chat_template",
                                fix="set chat_template to a built-in (zephyr, llama-3.1, chatml) "
                                    "or give a prompt_template")
            self.template = compile_template(tokenizer.chat_template)
            self.end_of_turn = self._probe_end_of_turn()
            self.native_tools = self._probe_tools()

    def _probe_end_of_turn(self) -> str:
        probe = [{"role": "user", "content": "hi"},
                 {"role": "assistant", "content": f"{OPEN}ok{CLOSE}"}]
        text = self._render(probe, False, None)
        return text.split(CLOSE, 1)[1].rstrip() if CLOSE in text else ""

    def _probe_tools(self) -> bool:
        try:
            text = self._render(PROBE_CALL, False, PROBE_TOOLS)
        except Exception:  # a template that refuses tool turns cannot render them
            return False
        return all(s in text for s in ("probe_tool_schema", "probe_call_name", "probe_tool_result"))

    def _render(self, messages: list[dict[str, Any]], generation_prompt: bool,
                tools: list[dict[str, Any]] | None) -> str:
        return self.template.render(messages=messages, tools=tools, documents=None,
                                    add_generation_prompt=generation_prompt, **self.special)

    def render_chat(self, messages: list[dict[str, Any]], *, generation_prompt: bool = False) -> str:
        """The conversation as the template writes it (tool use as ``render`` writes it)."""
        if uses_tools(messages):
            if not self.native_tools:
                return self._render(tools_as_text(messages), generation_prompt, None)
            tools = messages[0].get("tools")
            messages = [{k: v for k, v in m.items() if k != "tools"} for m in messages]
            return self._render(messages, generation_prompt, tools)
        return self._render(messages, generation_prompt, None)

    def render(self, example: Example) -> tuple[str, list[tuple[int, int]]]:
        if example.text is not None:
            return example.text, [(0, len(example.text))]
        if self.prompt_template:
            return self._render_prompt(example)
        messages = example.messages
        if uses_tools(messages):
            if self.native_tools:
                native = self._render_native(messages)
                if native is not None:
                    return native
            messages = tools_as_text(messages)
        marked = [
            {**m, "content": f"{OPEN}{m['content']}{CLOSE}"}
            if m["role"] == "assistant" and m.get("weight", 1) != 0 else m
            for m in messages
        ]
        raw = self._render(marked, False, None)
        text_parts: list[str] = []
        spans: list[tuple[int, int]] = []
        pos = 0
        length = 0
        while True:
            start = raw.find(OPEN, pos)
            if start < 0:
                text_parts.append(raw[pos:])
                break
            end = raw.find(CLOSE, start)
            text_parts.append(raw[pos:start])
            length += start - pos
            content = raw[start + 1:end]
            text_parts.append(content)
            span_start = length
            length += len(content)
            after = end + 1
            if self.end_of_turn and raw.startswith(self.end_of_turn, after):
                text_parts.append(self.end_of_turn)
                length += len(self.end_of_turn)
                after += len(self.end_of_turn)
            spans.append((span_start, length))
            pos = after
        return "".join(text_parts), spans

    def _render_native(self, messages: list[dict[str, Any]]
                       ) -> tuple[str, list[tuple[int, int]]] | None:
        """Tool use through the template: each trained assistant turn's span is what rendering
        it adds after the generation prompt (None when the template's renders are not
        prefixes of one another; the caller then writes tool use as text)."""
        tools = messages[0].get("tools")
        clean = [{k: v for k, v in m.items() if k not in ("tools", "weight")} for m in messages]
        full = self._render(clean, False, tools)
        spans = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant" or m.get("weight", 1) == 0:
                continue
            head = self._render(clean[:i], True, tools)
            upto = self._render(clean[:i + 1], False, tools).rstrip()
            if not (upto.startswith(head) and full.startswith(upto)) or len(upto) <= len(head):
                return None
            spans.append((len(head), len(upto)))
        return full, spans

    def prompt_fields(self, example: Example) -> dict[str, str]:
        if example.fields is not None:
            return example.fields
        users = [m for m in example.messages if m["role"] == "user"]
        if len(users) != 1 or example.messages[-1]["role"] != "assistant":
            raise DataError(
                f"row {example.row}: prompt_template needs single-turn rows (one user turn, then "
                "the answer)", where="prompt_template",
                fix="use the model's chat template for multi-turn data (prompt_template: '')",
            )
        return {"instruction": users[0]["content"], "input": "",
                "response": example.messages[-1]["content"]}

    def render_prompt(self, fields: dict[str, str]) -> str:
        """The prompt-template text up to where the response begins."""
        head = self.prompt_template.split("{response}", 1)[0]
        if not fields.get("input"):
            # Drop the paragraph that holds {input} when there is no input.
            head = "\n\n".join(p for p in head.split("\n\n") if "{input}" not in p)
        return head.format(**{k: v for k, v in fields.items() if k != "response"})

    def _render_prompt(self, example: Example) -> tuple[str, list[tuple[int, int]]]:
        fields = self.prompt_fields(example)
        prompt = self.render_prompt(fields)
        response = fields["response"] + self.eos
        return prompt + response, [(len(prompt), len(prompt) + len(response))]


# ----------------------------------------------------------------------------- tokenizing

def adds_only_bos(tokenizer: Any) -> bool:
    """True if the tokenizer's own special tokens are exactly one leading BOS (Llama style)."""
    if tokenizer.bos_token_id is None:
        return False
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    special = tokenizer("a", add_special_tokens=True)["input_ids"]
    return special == [tokenizer.bos_token_id, *plain]


def tokenize(examples: list[Example], renderer: Renderer, max_len: int,
             batch: int = 1000) -> list[Tokenized]:
    """Render, tokenize (batched, Rust-parallel) and label; responses are the only targets.

    A token is trained when its characters overlap a response span: the first and last such
    tokens come from the fast tokenizer's char-to-token map, and every token between them is
    trained (no offsets are materialised, so a batch costs little memory). Special tokens the
    tokenizer adds itself (BOS) cover no characters and never are. A text the template already
    starts with BOS is encoded as is; otherwise a tokenizer that prepends BOS itself (Llama,
    TinyLlama) encodes it with its special tokens, exactly as the model saw text in pretraining.
    """
    tok = renderer.tokenizer
    bos = tok.bos_token or ""
    own_bos = adds_only_bos(tok)
    out: list[Tokenized] = []
    for lo in range(0, len(examples), batch):
        chunk = examples[lo:lo + batch]
        rendered = [renderer.render(ex) for ex in chunk]
        texts = [text for text, _ in rendered]
        # Never a second BOS: if the template wrote one anywhere in the batch, add none.
        special = own_bos and not any(text.startswith(bos) for text in texts)
        enc = tok(texts, add_special_tokens=special)
        del texts
        for b, (ex, ids, (_, spans)) in enumerate(zip(chunk, enc["input_ids"], rendered,
                                                      strict=True)):
            n = len(ids)
            ids_arr = np.asarray(ids, dtype=np.int32)
            labels = np.full(n, IGNORE_INDEX, dtype=np.int32)
            start = -1
            for s, e in spans:
                first = _token_at(enc, b, range(s, e))
                last = _token_at(enc, b, range(e - 1, s - 1, -1))
                if first is None or last is None:
                    continue
                labels[first:last + 1] = ids_arr[first:last + 1]
                start = first if start < 0 else min(start, first)
            if n > max_len:
                out.append(Tokenized(ex.row, ids_arr[:max_len].copy(), labels[:max_len].copy(),
                                     True, start))
            else:
                out.append(Tokenized(ex.row, ids_arr, labels, False, start))
    return out


def _token_at(enc: Any, b: int, chars: range) -> int | None:
    """The first token that holds one of ``chars`` (in their order), or None."""
    for c in chars:
        t = enc.char_to_token(b, c)
        if t is not None:
            return t
    return None


def pack(examples: list[Example], tokenizer: Any, block: int, batch: int = 1000) -> list[Tokenized]:
    """Plain text for continued pretraining: every document's tokens, then EOS, as one stream
    cut into blocks of ``block`` tokens (the last may be shorter). Every token is trained
    (labels are the input ids); a block's ``row`` is that of the document it starts in.

    A tokenizer that prepends BOS itself (Llama) starts each document with it, as in
    pretraining. Documents are concatenated, not padded, as TRL's wrapped packing does.
    """
    own_bos = adds_only_bos(tokenizer)
    eos = tokenizer.eos_token_id
    pieces: list[np.ndarray] = []
    starts: list[int] = []
    rows: list[int] = []
    length = 0
    for lo in range(0, len(examples), batch):
        chunk = examples[lo:lo + batch]
        enc = tokenizer([ex.text for ex in chunk], add_special_tokens=own_bos)["input_ids"]
        for ex, ids in zip(chunk, enc, strict=True):
            if eos is not None and (not ids or ids[-1] != eos):
                ids = [*ids, eos]
            starts.append(length)
            rows.append(ex.row)
            pieces.append(np.asarray(ids, dtype=np.int32))
            length += len(ids)
    if not pieces:
        return []
    stream = np.concatenate(pieces)
    first = np.asarray(starts)
    out = []
    for lo in range(0, len(stream), block):
        ids = stream[lo:lo + block]
        doc = int(np.searchsorted(first, lo, side="right")) - 1
        out.append(Tokenized(rows[doc], ids, ids, False, 0))
    return out
