"""The pretrain stage: a Gemma 3 model from a config, trained on the corpus with every parameter.

Sentences are encoded as ``<bos> text <eos>`` and packed into ``max_seq_length`` blocks (every
token trained), the causal-LM loss, TRL's SFTTrainer; the eval loss per language on the held-out
sentences and greedy continuations of held-out sentence halves, from step 0 (the random model).
The model is saved in ``stages/pretrain/model`` for the finetune stage.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from pathlib import Path
from typing import Any

from recipes import events as ev
from recipes.context import RunContext, StageOutcome
from recipes.data.types import Tokenized
from recipes.disk import checkpoint_bytes, disk_note
from recipes.errors import RecipeError
from recipes.evaluation import perplexity, subset_losses
from recipes.rundir import DONE, write_json
from recipes.schema import Recipe
from recipes.settings import effective_settings
from recipes.stages.scratch_data import interleave
from recipes.stages.tokenizer import BOS, END_OF_TURN, EOS, PAD, load_stage_tokenizer
from recipes.trainer import build_trainer

MODEL = "model"  # the pretrained Gemma 3 folder inside stages/pretrain/
SLIDING_WINDOW = 512  # Gemma 3 270m / 1b local-attention window
FULL_ATTENTION_EVERY = 6  # Gemma 3: five local layers, then one global


def check(recipe: Recipe) -> None:
    """Without the tokenizer stage, pretraining reads a tokenizer trained by an earlier run."""
    if "tokenizer" in recipe.stages:
        return
    if not recipe.tokenizer_path:
        raise RecipeError("the pretrain stage needs a tokenizer", where="tokenizer_path",
                          fix="add the tokenizer stage, or --set tokenizer_path="
                              "runs/<id>/stages/tokenizer")
    if not (Path(recipe.tokenizer_path).expanduser() / "tokenizer.json").is_file():
        raise RecipeError("no trained tokenizer in this folder (tokenizer.json missing)",
                          where=f"tokenizer_path={recipe.tokenizer_path}",
                          fix="point it at runs/<id>/stages/tokenizer of a finished "
                              "tokenizer stage")


def tokenizer_folder(ctx: RunContext) -> Path:
    if "tokenizer" in ctx.recipe.stages:
        return ctx.folder("tokenizer")
    return Path(ctx.recipe.tokenizer_path).expanduser()


def run(ctx: RunContext) -> StageOutcome:
    import torch
    from transformers import Gemma3ForCausalLM

    from recipes.evaluate import generate

    started = time.time()
    recipe, corpus = ctx.recipe, ctx.corpus
    folder = ctx.folder("pretrain")
    writer = ctx.emitter("pretrain")
    tokenizer = load_stage_tokenizer(tokenizer_folder(ctx))
    train_ids = encode_sentences(tokenizer, [t for _, t in corpus.train])
    blocks = [Tokenized(0, ids, ids, False) for ids in pack(train_ids, recipe.max_seq_length)]
    val_by_lang: dict[str, list[Tokenized]] = {}
    for (lang, _), ids in zip(corpus.val, encode_sentences(tokenizer, [t for _, t in corpus.val]),
                              strict=True):
        val_by_lang.setdefault(lang, []).append(Tokenized(0, ids, ids, False))
    stage_recipe = dataclasses.replace(
        recipe, learning_rate=recipe.pretrain_learning_rate, epochs=recipe.pretrain_epochs,
        max_steps=recipe.pretrain_max_steps, optimizer=recipe.pretrain_optimizer)
    per_epoch = max(1, math.ceil(len(blocks) / recipe.batch_size)
                    // recipe.gradient_accumulation_steps)
    total = stage_recipe.max_steps or math.ceil(per_epoch * stage_recipe.epochs)
    lengths = [len(x) for x in train_ids] or [0]
    tokens = sum(lengths)
    by_lang_tokens: dict[str, int] = {}
    for (lang, _), ids in zip(corpus.train, train_ids, strict=True):
        by_lang_tokens[lang] = by_lang_tokens.get(lang, 0) + len(ids)
    config = gemma_config(recipe, tokenizer)
    torch.manual_seed(recipe.seed)
    model = Gemma3ForCausalLM(config)
    if recipe.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    n_params = sum(p.numel() for p in model.parameters())

    prompts = []
    for _, text in interleave([[x for x in corpus.val if x[0] == lang]
                               for lang in corpus.sampled])[:recipe.eval_prompts]:
        words = text.split()
        cut = max(1, len(words) // 2)
        prompts.append((" ".join(words[:cut]), " ".join(words[cut:])))
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    evals: dict[int, float | None] = {}
    by_lang: dict[str, float] = {}  # the latest eval's loss per language
    samples: list[ev.Sample] = []

    def evaluate(step: int) -> None:
        loss, parts = subset_losses(model, val_by_lang, recipe.eval_batch_size)
        outputs = generate(model, tokenizer, [p for p, _ in prompts],
                           max_new_tokens=recipe.max_new_tokens, stop_ids=[eos_id],
                           batch_size=recipe.eval_batch_size) if prompts else []
        samples[:] = [ev.Sample(prompt=p, reference=r, output=o)
                      for (p, r), o in zip(prompts, outputs, strict=True)]
        evals[step] = loss
        by_lang.clear()
        by_lang.update(parts)
        writer.emit(ev.Eval(step=step, loss=loss, perplexity=perplexity(loss),
                            samples=list(samples), subset_losses=parts))

    trainer, changes = build_trainer(ctx, stage_recipe, folder, model, tokenizer, blocks, writer,
                                     evaluate=evaluate)
    settings, changes = effective_settings(stage_recipe, model, trainer, "reference", ctx.device,
                                           changes)
    settings["backend"] = "reference (full-parameter pretraining: no LoRA backend applies)"
    ctx.checkpoint_bytes = checkpoint_bytes(model, trainer.optimizer)
    notes = [*ctx.notes, *disk_note(folder, ctx.checkpoint_bytes, recipe.save_total_limit)]
    writer.emit(ev.Preflight(
        splits={"train": len(corpus.train), "val": len(corpus.val), "test": len(corpus.test)},
        tokens_min=min(lengths), tokens_median=float(statistics.median(lengths)),
        tokens_max=max(lengths), trained_token_share=1.0, truncated=0, no_trained_tokens=0,
        max_seq_length=recipe.max_seq_length, total_steps=total,
        notes=[f"{tokens} tokens in {len(corpus.train)} sentences packed into {len(blocks)} "
               f"blocks of up to {recipe.max_seq_length}; every token is trained",
               "tokens by language: " + ", ".join(
                   f"{lang} {n / max(tokens, 1):.0%}" for lang, n in by_lang_tokens.items()),
               *corpus.notes, *notes], settings=settings, changes=changes))

    resume = ctx.checkpoint("pretrain")
    if resume is None and val_by_lang:
        evaluate(0)  # the random model: eval loss starts near ln(vocab size)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    step = trainer.state.global_step
    if ctx.stop.requested:
        return StageOutcome(False, step=step)
    if val_by_lang and step not in evals:
        evaluate(step)
    out = folder / MODEL
    model.config.use_cache = True
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    eval_loss = evals.get(step)
    summary = {
        "stage": "pretrain", "seconds": time.time() - started, "model_dir": str(out),
        "architecture": "Gemma3ForCausalLM", "parameters": n_params,
        "sizes": model_sizes(recipe), "vocab_size": config.vocab_size,
        "sliding_window": config.sliding_window, "layer_types": config.layer_types,
        "steps": step, "blocks": len(blocks), "block_size": recipe.max_seq_length,
        "train_tokens": tokens, "learning_rate": stage_recipe.learning_rate,
        "optimizer": settings["optimizer"], "settings": settings, "changes": changes,
        "train_loss_last": losses[-1] if losses else None,
        "eval_loss": eval_loss, "perplexity": perplexity(eval_loss),
        "eval_loss_by_language": dict(by_lang),
        "perplexity_by_language": {k: perplexity(v) for k, v in by_lang.items()},
        "samples": [dataclasses.asdict(s) for s in samples],
    }
    values = {k: v for k, v in (("train_loss", summary["train_loss_last"]),
                                ("eval_loss", eval_loss),
                                ("perplexity", summary["perplexity"])) if v is not None}
    values.update({f"eval_loss/{k}": v for k, v in by_lang.items()})
    ctx.writer.emit(ev.Metrics(stage="pretrain", values=values))
    write_json(folder / DONE, {**summary, "corpus": corpus.fingerprint()})
    return StageOutcome(True, step=step, final_loss=summary["train_loss_last"], output=str(out))


def model_sizes(recipe: Recipe) -> dict[str, int]:
    """The from-scratch model's sizes: the `model`'s own (tiny: the miniature's), then the
    recipe's scratch_* fields over them."""
    from recipes.models import model_info
    from recipes.tiny import TINY

    if recipe.tiny:
        base = {"hidden_size": TINY["hidden_size"], "intermediate_size": TINY["intermediate_size"],
                "num_layers": TINY["num_layers"], "num_heads": TINY["num_heads"],
                "num_kv_heads": TINY["num_kv_heads"],
                "head_dim": TINY["hidden_size"] // TINY["num_heads"]}
    else:
        info = model_info(recipe.model)
        explicit = (recipe.scratch_hidden_size, recipe.scratch_layers, recipe.scratch_heads,
                    recipe.scratch_kv_heads)
        if info is None and not all(explicit):
            raise RecipeError(
                f"the size of a from-scratch model like '{recipe.model}' is unknown",
                where="model",
                fix="set model: google/gemma-3-270m (its sizes), or every one of "
                    "scratch_hidden_size, scratch_layers, scratch_heads, scratch_kv_heads")
        if info is not None and info.model_type != "gemma3_text":
            raise RecipeError(f"'{recipe.model}' is a {info.model_type} model; the pretrain "
                              "stage builds Gemma 3", where="model",
                              fix="set model: google/gemma-3-270m")
        base = ({"hidden_size": info.hidden_size, "intermediate_size": info.intermediate_size,
                 "num_layers": info.num_layers, "num_heads": info.num_heads,
                 "num_kv_heads": info.num_kv_heads, "head_dim": info.head_size}
                if info else {})
    hidden = recipe.scratch_hidden_size or base["hidden_size"]
    heads = recipe.scratch_heads or base["num_heads"]
    resized = bool(recipe.scratch_hidden_size or recipe.scratch_heads)
    sizes = {
        "hidden_size": hidden,
        "num_layers": recipe.scratch_layers or base["num_layers"],
        "num_heads": heads,
        "num_kv_heads": recipe.scratch_kv_heads or base["num_kv_heads"],
        "head_dim": recipe.scratch_head_dim or (hidden // heads if resized or not base
                                                else base["head_dim"]),
        "intermediate_size": recipe.scratch_intermediate_size or max(64, 64 * round(
            hidden * (base["intermediate_size"] / base["hidden_size"] if base else 4) / 64)),
    }
    if sizes["num_heads"] % sizes["num_kv_heads"]:
        raise RecipeError(f"{sizes['num_heads']} attention heads cannot be shared by "
                          f"{sizes['num_kv_heads']} key/value heads", where="scratch_kv_heads",
                          fix="make scratch_heads a multiple of scratch_kv_heads")
    return sizes


def gemma_config(recipe: Recipe, tokenizer: Any) -> Any:
    """A Gemma 3 text config: the recipe's sizes, the tokenizer's vocabulary and special ids,
    Gemma 3's pattern of five sliding-window layers to one global layer (the last is global)."""
    from transformers import Gemma3TextConfig

    sizes = model_sizes(recipe)
    layers = sizes["num_layers"]
    window = max(8, recipe.max_seq_length // 4) if recipe.tiny else SLIDING_WINDOW
    layer_types = ["full_attention" if (i + 1) % FULL_ATTENTION_EVERY == 0 or i == layers - 1
                   else "sliding_attention" for i in range(layers)]
    ids = tokenizer.convert_tokens_to_ids
    return Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=sizes["hidden_size"],
        intermediate_size=sizes["intermediate_size"], num_hidden_layers=layers,
        num_attention_heads=sizes["num_heads"], num_key_value_heads=sizes["num_kv_heads"],
        head_dim=sizes["head_dim"], query_pre_attn_scalar=sizes["head_dim"],
        sliding_window=window, layer_types=layer_types,
        max_position_embeddings=max(32768, recipe.max_seq_length),
        tie_word_embeddings=True, pad_token_id=ids(PAD), bos_token_id=ids(BOS),
        eos_token_id=[ids(EOS), ids(END_OF_TURN)], architectures=["Gemma3ForCausalLM"])


def encode_sentences(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """``<bos> text <eos>`` token ids per sentence: what pretraining reads."""
    bos, eos = tokenizer.convert_tokens_to_ids(BOS), tokenizer.convert_tokens_to_ids(EOS)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    return [[bos, *x, eos] for x in ids]


def pack(sequences: list[list[int]], block: int) -> list[list[int]]:
    """Concatenate and cut into blocks of ``block`` tokens (the last one may be shorter), as
    HF's run_clm groups texts: no padding, every token trained."""
    flat = [t for seq in sequences for t in seq]
    return [flat[i:i + block] for i in range(0, len(flat), block) if len(flat[i:i + block]) > 1]
