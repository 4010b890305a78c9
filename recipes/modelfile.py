"""Ollama Modelfiles: a GGUF, the model's chat template as Ollama's Go template, its stop
tokens and the eval's decoding (greedy).

    text = modelfile_for("demo-q8_0.gguf", tokenizer, recipe, ["</s>"], context=128)

Ollama renders a chat with a Go ``text/template`` over ``.Messages`` (role, content; system
messages included), then its tokenizer adds BOS as the GGUF says (``add_bos_token``). So each
Go template below renders exactly what the model's Jinja chat template renders with
``add_generation_prompt=True`` after a user turn, minus a leading BOS (tests/test_modelfile.py
runs both and compares the strings). A model whose template is none of the known ones gets no
TEMPLATE line: Ollama then reads the chat template stored in the GGUF itself.
"""

from __future__ import annotations

import string
from typing import Any

from recipes.models import CHAT_TEMPLATES
from recipes.schema import Recipe

# Go templates for the chat formats slothlab knows (recipes/models.py); {eos} is the EOS string.
GO_TEMPLATES = {
    "zephyr": ("{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}{eos}\n{{ end }}"
               "<|assistant|>\n"),
    "llama-3.1": ("{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
                  "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant"
                  "<|end_header_id|>\n\n"),
    "chatml": ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
               "{{ end }}<|im_start|>assistant\n"),
    "gemma": ('{{- range .Messages }}<start_of_turn>{{ if eq .Role "assistant" }}model'
              "{{ else }}{{ .Role }}{{ end }}\n{{ .Content }}<end_of_turn>\n{{ end }}"
              "<start_of_turn>model\n"),
}
# Conversations the known formats are recognised by (a model's own template may be written
# differently and still render the same text).
PROBES = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
     {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2 + 2?"}],
    [{"role": "user", "content": "One question"}],
]


def _specials(tokenizer: Any) -> dict[str, str]:
    return {name: getattr(tokenizer, name, None) or ""
            for name in ("bos_token", "eos_token", "pad_token", "unk_token")}


def render_chat(template: str, tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """``template`` (Jinja) rendered as transformers renders it, with a generation prompt."""
    from recipes.data.render import compile_template

    return compile_template(template).render(messages=messages, add_generation_prompt=True,
                                             **_specials(tokenizer))


def chat_format(tokenizer: Any) -> str | None:
    """The known format the tokenizer's chat template renders as, or None."""
    source = getattr(tokenizer, "chat_template", None)
    if not isinstance(source, str) or not source:
        return None
    for name, known in CHAT_TEMPLATES.items():
        if source == known:
            return name
    for name, known in CHAT_TEMPLATES.items():
        try:
            if all(render_chat(source, tokenizer, p) == render_chat(known, tokenizer, p)
                   for p in PROBES):
                return name
        except Exception:  # a template that refuses the probe is not this format
            continue
    return None


def go_chat_template(tokenizer: Any) -> str | None:
    name = chat_format(tokenizer)
    if name is None:
        return None
    return GO_TEMPLATES[name].replace("{eos}", _go_text(tokenizer.eos_token or ""))


def go_prompt_template(prompt_template: str) -> str:
    """A recipe's ``prompt_template`` as an Ollama template: the user's message is
    ``{instruction}``; the ``{input}`` paragraph is dropped, as training drops it when empty."""
    head = prompt_template.split("{response}", 1)[0]
    head = "\n\n".join(p for p in head.split("\n\n") if "{input}" not in p)
    out = []
    for literal, field, _, _ in string.Formatter().parse(head):
        out.append(_go_text(literal))
        if field == "instruction":
            out.append("{{ .Prompt }}")
    return "".join(out) + "{{ .Response }}"


def _go_text(text: str) -> str:
    """Literal text inside a Go template: only ``{{`` would start an action."""
    return text.replace("{{", '{{ "{{" }}')


def _quote(value: str) -> str:
    """A Modelfile value: triple quotes keep newlines and quotes as they are."""
    if '"""' in value:
        raise ValueError("a Modelfile value cannot contain three double quotes in a row")
    return f'"""{value}"""'


def modelfile_for(gguf_file: str, tokenizer: Any, recipe: Recipe, stops: list[str], *,
                  context: int | None = None) -> str:
    """The Modelfile text for ``gguf_file`` (a path relative to the Modelfile's folder)."""
    lines = [f"# Ollama Modelfile written by `slothlab export` for recipe {recipe.name}",
             "# Create the model: ollama create NAME -f Modelfile", "",
             f"FROM ./{gguf_file}"]
    if recipe.prompt_template:
        lines.append(f"TEMPLATE {_quote(go_prompt_template(recipe.prompt_template))}")
    else:
        template = go_chat_template(tokenizer)
        if template is None:
            lines.append("# No TEMPLATE: the model's chat template is not one slothlab can "
                         "write as a Go template; Ollama uses the one stored in the GGUF.")
        else:
            lines.append(f"TEMPLATE {_quote(template)}")
        if recipe.system_prompt:
            lines.append(f"SYSTEM {_quote(recipe.system_prompt)}")
    lines.append("# Stop where the eval stops: the end-of-turn token.")
    lines += [f'PARAMETER stop "{stop}"' if '"' not in stop else f"PARAMETER stop {_quote(stop)}"
              for stop in stops if stop]
    lines += ["# The eval's decoding: greedy (temperature 0), no repeat penalty (Ollama's "
              "default is 1.1),", "# at most max_new_tokens tokens; raise num_predict for "
              "longer answers.",
              "PARAMETER temperature 0", "PARAMETER repeat_penalty 1",
              f"PARAMETER num_predict {recipe.max_new_tokens}"]
    if context and context < 4096:
        lines += ["# The model's whole context window (it is smaller than Ollama's default).",
                  f"PARAMETER num_ctx {context}"]
    return "\n".join(lines) + "\n"


def ollama_command(name: str, modelfile: Any) -> str:
    return f"ollama create {name} -f {modelfile}"
