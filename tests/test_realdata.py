"""The pipeline against real public files (../shared/realdata); skipped when it is absent.

Checks that the chat templates slothlab writes for tiny mode render exactly what the real
TinyLlama tokenizer renders, that masking on the real tokenizer trains only the answer and
its </s>, that a corrupted real tokenizer gives a clear error, and that the CSV loader copes
with real exports (quoted multi-line fields, CRLF line endings).
"""

from __future__ import annotations

import pytest

from recipes.data.prepare import load_examples
from recipes.data.render import Renderer, compile_template, tokenize
from recipes.data.types import IGNORE_INDEX, Example
from recipes.models import CHAT_TEMPLATES
from recipes.schema import Recipe

from .conftest import REALDATA

pytestmark = pytest.mark.realdata
TINYLLAMA = REALDATA / "tokenizers" / "TinyLlama-1.1B-Chat-v1.0"
BROKEN = REALDATA / "tokenizers" / "TinyLlama-1.1B-Chat-v1.0__nbsp-corrupted"

CONVERSATIONS = [
    [{"role": "user", "content": "What is diabetes?"},
     {"role": "assistant", "content": "A chronic condition affecting blood sugar."}],
    [{"role": "system", "content": "You are a medical interpreter."},
     {"role": "user", "content": "Où est la pharmacie ?"},
     {"role": "assistant", "content": "Where is the pharmacy?"},
     {"role": "user", "content": "Merci."},
     {"role": "assistant", "content": "Thank you."}],
]


@pytest.fixture(scope="module")
def real_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TINYLLAMA))


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=["single", "multi"])
@pytest.mark.parametrize("generation_prompt", [False, True])
def test_zephyr_template_matches_the_real_one(real_tokenizer, conversation, generation_prompt):
    ours = compile_template(CHAT_TEMPLATES["zephyr"]).render(
        messages=conversation, add_generation_prompt=generation_prompt,
        bos_token=real_tokenizer.bos_token, eos_token=real_tokenizer.eos_token)
    theirs = real_tokenizer.apply_chat_template(conversation, tokenize=False,
                                                add_generation_prompt=generation_prompt)
    assert ours == theirs


def test_masking_on_the_real_tokenizer(real_tokenizer) -> None:
    tok = real_tokenizer
    [t] = tokenize([Example(1, CONVERSATIONS[1])], Renderer(tok, Recipe()), max_len=512)
    assert t.input_ids[0] == tok.bos_token_id == 1
    trained = [i for i, lab in zip(t.input_ids, t.labels, strict=True) if lab != IGNORE_INDEX]
    assert tok.decode(trained) == "Where is the pharmacy?</s>Thank you.</s>"
    # Same ids as the real tokenizer gives the whole rendered conversation.
    reference = tok(tok.apply_chat_template(CONVERSATIONS[1], tokenize=False))["input_ids"]
    assert t.input_ids.tolist() == reference
    first = next(i for i, lab in enumerate(t.labels) if lab != IGNORE_INDEX)
    assert tok.decode(t.input_ids[:first]).endswith("<|assistant|>\n")


def test_corrupted_tokenizer_is_a_clear_error() -> None:
    from recipes.backends.reference import load_tokenizer
    from recipes.errors import SlothlabError

    with pytest.raises(SlothlabError) as info:
        load_tokenizer(BROKEN, Recipe())
    assert "tokenizer" in info.value.what and str(BROKEN) in info.value.what
    assert "re-download" in info.value.fix


def test_medquad_kaggle_csv_loads() -> None:
    path = REALDATA / "medquad" / "medquad_head.csv"
    recipe = Recipe(dataset_format="instruction",
                    columns={"instruction": "question", "response": "answer"})
    examples, skipped, n = load_examples(recipe, str(path))
    assert n == 300 and len(examples) + sum(skipped.values()) == 300
    assert examples[0].fields["instruction"] == "What is (are) Glaucoma ?"
    assert "\n" not in examples[0].fields["instruction"]


def test_afrimedqa_crlf_csv_loads() -> None:
    path = REALDATA / "afrimedqa" / "afrimed-qa-v2_gpt-4o_mcq_results_head200.csv"
    recipe = Recipe(dataset_format="instruction",
                    columns={"instruction": "question", "response": "rationale"})
    examples, skipped, n = load_examples(recipe, str(path))
    assert n == 200
    assert not any("\r" in e.fields["response"] for e in examples), "CRLF must not leak into text"


@pytest.mark.parametrize(("folder", "ours", "specials"), [
    ("LFM2-1.2B", "chatml", {"bos_token": "<|startoftext|>", "eos_token": "<|im_end|>"}),
    ("Meta-Llama-3-8B-Instruct", "llama-3.1",
     {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
])
@pytest.mark.parametrize("generation_prompt", [False, True])
def test_builtin_templates_match_the_real_ones(folder, ours, specials, generation_prompt) -> None:
    """Tiny mode's LFM2 and Llama-3 templates render exactly what the real templates render."""
    import json

    path = REALDATA / "tokenizers" / folder
    source = (path / "chat_template.jinja").read_text(encoding="utf-8") if (
        path / "chat_template.jinja").exists() else json.loads(
        (path / "tokenizer_config.json").read_text(encoding="utf-8"))["chat_template"]
    for conversation in CONVERSATIONS:
        kwargs = {"messages": conversation, "add_generation_prompt": generation_prompt, **specials}
        assert compile_template(CHAT_TEMPLATES[ours]).render(**kwargs) == \
            compile_template(source).render(**kwargs)
