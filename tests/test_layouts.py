"""Every dataset layout: detected from its columns, and exactly its answers trained.

The masking tests use the real TinyLlama-1.1B-Chat tokenizer and chat template from
../shared/realdata (skipped without it): for each layout's test file (tests/layout_files.py),
the trained tokens, decoded run by run, are exactly the assistant answers (and tool calls) with
their end-of-turn token, and every trained label equals its input id.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipes.data.layouts import Ambiguous, read_columns
from recipes.data.prepare import load_examples, prepare
from recipes.data.render import Renderer, tokenize
from recipes.data.types import IGNORE_INDEX
from recipes.errors import DataError
from recipes.schema import Recipe
from tests.conftest import REALDATA
from tests.layout_files import TOOL, write_layout, write_rows

TINYLLAMA = REALDATA / "tokenizers" / "TinyLlama-1.1B-Chat-v1.0"


@pytest.fixture(scope="module")
def real_tokenizer():
    if not TINYLLAMA.is_dir():
        pytest.skip(f"{TINYLLAMA} is absent")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TINYLLAMA))


def trained_runs(tok, item) -> list[str]:
    """The trained tokens, decoded one run of consecutive trained tokens at a time."""
    assert all(lab in (IGNORE_INDEX, i) for i, lab in zip(item.input_ids, item.labels,
                                                          strict=True))
    runs, current = [], []
    for token, label in zip(item.input_ids.tolist(), item.labels.tolist(), strict=True):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            runs.append(tok.decode(current))
            current = []
    if current:
        runs.append(tok.decode(current))
    return runs


def loaded(layout: str, folder: Path, **fields):
    path = write_layout(layout, folder)
    recipe = Recipe(dataset=str(path), max_seq_length=512, **fields)
    return recipe, load_examples(recipe, str(path))


def runs_of(tok, recipe, example) -> list[str]:
    [item] = tokenize([example], Renderer(tok, recipe), recipe.max_seq_length)
    return trained_runs(tok, item)


# ------------------------------------------------------------------------------ detection

@pytest.mark.parametrize(("layout", "columns"), [
    ("alpaca", {"instruction": "instruction", "response": "output", "input": "input",
                "system": "system", "history": "history"}),
    ("prompt_completion", {"instruction": "prompt", "response": "completion"}),
    ("qa", {"instruction": "question", "response": "answer"}),
    ("messages", {"messages": "messages", "tools": "tools"}),
    ("sharegpt", {"conversations": "conversations", "system": "system", "tools": "tools"}),
    ("text", {"text": "text"}),
])
def test_each_layout_is_detected_from_its_columns(tmp_path: Path, layout: str,
                                                 columns: dict) -> None:
    _, data = loaded(layout, tmp_path)
    assert (data.layout, data.columns) == (layout, columns)
    assert len(data.examples) == 12 and not data.skipped
    assert f"read as {layout}" in data.notes[0]


@pytest.mark.parametrize(("names", "layout", "roles"), [
    (["Question", "Answer", "qtype"], "qa", {"instruction": "Question", "response": "Answer"}),
    (["input", "output"], "qa", {"instruction": "input", "response": "output"}),
    (["prompt", "response"], "qa", {"instruction": "prompt", "response": "response"}),
    (["query", "response"], "qa", {"instruction": "query", "response": "response"}),
    (["instruction", "input", "output", "text"], "alpaca",
     {"instruction": "instruction", "response": "output", "input": "input"}),
    (["instruction", "response"], "alpaca", {"instruction": "instruction", "response": "response"}),
    (["prompt", "prompt_id", "messages"], "messages", {"messages": "messages"}),
    (["text", "url"], "text", {"text": "text"}),
])
def test_the_synonym_table(names: list[str], layout: str, roles: dict) -> None:
    reading = read_columns(names, Recipe())
    assert (reading.layout, reading.roles) == (layout, roles)


@pytest.mark.parametrize("names", [["question", "answer", "response"],
                                   ["messages", "instruction", "output"],
                                   ["question", "input", "answer"]])
def test_two_readings_are_an_error_naming_both_and_the_mapping(tmp_path: Path,
                                                               names: list[str]) -> None:
    with pytest.raises(Ambiguous):
        read_columns(names, Recipe())
    path = write_rows(tmp_path / "two.csv", [dict.fromkeys(names, "x")])
    with pytest.raises(DataError, match=r"row 2: two readings fit") as info:
        load_examples(Recipe(), str(path))
    assert info.value.fix.count("--set 'columns={") == 2
    # The mapping the error suggests picks one reading.
    pick = info.value.fix.split("--set 'columns={")[-1].split("}'")[0]
    mapping = dict(item.split(": ") for item in pick.split(", "))
    assert load_examples(Recipe(columns=mapping), str(path)).layout in ("qa", "alpaca")


def test_columns_mapping_wins_over_the_table(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.jsonl", [{"q": "Hi?", "a": "Hello.", "output": "no"}] * 3)
    data = load_examples(Recipe(columns={"prompt": "q", "answer": "a"}), str(path))
    assert data.columns == {"instruction": "q", "response": "a"}
    assert data.examples[0].messages[-1]["content"] == "Hello."


# -------------------------------------------------------------------- masking (real data)

@pytest.mark.realdata
def test_alpaca_trains_history_answers_and_the_output(real_tokenizer, tmp_path: Path) -> None:
    recipe, data = loaded("alpaca", tmp_path)
    first = data.examples[0]
    assert [m["role"] for m in first.messages] == ["system", "user", "assistant", "user",
                                                    "assistant"]
    assert first.messages[3]["content"] == "Add 0 and 3.\n\nShow the sum."
    assert runs_of(real_tokenizer, recipe, first) == ["Hello! Ask me a sum.</s>",
                                                      "0 plus 3 is 3.</s>"]
    assert runs_of(real_tokenizer, recipe, data.examples[1]) == ["1 plus 3 is 4.</s>"]


@pytest.mark.realdata
def test_prompt_completion_trains_the_completion_only(real_tokenizer, tmp_path: Path) -> None:
    recipe, data = loaded("prompt_completion", tmp_path)
    conversational, plain = data.examples[0], data.examples[1]
    assert [m["role"] for m in conversational.messages] == ["user", "assistant", "user",
                                                             "assistant"]
    # The prompt's own assistant turn ("Red.") is context, as in TRL: not trained.
    assert runs_of(real_tokenizer, recipe, conversational) == ["Blue, number 0.</s>"]
    assert runs_of(real_tokenizer, recipe, plain) == ["Colour 1 is red.</s>"]


@pytest.mark.realdata
def test_qa_pairs_train_the_answer(real_tokenizer, tmp_path: Path) -> None:
    recipe, data = loaded("qa", tmp_path)
    assert runs_of(real_tokenizer, recipe, data.examples[4]) == ["The capital is city 4.</s>"]


@pytest.mark.realdata
@pytest.mark.parametrize("layout", ["messages", "sharegpt"])
def test_tool_calls_are_trained_and_tool_results_are_not(real_tokenizer, tmp_path: Path,
                                                         layout: str) -> None:
    """TinyLlama's template has no tool support: tool use is written as documented text."""
    recipe, data = loaded(layout, tmp_path)
    renderer = Renderer(real_tokenizer, recipe)
    assert not renderer.native_tools
    text, _ = renderer.render(data.examples[0])
    schema = json.dumps({"type": "function", "function": TOOL}, ensure_ascii=False)
    assert f"<tools>\n{schema}\n</tools>" in text
    assert "<|user|>\n<tool_response>\n" in text
    answer = "It is sunny in Oslo.</s>" if layout == "messages" else "It rains in Oslo.</s>"
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call></s>'
    assert runs_of(real_tokenizer, recipe, data.examples[0]) == [call, answer]


