"""The chat session without a model: rendering, commands, streaming, the JSON loop (fast)."""

from __future__ import annotations

import io
import threading
import types

import pytest

from recipes.chat import ChatError, ChatSession, EvalPrompt, Settings, TextDeltas
from recipes.data.render import Renderer
from recipes.safe_text import safe_text
from recipes.schema import Recipe
from tui.chat_cli import serve_json

INSTRUCTION = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{response}"


def session(tokenizer, **recipe_fields) -> tuple[ChatSession, list[dict]]:
    recipe = Recipe(model="TinyLlama/TinyLlama-1.1B-Chat-v1.0", max_new_tokens=7,
                    **recipe_fields)
    trained = types.SimpleNamespace(recipe=recipe, renderer=Renderer(tokenizer, recipe))
    got: list[dict] = []
    return ChatSession(trained, emit=got.append), got


def test_messages_render_with_the_system_prompt_and_history(tiny_llama_tokenizer) -> None:
    chat, _ = session(tiny_llama_tokenizer, system_prompt="Be brief.")
    assert chat.settings.max_new_tokens == 7, "the recipe's max_new_tokens by default"
    chat.history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    assert chat.render("And you?", None) == ("<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n"
                                             "<|assistant|>\nHello.</s>\n<|user|>\nAnd you?</s>\n"
                                             "<|assistant|>\n")
    chat.command("/system")
    chat.command("/reset")
    assert chat.render("x", None) == "<|user|>\nx</s>\n<|assistant|>\n"


def test_an_eval_prompt_restores_its_own_system_message(tiny_llama_tokenizer) -> None:
    chat, _ = session(tiny_llama_tokenizer)
    item = EvalPrompt(0, 3, "Q?", "A.", history=[{"role": "system", "content": "S"},
                                                  {"role": "user", "content": "Q?"}])
    chat.eval_prompts = [item]
    rendered = []
    chat._turn = lambda text, fields, it: rendered.append(chat.render(text, fields))
    chat.ask_eval(0)
    assert chat.system == "S" and chat.history == []
    assert rendered == ["<|system|>\nS</s>\n<|user|>\nQ?</s>\n<|assistant|>\n"]
    with pytest.raises(ChatError, match="no eval prompt 5"):
        chat.ask_eval(5)


def test_a_prompt_template_recipe_is_single_turn(tiny_llama_tokenizer) -> None:
    chat, _ = session(tiny_llama_tokenizer, prompt_template=INSTRUCTION)
    assert not chat.multi_turn
    assert chat.render("Translate.", {"instruction": "Translate.", "input": ""}) == \
        "### Instruction:\nTranslate.\n\n### Response:\n"
    assert chat.render("T", {"instruction": "T", "input": "Hello"}) == \
        "### Instruction:\nT\n\n### Input:\nHello\n\n### Response:\n"
    with pytest.raises(ChatError, match="no place for a system message"):
        chat.command("/system Be brief.")


def test_commands_change_mode_and_decoding_and_refuse_nonsense(tiny_llama_tokenizer) -> None:
    chat, got = session(tiny_llama_tokenizer)
    chat.command("/both")
    assert chat.modes() == ["base", "tuned"] and got[-1]["mode"] == "both"
    chat.command("/set temperature=0.7 top_p=0.9 max_new_tokens=64")
    assert got[-1]["settings"]["decoding"] == "sampling (temperature 0.7, top-p 0.9)"
    assert chat.settings.max_new_tokens == 64
    for bad, words in [("/set top_p=0", "top_p must be in"),
                       ("/set temperature=-1", r"0 \(greedy\)"),
                       ("/set max_new_tokens=0", "1 or more"), ("/set beams=2", "cannot set"),
                       ("/frobnicate", "unknown command"), ("/eval x", "prompt number")]:
        with pytest.raises(ChatError, match=words):
            chat.command(bad)
    assert chat.settings.top_p == 0.9, "a refused /set changes nothing"
    assert chat.command("/quit") is False


def test_streamed_pieces_add_up_to_the_decoded_answer(tiny_llama_tokenizer) -> None:
    import torch

    tok = tiny_llama_tokenizer
    ids = tok(" Ünïcödé answer, 東京 too", add_special_tokens=False)["input_ids"]
    pieces: list[str] = []
    streamer = TextDeltas(tok, [tok.eos_token_id], pieces.append)
    streamer.put(torch.tensor([[1, 2, 3]]))  # the prompt: not part of the answer
    for token in [*ids, tok.eos_token_id, ids[0]]:  # nothing after the stop token counts
        streamer.put(torch.tensor([token]))
    assert "".join(pieces) == tok.decode(ids, skip_special_tokens=True).strip()
    assert all("\ufffd" not in p for p in pieces), "half a character is never sent"


def test_settings_are_checked() -> None:
    assert Settings().describe()["decoding"] == "greedy"
    with pytest.raises(ChatError, match="temperature"):
        Settings(temperature=float("nan")).check()


def test_chat_output_shows_control_characters_as_escapes() -> None:
    assert safe_text("red\x1b[31m bell\x07 ok\n\ttab") == "red\\x1b[31m bell\\x07 ok\n\ttab"
    assert safe_text("rtl\u202eevil\x85") == "rtl\\u202eevil\\x85"


class BlockingSession:
    """Stands in for ChatSession: a message 'answers' until a stop arrives."""

    def __init__(self) -> None:
        self.interrupt = threading.Event()
        self.sent: list[dict] = []

    def emit(self, message: dict) -> None:
        self.sent.append(message)

    def say(self, text: str, input_text: str = "") -> None:
        stopped = self.interrupt.wait(timeout=10)
        self.emit({"type": "done", "text": text, "finish": "stopped" if stopped else "timeout"})

    def command(self, text: str) -> bool:
        return text != "/quit"


def test_the_json_loop_stops_an_answer_at_once_and_reports_bad_requests() -> None:
    chat = BlockingSession()
    stdin = io.StringIO('{"type": "user", "text": "long"}\n{"type": "stop"}\nnot json\n'
                        '{"type": "eval"}\n{"type": "command", "text": "/quit"}\n'
                        '{"type": "user", "text": "never read"}\n')
    assert serve_json(chat, stdin) == 0
    assert chat.sent[0] == {"type": "done", "text": "long", "finish": "stopped"}
    errors = [m for m in chat.sent if m["type"] == "error"]
    assert [e["message"] for e in errors] == ["not JSON (Expecting value)",
                                              "eval needs an integer index"]
    assert all(not e["fatal"] for e in errors) and len(chat.sent) == 3
