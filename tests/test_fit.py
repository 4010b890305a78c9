"""The VRAM estimator (kernels_check.fit): arithmetic, verdicts, and its components against a
really quantised model measured on a CPU.

The measured side builds tiny Llama / LFM2 / Gemma 3 models from configs, saves them, loads
them back through transformers' BitsAndBytesConfig (NF4, double quantisation: real
bitsandbytes Linear4bit layers), puts peft LoRA on top, and measures: bytes of the 4-bit
weights with their quantisation constants, the LoRA parameter count, bitsandbytes AdamW8bit
state after one step, and the bytes saved for backward (torch.autograd.graph.saved_tensors_hooks,
deduplicated by storage, parameters excluded). Each must match the estimate within 5 %.
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kernels_check import fit
from recipes.models import KNOWN_MODELS, model_info
from recipes.schema import Recipe, load_recipe

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 0.05


# -- pure arithmetic (no torch) ------------------------------------------------------------------


def test_fit_module_does_not_import_torch():
    code = ("import sys, kernels_check.fit as f; from recipes.schema import Recipe; "
            "f.estimate(Recipe(model='meta-llama/Llama-3.2-3B-Instruct'), 6.0); "
            "f.estimate(Recipe(model='LiquidAI/LFM2-1.2B', tiny=True), None); "
            "bad = [m for m in ('torch', 'transformers', 'unsloth') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"fit imported {proc.stdout.strip()} {proc.stderr[-500:]}"


@pytest.mark.parametrize("model", sorted(KNOWN_MODELS))
def test_table_architectures_match_published_parameter_counts(model):
    info = KNOWN_MODELS[model]
    if not info.params or not info.verified:
        pytest.skip(f"{model}: no verified parameter count")
    arch = fit.arch_from_model_info(info)
    assert abs(arch.params() - info.params) / info.params < 0.005, (model, arch.params())


def test_lfm2_linears_are_conv_and_attention_blocks():
    arch = fit.arch_from_model_info(model_info("LiquidAI/LFM2-1.2B"))
    by_group = {(lin.name, lin.input_group): lin for lin in arch.linears()}
    assert by_group[("in_proj", "conv_in")].count == 10
    assert by_group[("in_proj", "conv_in")].fan_out == 3 * 2048
    assert by_group[("out_proj", "conv_out")].count == 10
    assert by_group[("out_proj", "attn_out")].count == 6
    assert by_group[("q_proj", "attn_in")].count == 6
    assert {by_group[(n, g)].count for n, g in (("w1", "mlp_in"), ("w3", "mlp_in"),
                                                 ("w2", "mlp_down"))} == {16}


def test_arch_from_config_reads_lfm2_effective_ff_dim_and_layer_types():
    config = {"model_type": "lfm2", "hidden_size": 2048, "intermediate_size": 12288,
              "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
              "vocab_size": 65536, "block_auto_adjust_ff_dim": True,
              "block_ffn_dim_multiplier": 1.0, "block_multiple_of": 256,
              "layer_types": ["conv"] * 10 + ["full_attention"] * 6}
    arch = fit.arch_from_config(config)
    assert (arch.intermediate, arch.conv_layers, arch.tied) == (8192, 10, True)
    table = fit.arch_from_model_info(model_info("LiquidAI/LFM2-1.2B"))
    assert arch.params() == table.params()


def test_all_linear_targets_every_linear_layer():
    arch = fit.arch_from_model_info(model_info("LiquidAI/LFM2-1.2B"))
    w_all = fit.Workload(batch=1, seq=128, lora_r=8, targets=None)
    names = frozenset(lin.name for lin in arch.linears())
    w_named = replace(w_all, targets=names)
    assert fit.lora_param_count(arch, w_all) == fit.lora_param_count(arch, w_named) > 0
    recipe = Recipe(model="LiquidAI/LFM2-1.2B", target_modules=["all-linear"])
    assert fit.workload_for(recipe).targets is None


def test_estimate_report_contract():
    recipe = Recipe(model="meta-llama/Llama-3.2-3B-Instruct", batch_size=2, max_seq_length=2048)
    report = fit.estimate(recipe, 8.0)
    assert report.verdict in ("fits", "tight", "does not fit")
    assert report.vram_gib == 8.0 and report.model == recipe.model
    assert math.isclose(report.total_gib, sum(report.components.values()), rel_tol=1e-9)
    for name in ("weights_4bit", "weights_16bit", "lora_params", "lora_grads", "optimizer_state",
                 "activations", "logits", "cuda_context", "allocator_overhead"):
        assert report.components[name] >= 0, name
    assert set(report.activations_by_mode) == {"none", "standard", "offload"}
    modes = report.activations_by_mode
    assert modes["none"] > modes["standard"] > modes["offload"]
    assert report.max_batch_size >= 1 and report.max_seq_length >= 16
    assert isinstance(report.to_dict(), dict)


def test_verdicts_and_advice():
    recipe = Recipe(model="meta-llama/Llama-3.2-3B-Instruct", batch_size=8, max_seq_length=4096,
                    gradient_accumulation_steps=2)
    big = fit.estimate(recipe, 80.0)
    assert big.verdict == "fits" and big.advice == ""
    small = fit.estimate(recipe, 6.0)
    assert small.verdict == "does not fit"
    assert "batch_size=" in small.advice or "max_seq_length=" in small.advice, small.advice
    # the advice holds: applying the suggested sequence length makes it fit
    fitted = fit.estimate(replace(recipe, max_seq_length=small.max_seq_length), 6.0)
    assert fitted.verdict in ("fits", "tight")
    over = fit.estimate(replace(recipe, max_seq_length=small.max_seq_length + 64), 6.0)
    assert over.verdict == "does not fit"
    # tight = within 10 % of the card
    tight_card = big.total_gib / 0.95
    assert fit.estimate(recipe, tight_card).verdict == "tight"


def test_model_too_big_for_any_setting_says_so():
    recipe = Recipe(model="meta-llama/Llama-3.2-3B-Instruct")
    report = fit.estimate(recipe, 2.0)
    assert report.verdict == "does not fit"
    assert report.max_batch_size == 0 and report.max_seq_length == 0
    assert "smaller model" in report.advice


def test_unknown_model_is_unknown_not_an_exception(tmp_path):
    report = fit.estimate(Recipe(model="someone/never-heard-of-it"), 8.0)
    assert report.verdict == "unknown" and "not in the model table" in report.reason
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    report = fit.estimate(Recipe(model=str(broken)), 8.0)
    assert report.verdict == "unknown" and "config.json" in report.reason


def test_local_config_json_is_used(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(
        '{"model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632, '
        '"num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4, '
        '"vocab_size": 32000, "tie_word_embeddings": false}')
    local = fit.estimate(Recipe(model=str(folder)), 8.0)
    table = fit.estimate(Recipe(model="TinyLlama/TinyLlama-1.1B-Chat-v1.0"), 8.0)
    assert local.verdict == table.verdict and math.isclose(local.total_gib, table.total_gib)
    assert "config.json" in local.arch_source


def test_no_card_size_gives_unknown_with_totals():
    report = fit.estimate(Recipe(model="TinyLlama/TinyLlama-1.1B-Chat-v1.0"))
    assert report.verdict == "unknown" and report.total_gib > 0 and "no card size" in report.reason


def test_bundled_demo_recipe_fits_anything():
    report = fit.estimate(load_recipe(ROOT / "recipes/configs/demo.yaml"), 6.0)
    assert report.verdict == "fits" and report.arch_source == "tiny-mode miniature"


def test_more_memory_for_longer_sequences_and_bigger_rank():
    base = Recipe(model="LiquidAI/LFM2-1.2B", max_seq_length=1024)
    t0 = fit.estimate(base, 8.0).total_gib
    assert fit.estimate(replace(base, max_seq_length=2048), 8.0).total_gib > t0
    assert fit.estimate(replace(base, lora_r=64), 8.0).total_gib > t0
    assert fit.estimate(replace(base, gradient_checkpointing=False), 8.0).total_gib > t0


# -- against a really quantised model on the CPU -------------------------------------------------

TINY_KW = dict(hidden_size=128, intermediate_size=256, num_attention_heads=4,
               num_key_value_heads=2, vocab_size=2048, max_position_embeddings=512)
CASES = {
    # name: (model_type, layers, extra config, r, targets, batch, seq, dropout, precision)
    "llama-all-r8": ("llama", 2, {"tie_word_embeddings": False}, 8, None, 2, 64, 0.0, "fp32"),
    "llama-qv-r64-dropout": ("llama", 2, {"tie_word_embeddings": False}, 64,
                             ["q_proj", "v_proj"], 1, 96, 0.1, "fp32"),
    "lfm2-conv+attn": ("lfm2", 3, {"block_auto_adjust_ff_dim": False,
                                   "layer_types": ["conv", "full_attention", "conv"]},
                       16, None, 2, 48, 0.0, "fp32"),
    "gemma3-r8": ("gemma3_text", 2, {"head_dim": 32, "sliding_window": 512}, 8, None, 1, 64,
                  0.0, "fp32"),
    # the reference backend as on a GPU: bf16 compute under autocast, unquantised parameters
    # upcast to fp32 by prepare_model_for_kbit_training (CPU autocast stands in for CUDA's)
    "llama-amp-bf16": ("llama", 2, {"tie_word_embeddings": False}, 8, None, 2, 64, 0.0, "amp"),
}


def _measure(case: str, tmp_path: Path) -> tuple[fit.Arch, fit.Workload, dict[str, int]]:
    import torch
    from bitsandbytes.nn import Linear4bit
    from bitsandbytes.optim import AdamW8bit
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    model_type, layers, extra, r, targets, batch, seq, dropout, precision = CASES[case]
    amp = precision == "amp"
    dtype = torch.bfloat16 if amp else torch.float32
    config = AutoConfig.for_model(model_type, num_hidden_layers=layers, **TINY_KW, **extra)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=quant, dtype=dtype)
    arch = fit.arch_from_config(model.config.to_dict())
    if model_type.startswith("gemma3"):
        arch = replace(arch, rope_sets=1)  # both miniature layers are sliding-window layers
    measured: dict[str, int] = {}

    frozen: set[int] = set()
    four = 0
    for module in model.modules():
        if isinstance(module, Linear4bit):
            qs = module.weight.quant_state
            for t in (module.weight.data, qs.absmax, qs.code, qs.offset,
                      qs.state2.absmax, qs.state2.code):
                ptr = t.untyped_storage().data_ptr()
                if ptr not in frozen:
                    frozen.add(ptr)
                    four += t.untyped_storage().nbytes()
    measured["weights_4bit"] = four

    if amp:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    peft_model = get_peft_model(model, LoraConfig(
        r=r, lora_alpha=2 * r, lora_dropout=dropout, task_type="CAUSAL_LM",
        target_modules=targets if targets else "all-linear"))
    peft_model.train()
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    measured["lora_params"] = sum(p.numel() for p in trainable)
    frozen |= {p.untyped_storage().data_ptr() for p in peft_model.parameters()}

    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in frozen:
            saved.setdefault(storage.data_ptr(), storage.nbytes())
        return t

    ids = torch.randint(0, TINY_KW["vocab_size"], (batch, seq))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = peft_model(input_ids=ids, labels=ids, use_cache=False)
    measured["saved_for_backward"] = sum(saved.values())
    out.loss.backward()
    optimizer = AdamW8bit(trainable, lr=1e-3)
    optimizer.step()
    seen: set[int] = set()
    state_bytes = 0
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value) and value.untyped_storage().data_ptr() not in seen:
                seen.add(value.untyped_storage().data_ptr())
                state_bytes += value.untyped_storage().nbytes()
    measured["optimizer_state"] = state_bytes

    workload = fit.Workload(
        batch=batch, seq=seq, lora_r=r, targets=frozenset(targets) if targets else None,
        lora_dropout=dropout, checkpointing="none", profile="amp" if amp else "eager",
        act_bytes=2 if amp else 4, weight16_bytes=4, optimizer="adamw_8bit", logits="full",
        on_gpu=False)
    return arch, workload, measured


@pytest.fixture(scope="module", params=sorted(CASES))
def measured_case(request, tmp_path_factory):
    return request.param, *_measure(request.param, tmp_path_factory.mktemp(request.param))


def _close(predicted: int, measured: int) -> bool:
    return abs(predicted - measured) <= TOLERANCE * measured


def test_predicted_4bit_weight_bytes_match_the_quantised_model(measured_case):
    case, arch, w, measured = measured_case
    predicted, _ = fit.weight_bytes(arch, w)
    assert _close(predicted, measured["weights_4bit"]), (case, predicted, measured)


def test_predicted_lora_parameter_count_matches_peft(measured_case):
    case, arch, w, measured = measured_case
    assert fit.lora_param_count(arch, w) == measured["lora_params"], case


def test_predicted_optimizer_state_matches_adamw8bit_after_one_step(measured_case):
    case, arch, w, measured = measured_case
    predicted = fit.optimizer_bytes(arch, w)
    assert _close(predicted, measured["optimizer_state"]), (case, predicted, measured)


def test_predicted_saved_for_backward_matches_autograd(measured_case):
    case, arch, w, measured = measured_case
    predicted = fit.activations(arch, w).saved_total + fit.logits_bytes(arch, w)[1]
    assert _close(predicted, measured["saved_for_backward"]), (case, predicted, measured)