@pytest.mark.realdata
def test_weight_zero_turns_are_shown_not_trained(real_tokenizer, tmp_path: Path) -> None:
    recipe, data = loaded("messages", tmp_path)
    lima = data.examples[1]
    assert lima.messages[2] == {"role": "assistant", "content": "Let me look.", "weight": 0}
    assert runs_of(real_tokenizer, recipe, lima) == ["Rain in Lima.</s>"]


TOOLS_TEMPLATE = (  # a ChatML template that renders tools, tool calls and tool results
    "{% if tools %}<|im_start|>system\n# Tools\n<tools>\n{% for t in tools %}{{ t | tojson }}\n"
    "{% endfor %}</tools><|im_end|>\n{% endif %}"
    "{% for m in messages %}"
    "{% if m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n"
    "</tool_response><|im_end|>\n"
    "{% elif m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant\n"
    "{% for c in m.tool_calls %}<tool_call>\n{{ {'name': c.function.name, 'arguments': "
    "c.function.arguments} | tojson }}\n</tool_call>{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.mark.realdata
def test_a_template_with_tool_support_renders_tool_use_itself(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(TINYLLAMA))
    tok.chat_template = TOOLS_TEMPLATE
    recipe, data = loaded("sharegpt", tmp_path)
    renderer = Renderer(tok, recipe)
    assert renderer.native_tools
    text, _ = renderer.render(data.examples[0])
    assert text.startswith("<|im_start|>system\n# Tools\n<tools>\n{\"type\": \"function\"")
    assert runs_of(tok, recipe, data.examples[0]) == [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
        '<|im_end|>', "It rains in Oslo.<|im_end|>"]


@pytest.mark.realdata
def test_plain_text_is_packed_and_every_token_trained(real_tokenizer, tmp_path: Path) -> None:
    path = write_layout("text", tmp_path)
    recipe = Recipe(dataset=str(path), max_seq_length=64, val_fraction=0.1, test_fraction=0.1)
    data = load_examples(recipe, str(path))
    prepared = prepare(recipe, real_tokenizer, data.examples, data.skipped, data.n_rows,
                       source=str(path))
    docs = prepared.splits.train
    expected = []
    for doc in docs:
        expected += [real_tokenizer.bos_token_id,
                     *real_tokenizer(doc.text, add_special_tokens=False)["input_ids"],
                     real_tokenizer.eos_token_id]
    stream = [t for item in prepared.train for t in item.input_ids.tolist()]
    assert stream == expected, "documents in order, each BOS ... EOS, nothing lost"
    assert all(len(item.input_ids) == 64 for item in prepared.train[:-1])
    assert all((item.labels == item.input_ids).all() for item in prepared.train + prepared.val)
    assert prepared.splits.test == [] and len(prepared.splits.held_out) == 2
    assert prepared.stats["trained_token_share"] == 1.0
    assert any("packed 10 train documents" in n for n in prepared.notes)


def test_set_dataset_redetects_the_layout(tmp_path: Path) -> None:
    from recipes.registry import find_recipe
    from recipes.schema import load_recipe

    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\ndataset: data/demo_qa.jsonl\ndataset_format: sharegpt\n"
                    "columns: {conversations: conversations}\nsplit_by: source\n",
                    encoding="utf-8")
    other = load_recipe(mine, overrides=["dataset=qa.csv"])
    assert (other.dataset_format, other.columns, other.split_by) == ("auto", {}, "")
    said = load_recipe(mine, overrides=["dataset=qa.csv", "dataset_format=instruction"])
    assert (said.dataset_format, said.columns) == ("instruction", {})
    built = load_recipe(find_recipe("saudial-lfm2"), overrides=["dataset=mine.xlsx"])
    assert (built.dataset_builder, built.dataset_format, built.split_by) == (
        "saudial", "instruction", "input"), "a builder reads its own layout"


def test_the_readme_examples_load_as_documented(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("One example row of each:\n\n```jsonl\n")[1].split("```")[0]
    found = []
    for i, line in enumerate(block.strip().splitlines()):
        path = tmp_path / f"{i}.jsonl"
        path.write_text(line + "\n", encoding="utf-8")
        data = load_examples(Recipe(), str(path))
        found.append(data.layout)
    assert found == ["messages", "sharegpt", "prompt_completion", "alpaca", "qa", "text"]
