"""`slothlab export` on tiny models of every architecture the recipes use (Llama, LFM2, Gemma 3).

Runs are made without training (tests/export_runs.py: a tiny base plus a random LoRA adapter).
What is checked, and the tolerances:
- merging in fp32 equals base + adapter (peft) to 1e-4 in the logits; the saved 16-bit folder
  loads with plain transformers and its logits stay within 3 % (bf16) / 0.5 % (f16) of the
  largest logit, while the adapter itself moves them by far more than that;
- the GGUF read back with gguf.GGUFReader has the merged model's architecture, tensor names and
  shapes, vocabulary, special tokens and chat template; f16 tensors equal the f16 merged weights
  exactly and q8_0 ones are within half a quantisation step (plus the f16 rounding of the block
  scale) of the bf16 merged weights, after the converter's documented layout changes (Llama's
  Q/K rotary permutation, Gemma's +1 on norm weights);
- tiny mode's byte-level BPE miniatures (Llama-3, LFM2) are refused for GGUF in one message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipes.export import ExportError, plan_export, run_export
from recipes.merge import load_merged
from tests.export_runs import make_run

pytestmark = pytest.mark.slow

MODELS = {"llama": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
          "llama3": "meta-llama/Llama-3.2-3B-Instruct",
          "lfm2": "LiquidAI/LFM2-1.2B",
          "gemma3": "google/gemma-3-270m"}
GGUF_ARCH = {"llama": "llama", "gemma3": "gemma3"}  # the ones whose miniature converts
CHAT = [{"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is 2 plus 2?"},
        {"role": "assistant", "content": "2 plus 2 is 4."}]


@pytest.fixture(scope="module")
def run_of(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path):
    root = tmp_path_factory.mktemp("export-runs")
    made: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in made:
            made[arch] = make_run(root, MODELS[arch], tiny_cache)
        return made[arch]
    return get


@pytest.fixture(scope="module")
def export_of(run_of):
    done: dict[tuple[str, str, str], object] = {}

    def get(arch: str, target: str, dtype: str):
        key = (arch, target, dtype)
        if key not in done:
            done[key] = run_export(plan_export(run_of(arch), target, dtype))
        return done[key]
    return get


def _ids(run_dir: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run_dir / "adapter")
    text = tok.apply_chat_template(CHAT, tokenize=False)
    return tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]


def _reference_logits(run_dir: Path):
    """Base + adapter through peft, in fp32: what the merged model must reproduce."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(run_dir / "base", dtype=torch.float32)
    ids = _ids(run_dir)
    with torch.no_grad():
        plain = base(ids).logits
        tuned = PeftModel.from_pretrained(base, run_dir / "adapter")(ids).logits
    return plain, tuned


@pytest.mark.parametrize("arch", MODELS)
def test_fp32_merge_equals_base_plus_adapter(run_of, arch: str) -> None:
    import torch

    from recipes.schema import load_recipe

    run_dir = run_of(arch)
    plain, tuned = _reference_logits(run_dir)
    assert (tuned - plain).abs().max() > 0.5, "the adapter must change the logits"
    merged = load_merged(str(run_dir / "base"), run_dir / "adapter",
                         load_recipe(run_dir / "recipe.yaml"), torch.float32)
    with torch.no_grad():
        logits = merged(_ids(run_dir)).logits
    assert (logits - tuned).abs().max() < 1e-4


@pytest.mark.parametrize("arch", MODELS)
@pytest.mark.parametrize("dtype, tolerance", [("bf16", 0.03), ("f16", 0.005)])
def test_merged_folder_loads_without_peft(run_of, export_of, arch: str, dtype: str,
                                          tolerance: float) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    run_dir = run_of(arch)
    result = export_of(arch, "merged", dtype)
    out = result.out
    assert out == run_dir / "export" / f"merged-{dtype}"
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert not list(out.parent.glob(".*partial*")), "no temporary folder left behind"
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == {"bf16": torch.bfloat16, "f16": torch.float16}[dtype]
    assert not any("lora" in name for name in model.state_dict())
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    _, tuned = _reference_logits(run_dir)
    with torch.no_grad():
        logits = model(_ids(run_dir)).logits
    assert (logits - tuned).abs().max() <= tolerance * tuned.abs().max()
    tokenizer = AutoTokenizer.from_pretrained(out)
    trained = AutoTokenizer.from_pretrained(run_dir / "adapter")
    assert tokenizer.chat_template == trained.chat_template
    assert tokenizer.apply_chat_template(CHAT) == trained.apply_chat_template(CHAT)
    generation = GenerationConfig.from_pretrained(out)
    assert generation.do_sample is False and generation.max_new_tokens == 24
    stops = generation.eos_token_id if isinstance(generation.eos_token_id, list) \
        else [generation.eos_token_id]
    assert trained.eos_token_id in stops


