"""A chat with a run's fine-tuned model and its base (the same weights, adapter switched off).

    from recipes.chat import ChatSession, Settings
    session = ChatSession(load_trained(run_dir), Settings(), emit=print)
    session.say("What is the capital of Kenya?")     # emits turn, token..., done
    session.command("/both")                          # emits info
    session.ask_eval(0)                               # the eval's first prompt, as the eval asked it

Prompts are rendered exactly as the eval renders them: the conversation so far (system message
first) through the chat template with the generation prompt, encoded with the eval's BOS rule,
decoded greedily with the eval's stop tokens and cut and stripped the same way; so a prompt the
eval asked gets the eval's answer. Everything the session does is reported through ``emit`` as
the dicts of the `slothlab chat --json` protocol (see tui/chat_cli.py): front ends only render.

Multi-turn: one history. Each turn's answer in it is the fine-tuned model's (the base model's
in /base mode); /both asks both models for the same history. A recipe with a prompt_template
was trained and evaluated on single prompts (instruction + optional input, no turns, no system
message): each message is answered on its own, and the session says so (``multi_turn`` false).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from recipes.errors import SlothlabError

MODES = ("base", "tuned", "both")
SETTABLE = ("temperature", "top_p", "max_new_tokens")
HELP = ("/base /tuned /both: which model answers (both: the same history, side by side) · "
        "/reset: a new conversation · /system TEXT (alone: none) · /eval N: the eval's prompt N "
        "· /set temperature=0.7 top_p=0.9 max_new_tokens=64 (temperature 0 = greedy) · /quit")
Emit = Callable[[dict[str, Any]], None]


class ChatError(SlothlabError):
    """A request the session refuses (bad command, value or index); the session goes on."""


@dataclass
class Settings:
    """Decoding. temperature 0 = greedy, the eval's decoding (top_p is then unused)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 0  # 0 = the recipe's max_new_tokens

    def check(self) -> Settings:
        if not self.temperature >= 0:
            raise ChatError(f"temperature must be 0 (greedy) or more, not {self.temperature}",
                            where="temperature", fix="e.g. temperature=0.7")
        if not 0 < self.top_p <= 1:
            raise ChatError(f"top_p must be in (0, 1], not {self.top_p}", where="top_p",
                            fix="e.g. top_p=0.9")
        if self.max_new_tokens < 0:
            raise ChatError("max_new_tokens must be 1 or more", where="max_new_tokens",
                            fix="e.g. max_new_tokens=128")
        return self

    def describe(self) -> dict[str, Any]:
        decoding = ("greedy" if self.temperature == 0 else
                    f"sampling (temperature {self.temperature:g}, top-p {self.top_p:g})")
        return {**asdict(self), "decoding": decoding}


@dataclass
class EvalPrompt:
    """One prompt of the run's fixed eval set, with what the eval answered when known."""

    index: int
    row: int
    question: str
    reference: str
    history: list[dict[str, str]]  # the conversation up to the answer (system message included)
    fields: dict[str, str] | None = None  # prompt-template recipes: instruction / input
    task: str = ""
    lang: str = ""
    labels: list[str] = field(default_factory=list)  # classification: the eval picks one
    answers: dict[str, str] = field(default_factory=dict)  # base / tuned, from report.json

    def public(self) -> dict[str, Any]:
        return {"index": self.index, "row": self.row, "question": self.question,
                "reference": self.reference, "task": self.task, "lang": self.lang,
                "classification": bool(self.labels), "eval": self.answers}


class TextDeltas:
    """A generate() streamer: the answer's new text as it grows, decoded as the eval decodes.

    The whole answer is re-decoded at each token (a character can span tokens) and only what
    extends the text already sent goes out; a replacement character at the end waits for the
    rest of its bytes.
    """

    def __init__(self, tokenizer: Any, stop_ids: list[int], on_text: Callable[[str], None]):
        self.tokenizer, self.stop_ids, self.on_text = tokenizer, set(stop_ids), on_text
        self.ids: list[int] = []
        self.sent = ""
        self.prompt_seen = False
        self.stopped = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate() puts the prompt first
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            if self.stopped or token in self.stop_ids:
                self.stopped = True
                continue
            self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).lstrip()
        if text.endswith("\ufffd") or not text.startswith(self.sent) or text == self.sent:
            return
        self.on_text(text[len(self.sent):])
        self.sent = text

    def end(self) -> None:
        pass


