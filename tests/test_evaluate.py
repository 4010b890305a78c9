"""Greedy evaluation: prompts end where the response begins, stopping, batching, caching."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipes.data.render import Renderer
from recipes.data.types import Example
from recipes.evaluate import (
    EvalResult,
    build_eval_set,
    cached_eval,
    encode_prompts,
    generate,
    stop_token_ids,
)
from recipes.schema import Recipe

CHAT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is 2 plus 2?"},
    {"role": "assistant", "content": "2 plus 2 is 4."},
    {"role": "user", "content": "What is 3 plus 3?"},
    {"role": "assistant", "content": "3 plus 3 is 6."},
]


@pytest.mark.parametrize("fixture", ["tiny_llama_tokenizer", "tiny_llama3_tokenizer"])
def test_chat_prompt_ends_where_the_response_begins(request, fixture) -> None:
    tok = request.getfixturevalue(fixture)
    renderer = Renderer(tok, Recipe())
    [item] = build_eval_set([Example(3, CHAT)], renderer, limit=10)
    full, spans = renderer.render(Example(3, CHAT))
    assert full.startswith(item.prompt), "the prompt is the conversation up to the last answer"
    assert spans[-1][0] == len(item.prompt), "generation starts exactly at the response"
    assert item.reference == "3 plus 3 is 6." and item.question == "What is 3 plus 3?"


def test_prompt_template_prompt_ends_at_the_response(tiny_llama_tokenizer) -> None:
    recipe = Recipe(prompt_template="### Instruction:\n{instruction}\n\n### Response:\n{response}")
    renderer = Renderer(tiny_llama_tokenizer, recipe)
    ex = Example(1, [], {"instruction": "Say hi.", "input": "", "response": "hi"})
    [item] = build_eval_set([ex], renderer, limit=1)
    assert item.prompt == "### Instruction:\nSay hi.\n\n### Response:\n"
    assert renderer.render(ex)[1][0][0] == len(item.prompt)


def test_stop_tokens_include_the_end_of_turn(tiny_llama3_tokenizer, tiny_llama_tokenizer) -> None:
    tok = tiny_llama3_tokenizer
    ids = stop_token_ids(tok, Renderer(tok, Recipe()))
    assert tok.convert_tokens_to_ids("<|eot_id|>") in ids
    tok = tiny_llama_tokenizer
    assert stop_token_ids(tok, Renderer(tok, Recipe())) == [tok.eos_token_id]


def test_prompts_are_encoded_as_in_training(tiny_llama_tokenizer) -> None:
    tok = tiny_llama_tokenizer
    [ids] = encode_prompts(tok, ["<|user|>\nhi</s>\n<|assistant|>\n"])
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


@pytest.fixture(scope="module")
def tiny_model(tiny_llama_tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_llama_tokenizer.name_or_path)


def test_greedy_generation_is_deterministic_and_batched_in_order(tiny_model,
                                                                 tiny_llama_tokenizer) -> None:
    tok = tiny_llama_tokenizer
    renderer = Renderer(tok, Recipe())
    questions = ["What is 1 plus 1?", "What is the capital of Kenya and of Ghana and Peru?",
                 "Hi?"]
    prompts = [renderer.render_chat([{"role": "user", "content": q}], generation_prompt=True)
               for q in questions]
    stop = stop_token_ids(tok, renderer)
    a = generate(tiny_model, tok, prompts, max_new_tokens=8, stop_ids=stop, batch_size=2)
    b = generate(tiny_model, tok, prompts, max_new_tokens=8, stop_ids=stop, batch_size=2)
    singles = [generate(tiny_model, tok, [p], max_new_tokens=8, stop_ids=stop)[0]
               for p in prompts]
    assert a == b, "greedy decoding must be deterministic"
    assert a == singles, "batching (sorted, left-padded) must not change answers or their order"
    for answer in a:
        assert "<|" not in answer and "</s>" not in answer, answer


def test_cached_eval_computes_once(tmp_path: Path) -> None:
    calls = []

    def compute() -> EvalResult:
        calls.append(1)
        return EvalResult("base", ["x"], {"rouge1": 0.5}, [{"rouge1": 0.5}])

    first, hit1 = cached_eval(tmp_path, "base", "k1", compute)
    second, hit2 = cached_eval(tmp_path, "base", "k1", compute)
    assert (hit1, hit2) == (False, True) and first == second and len(calls) == 1
    cached_eval(tmp_path, "base", "k2", compute)
    assert len(calls) == 2, "a different model or eval set is a different cache entry"


def test_label_picking_returns_the_likeliest_candidate(tiny_model, tiny_llama_tokenizer) -> None:
    import torch

    from recipes.evaluate import pick_labels

    tok = tiny_llama_tokenizer
    prompt = "### Instruction:\nLabel it.\n\n### Response:\n"
    labels = ["Chanya", "Hasi", "Wastani"]
    [picked] = pick_labels(tiny_model, tok, [prompt], [labels], tok.eos_token)
    # Recompute each candidate's log-likelihood by hand and check the choice.
    scores = []
    for label in labels:
        [prompt_ids] = encode_prompts(tok, [prompt])
        [ids] = encode_prompts(tok, [prompt + label + tok.eos_token])
        with torch.no_grad():
            logprobs = torch.log_softmax(tiny_model(torch.tensor([ids])).logits[0], -1)
        scores.append(sum(float(logprobs[p - 1, ids[p]]) for p in range(len(prompt_ids), len(ids))))
    assert picked == labels[max(range(3), key=scores.__getitem__)]


def test_a_truncated_cache_file_is_recomputed(tmp_path: Path) -> None:
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "base-k.json").write_text('{"stage": "base", "outp', encoding="utf-8")
    result, hit = cached_eval(tmp_path, "base", "k",
                              lambda: EvalResult("base", ["x"], {"rouge1": 1.0}, [{"rouge1": 1.0}]))
    assert not hit and result.outputs == ["x"]
    assert cached_eval(tmp_path, "base", "k", lambda: None)[1], "the rewrite is readable"


def test_eval_of_a_staged_run_says_where_its_report_is(tmp_path: Path) -> None:
    from recipes.errors import RunDirError
    from recipes.evaluation import evaluate_run
    from recipes.registry import bundled

    run = tmp_path / "20260101-000000-gemma3-scratch"
    run.mkdir()
    (run / "recipe.yaml").write_text(bundled()["gemma3-scratch"].read_text(encoding="utf-8"),
                                     encoding="utf-8")
    (run / "events.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(RunDirError, match="evaluated by their own stages"):
        evaluate_run(run, base=False)