def _gguf_fields(reader) -> dict:
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key.endswith(("tokens", "scores", "token_type")):
            out[key] = [field.contents(i) for i in range(len(field.data))]
        else:
            out[key] = field.contents()
    return out


def _expected_tensor(name: str, weight, arch: str, config: dict):
    """The merged weight as the converter stores it (its documented layout changes)."""
    if arch == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
        from conversion.llama import LlamaModel  # llama.cpp's own rotary permutation

        heads = config["num_attention_heads"]
        kv = heads if "q_proj" in name else config["num_key_value_heads"]
        return LlamaModel.permute(weight, heads, kv)
    if arch == "gemma3" and name.endswith("norm.weight"):
        return weight + 1.0  # Gemma3RMSNorm multiplies by (1 + w); GGUF stores the factor
    return weight


@pytest.mark.parametrize("arch", GGUF_ARCH)
@pytest.mark.parametrize("dtype, reference", [("f16", "f16"), ("q8_0", "bf16")])
def test_gguf_holds_the_merged_model(export_of, arch: str, dtype: str, reference: str) -> None:
    import gguf
    import numpy as np
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    result = export_of(arch, "gguf", dtype)
    merged = export_of(arch, "merged", reference).out
    [path] = [Path(p) for p in result.files if p.endswith(".gguf")]
    assert path.name.endswith(f"-{dtype}.gguf")
    reader = gguf.GGUFReader(path)
    fields = _gguf_fields(reader)
    config = json.loads((merged / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(merged)

    assert fields["general.architecture"] == GGUF_ARCH[arch]
    assert fields[f"{GGUF_ARCH[arch]}.block_count"] == config["num_hidden_layers"]
    assert fields["tokenizer.ggml.model"] == "llama"  # SentencePiece
    assert fields["tokenizer.ggml.tokens"] == tokenizer.convert_ids_to_tokens(
        list(range(len(tokenizer))))
    assert fields["tokenizer.ggml.bos_token_id"] == tokenizer.bos_token_id
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert fields["tokenizer.ggml.padding_token_id"] == tokenizer.pad_token_id
    assert fields["tokenizer.ggml.unknown_token_id"] == tokenizer.unk_token_id
    assert fields["tokenizer.ggml.add_bos_token"] is True
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template

    weights = load_file(merged / "model.safetensors")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[GGUF_ARCH[arch].upper()],
                                     config["num_hidden_layers"])
    expected = {names.get_name(n, try_suffixes=(".weight",)): (n, w) for n, w in weights.items()}
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == set(expected)
    for gguf_name, tensor in tensors.items():
        hf_name, weight = expected[gguf_name]
        want = _expected_tensor(hf_name, weight.float(), arch, config).numpy()
        got = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(want.shape)
        assert tuple(int(x) for x in reversed(tensor.shape)) == want.shape, gguf_name
        if tensor.tensor_type == gguf.GGMLQuantizationType.Q8_0:
            blocks = want.reshape(-1, 32)
            step = np.abs(blocks).max(axis=1, keepdims=True) / 127  # the block's scale
            assert (np.abs(got.reshape(-1, 32) - blocks) <= 0.57 * step + 1e-7).all(), gguf_name
        else:  # F16 from f16 weights, F32 for norms: the very same numbers
            assert np.array_equal(got.astype(np.float32), want.astype(np.float32)), gguf_name


@pytest.mark.parametrize("arch", ["llama3", "lfm2"])
def test_byte_level_bpe_miniatures_are_refused_for_gguf(run_of, arch: str) -> None:
    with pytest.raises(ExportError) as info:
        plan_export(run_of(arch), "gguf")
    error = info.value
    assert MODELS[arch] in error.what and "byte-level BPE" in error.what
    assert "--to merged works" in error.fix
    assert not (run_of(arch) / "export" / "gguf-f16").exists()


def test_ollama_export_writes_gguf_and_modelfile(run_of, export_of) -> None:
    from transformers import AutoTokenizer

    from recipes.modelfile import go_chat_template

    result = export_of("llama", "ollama", "q8_0")
    files = {Path(p).name for p in result.files}
    gguf_file = "tinyllama-1.1b-chat-v1.0-q8_0.gguf"
    assert {gguf_file, "Modelfile"} <= files
    text = (result.out / "Modelfile").read_text()
    assert f"FROM ./{gguf_file}\n" in text
    tokenizer = AutoTokenizer.from_pretrained(run_of("llama") / "adapter")
    assert f'TEMPLATE """{go_chat_template(tokenizer)}"""' in text
    assert 'PARAMETER stop "</s>"' in text and "PARAMETER temperature 0" in text
    assert result.command == f"ollama create tinyllama-1.1b-chat-v1.0 -f {result.out / 'Modelfile'}"