class ChatSession:
    """Conversation state, commands and generation for one loaded run (see the module doc)."""

    def __init__(self, trained: Any, settings: Settings | None = None, *, emit: Emit,
                 mode: str = "tuned", eval_prompts: list[EvalPrompt] | None = None) -> None:
        self.trained = trained
        self.recipe = trained.recipe
        self.settings = (settings or Settings()).check()
        if not self.settings.max_new_tokens:
            self.settings.max_new_tokens = self.recipe.max_new_tokens
        self.emit = emit
        self.mode = mode
        self.eval_prompts = eval_prompts or []
        self.multi_turn = not trained.renderer.prompt_template
        self.system = self.recipe.system_prompt if self.multi_turn else ""
        self.history: list[dict[str, str]] = []  # user / assistant messages, system apart
        self.turns = 0
        self.interrupt = threading.Event()  # set by a front end to end the current answer

    # -- state the front ends show ---------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"mode": self.mode, "system": self.system, "multi_turn": self.multi_turn,
                "settings": self.settings.describe()}

    def ready(self, note: str = "") -> None:
        """The first message: what loaded (read from the live model), settings, eval prompts."""
        t = self.trained
        chat = t.recipe.chat_template
        template = ("prompt_template (single-turn)" if not self.multi_turn else
                    "chat template (the model's own)" if chat == "auto" else
                    f"chat template ({chat})")
        self.emit({"type": "ready", "run_dir": str(t.run_dir), "recipe": t.recipe.name,
                   "base_model": t.base_path, "adapter": str(t.adapter_dir),
                   "checkpoint": str(t.checkpoint) if t.checkpoint else None,
                   "loaded": t.describe(), "template": template,
                   "stop_tokens": [t.tokenizer.convert_ids_to_tokens(i) for i in t.stop_ids],
                   "eval_prompts": [p.public() for p in self.eval_prompts], "eval_note": note,
                   "help": HELP, **self.state()})

    def modes(self) -> list[str]:
        return ["base", "tuned"] if self.mode == "both" else [self.mode]

    # -- requests --------------------------------------------------------------------------
    def say(self, text: str, *, input_text: str = "") -> None:
        """Answer a user message in the current mode; the answer joins the history."""
        if not text.strip():
            raise ChatError("empty message", fix="type a message, or /help")
        if input_text and not self.multi_turn and "{input}" not in self.trained.renderer.prompt_template:
            raise ChatError("this recipe's prompt_template has no {input}", where="input")
        if input_text and self.multi_turn:
            raise ChatError("input is for prompt_template recipes", where="input",
                            fix="put it in the message text")
        fields = {"instruction": text, "input": input_text} if not self.multi_turn else None
        self._turn(text, fields, None)

    def ask_eval(self, index: int) -> None:
        """Start over from the eval's prompt ``index`` (its system message and earlier turns
        included) and answer it as the eval did: a classification prompt by the likeliest label."""
        if not 0 <= index < len(self.eval_prompts):
            raise ChatError(f"no eval prompt {index}", where="eval",
                            fix=f"pick 0-{len(self.eval_prompts) - 1}" if self.eval_prompts
                            else "this run has no eval prompts")
        item = self.eval_prompts[index]
        self.history = []
        if self.multi_turn:
            messages = list(item.history)
            self.system = messages.pop(0)["content"] if messages and \
                messages[0]["role"] == "system" else ""
            self.history = messages[:-1]
        self._turn(item.question, item.fields, item)

    def command(self, text: str) -> bool:
        """Apply a /command; emits info. Returns False for /quit."""
        name, _, arg = text.strip().partition(" ")
        name, arg = name.lower().lstrip("/"), arg.strip()
        if name in ("quit", "exit", "q"):
            return False
        if name in MODES:
            self.mode = name
            message = {"base": "the base model answers (adapter off)",
                       "tuned": "the fine-tuned model answers",
                       "both": "both models answer the same history (the fine-tuned answer "
                               "continues it)"}[name]
        elif name == "reset":
            self.history = []
            message = "new conversation"
        elif name == "system":
            if not self.multi_turn:
                raise ChatError("this recipe's prompt_template has no place for a system "
                                "message", where="/system",
                                fix="the model was trained on instruction prompts alone")
            self.system = arg
            message = f"system message: {arg}" if arg else "no system message"
        elif name == "set":
            self._set(arg)
            message = f"decoding: {self.settings.describe()['decoding']}, max_new_tokens " \
                      f"{self.settings.max_new_tokens}"
        elif name == "eval":
            if not arg.isdigit():
                raise ChatError("/eval needs a prompt number", fix="e.g. /eval 0")
            self.ask_eval(int(arg))
            return True
        elif name == "help":
            message = HELP
        else:
            raise ChatError(f"unknown command /{name}", fix=HELP)
        self.emit({"type": "info", "command": name, "message": message, **self.state()})
        return True

    def _set(self, arg: str) -> None:
        values = dict(self.settings.__dict__)
        for item in arg.replace(",", " ").split():
            key, sep, value = item.partition("=")
            key = key.replace("-", "_")
            if not sep or key not in SETTABLE:
                raise ChatError(f"cannot set '{item}'", where="/set",
                                fix="e.g. /set temperature=0.7 top_p=0.9 max_new_tokens=64")
            try:
                values[key] = int(value) if key == "max_new_tokens" else float(value)
            except ValueError:
                raise ChatError(f"'{value}' is not a number", where=key) from None
        if values.get("max_new_tokens") == 0:
            raise ChatError("max_new_tokens must be 1 or more", where="max_new_tokens")
        self.settings = Settings(**values).check()

    # -- one turn --------------------------------------------------------------------------
    def messages(self, text: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, *self.history, {"role": "user", "content": text}]

    def render(self, text: str, fields: dict[str, str] | None) -> str:
        renderer = self.trained.renderer
        if fields is not None:
            return renderer.render_prompt(fields)
        return renderer.render_chat(self.messages(text), generation_prompt=True)

    def _turn(self, text: str, fields: dict[str, str] | None, item: EvalPrompt | None) -> None:
        prompt = self.render(text, fields)
        self.emit({"type": "turn", "index": self.turns, "text": text,
                   "input": (fields or {}).get("input", ""), "modes": self.modes(),
                   "eval_index": item.index if item else None, "prompt": prompt})
        self.turns += 1
        self.interrupt.clear()  # a stop ends this turn: in /both, both answers
        answers = {}
        for mode in self.modes():
            answers[mode] = self._answer(prompt, mode, item)
        if self.multi_turn:
            kept = answers.get("tuned", answers.get("base", ""))
            self.history += [{"role": "user", "content": text},
                             {"role": "assistant", "content": kept}]

    def _answer(self, prompt: str, mode: str, item: EvalPrompt | None) -> str:
        started = time.perf_counter()
        model = self.trained.model
        off = model.disable_adapter() if mode == "base" else contextlib.nullcontext()
        with off:
            if self.interrupt.is_set():  # stopped during the other model's answer
                text, count, finish = "", 0, "stopped"
            elif item is not None and item.labels:
                text, count, finish = self._pick_label(prompt, item.labels), 0, "label"
                self.emit({"type": "token", "mode": mode, "text": text})
            else:
                text, count, finish = self._generate(prompt, mode)
        done = {"type": "done", "mode": mode, "text": text, "tokens": count,
                "seconds": round(time.perf_counter() - started, 3), "finish": finish}
        if item is not None:
            done["eval_answer"] = item.answers.get(mode)
        self.emit(done)
        return text

    def _pick_label(self, prompt: str, labels: list[str]) -> str:
        from recipes.evaluate import pick_labels

        t = self.trained
        end = t.tokenizer.eos_token or "" if t.renderer.prompt_template else t.renderer.end_of_turn
        return pick_labels(t.model, t.tokenizer, [prompt], [labels], end)[0]

    def _generate(self, prompt: str, mode: str) -> tuple[str, int, str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        from recipes.evaluate import encode_prompts

        t, s = self.trained, self.settings
        interrupt = self.interrupt

        class Interrupted(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), interrupt.is_set(), dtype=torch.bool,
                                  device=input_ids.device)

        ids = torch.tensor(encode_prompts(t.tokenizer, [prompt]), dtype=torch.long)
        device = next(t.model.parameters()).device
        pad_id = t.tokenizer.pad_token_id if t.tokenizer.pad_token_id is not None else t.stop_ids[0]
        streamer = TextDeltas(t.tokenizer, t.stop_ids,
                              lambda delta: self.emit({"type": "token", "mode": mode, "text": delta}))
        sampling = ({"do_sample": True, "temperature": s.temperature, "top_p": s.top_p}
                    if s.temperature > 0 else
                    {"do_sample": False, "temperature": None, "top_p": None})
        with torch.no_grad():
            out = t.model.generate(
                input_ids=ids.to(device), attention_mask=torch.ones_like(ids).to(device),
                max_new_tokens=s.max_new_tokens, num_beams=1, top_k=None, **sampling,
                eos_token_id=t.stop_ids, pad_token_id=pad_id, streamer=streamer,
                stopping_criteria=StoppingCriteriaList([Interrupted()]))
        new = out[0, ids.shape[1]:].tolist()
        cut = next((k for k, tok in enumerate(new) if tok in t.stop_ids), None)
        finish = ("stopped" if interrupt.is_set() else "stop_token" if cut is not None
                  else "max_new_tokens")
        new = new[:cut] if cut is not None else new
        return t.tokenizer.decode(new, skip_special_tokens=True).strip(), len(new), finish
