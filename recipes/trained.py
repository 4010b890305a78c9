"""Load what a run trained, for inference: its base model as training loaded it, plus its adapter.

    from recipes.trained import load_trained
    trained = load_trained(Path("runs/20261121-120000-demo"))            # the final adapter/
    trained = load_trained(run_dir, checkpoint="latest")                   # a stopped run
    trained.model, trained.tokenizer, trained.renderer, trained.stop_ids, trained.recipe

What `slothlab chat` loads (and what `slothlab eval` is meant to load). The base is the
miniature copied into the run (tiny mode), the model pretrained by the run's own pretrain stage
(gemma3-scratch) or the recipe's ``model`` (recipes.rundir.trained_model_paths). It is loaded
through the reference backend's ``load_base`` (4-bit NF4 when the recipe says load_in_4bit; a
CPU takes the same path), with the fp32 casts QLoRA training made, then the adapter through
peft. The tokenizer gets the recipe's chat template, so prompts render exactly as the eval
rendered them, and ``stop_ids`` are the eval's stop tokens. Unsloth is never imported here:
inference always takes the reference path, whichever backend trained the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipes.errors import RunDirError, SlothlabError
from recipes.rundir import (
    ADAPTER,
    RECIPE_FILE,
    STAGES_DIR,
    check_run_dir,
    latest_checkpoint,
    trained_model_paths,
)
from recipes.schema import Recipe, load_recipe


@dataclass
class TrainedModel:
    """A run's fine-tuned model ready to generate (``model.disable_adapter()`` = the base)."""

    model: Any  # peft.PeftModel, in eval mode
    tokenizer: Any
    renderer: Any  # recipes.data.Renderer: how the eval rendered prompts
    stop_ids: list[int]
    recipe: Recipe
    run_dir: Path
    base_path: str
    adapter_dir: Path  # adapter/ or the checkpoint folder
    checkpoint: Path | None  # set when a checkpoint was loaded instead of adapter/
    device: str

    def describe(self) -> dict[str, Any]:
        """What really loaded, read from the live model (not from the recipe)."""
        base = self.model.get_base_model()
        quant = getattr(base, "quantization_config", None)
        four_bit = bool(getattr(base, "is_loaded_in_4bit", False))
        dense = next((p for n, p in base.named_parameters()
                      if "lora_" not in n and type(p).__name__ != "Params4bit"), None)
        lora = next((p for n, p in base.named_parameters() if "lora_" in n), None)
        return {
            "device": self.device,
            "weights": (f"4-bit {getattr(quant, 'bnb_4bit_quant_type', 'nf4')}" if four_bit
                        else str(dense.dtype).removeprefix("torch.") if dense is not None else "?"),
            "compute_dtype": str(getattr(quant, "bnb_4bit_compute_dtype", None) or
                                 (dense.dtype if dense is not None else "?")).removeprefix("torch."),
            "adapter_dtype": str(lora.dtype).removeprefix("torch.") if lora is not None else "?",
        }


def checkpoint_root(run_dir: Path, recipe: Recipe) -> Path:
    """Where the adapter's checkpoints are: the run, or its finetune stage (staged recipes)."""
    if recipe.stages:
        return run_dir / STAGES_DIR / "finetune"
    return run_dir


def resolve_checkpoint(run_dir: Path, recipe: Recipe, spec: str | Path) -> Path:
    """``latest``, a step number or a checkpoint folder, as an adapter folder to load."""
    root = checkpoint_root(run_dir, recipe)
    text = str(spec)
    if text == "latest":
        found = latest_checkpoint(root)
        if found is None:
            raise RunDirError("this run has no checkpoint", where=str(run_dir),
                              fix="checkpoints are saved every save_steps steps and when a run "
                                  "is stopped; train it again with "
                                  f"`slothlab --recipe {run_dir / RECIPE_FILE}`")
        return found
    path = root / "checkpoints" / f"checkpoint-{text}" if text.isdigit() else Path(text)
    if not (path / "adapter_config.json").is_file():
        from recipes.rundir import checkpoints

        have = ", ".join(p.name.rsplit("-", 1)[1] for p in checkpoints(root)) or "none"
        raise RunDirError("not a checkpoint with an adapter (adapter_config.json missing)",
                          where=str(path),
                          fix=f"pass --checkpoint latest or a step this run saved ({have})")
    return path


def adapter_paths(run_dir: Path, recipe: Recipe,
                  checkpoint: str | Path | None = None) -> tuple[str, Path, Path | None]:
    """(base model, adapter folder, checkpoint or None); a RunDirError a person can act on."""
    if recipe.stages and "finetune" not in recipe.stages:
        raise RunDirError(f"this run trained no adapter (stages: {', '.join(recipe.stages)})",
                          where=str(run_dir),
                          fix="chat needs a run with a finetune stage (it trains the adapter)")
    ckpt = resolve_checkpoint(run_dir, recipe, checkpoint) if checkpoint is not None else None
    base, adapter = trained_model_paths(run_dir, recipe, ckpt)
    if adapter is None:
        latest = latest_checkpoint(checkpoint_root(run_dir, recipe))
        if latest is not None:
            step = latest.name.rsplit("-", 1)[1]
            raise RunDirError(
                f"this run has no {ADAPTER}/: it stopped before the end of training "
                f"(last checkpoint: step {step})", where=str(run_dir),
                fix=f"chat with that checkpoint: slothlab chat {run_dir} --checkpoint latest; "
                    f"or finish training first: slothlab --resume {run_dir}")
        raise RunDirError(
            f"this run has no {ADAPTER}/ and no checkpoint: it ended before its first save",
            where=str(run_dir),
            fix=f"train it again: slothlab --recipe {run_dir / RECIPE_FILE}")
    if recipe.stages and not (Path(base) / "config.json").is_file():
        raise RunDirError("the run's pretrained model is missing", where=base,
                          fix=f"finish the run first: slothlab --resume {run_dir}")
    return base, adapter, ckpt


def load_trained(run_dir: Path, *, checkpoint: str | Path | None = None,
                 device: str | None = None) -> TrainedModel:
    """The run's base + adapter, tokenizer, renderer and stop tokens (see the module doc)."""
    check_run_dir(run_dir)
    recipe = load_recipe(run_dir / RECIPE_FILE)
    base, adapter, ckpt = adapter_paths(run_dir, recipe, checkpoint)

    from recipes.host import quiet_libraries, train_device

    quiet_libraries()
    device = device or train_device()
    from peft import PeftModel

    from recipes.backends.reference import load_base
    from recipes.data.render import Renderer
    from recipes.evaluate import stop_token_ids
    from recipes.models import CHAT_TEMPLATES

    if not Path(base).is_dir():
        from recipes.hub import ensure_available

        try:  # a hub id: from the HF cache, offline if the hub is out of reach
            ensure_available(base, kind="model", field="model", local_hint="")
        except SlothlabError as exc:
            raise SlothlabError(exc.what, where="model",
                                fix=f"connect to the hub, or download it where it can: "
                                    f"huggingface-cli download {base}") from None
    try:
        model, tokenizer = load_base(base, recipe, device)
    except OSError as exc:
        raise SlothlabError(
            f"could not load the base model '{base}' ({str(exc).splitlines()[0][:200]})",
            where="model",
            fix="check the hub id, your network and HF token (training downloaded it once: "
                "the HF cache may have been cleared)") from None
    if recipe.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        # Training cast the non-4-bit weights (norms, embeddings, head) to fp32 before the
        # eval ran; the same casts here give the eval's numbers, not merely similar ones.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if recipe.chat_template != "auto":
        tokenizer.chat_template = CHAT_TEMPLATES[recipe.chat_template]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise RunDirError(f"the adapter does not load ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]})", where=str(adapter),
                          fix="the folder may be damaged; use another checkpoint "
                              "(--checkpoint STEP) or retrain") from None
    model.eval()
    renderer = Renderer(tokenizer, recipe)
    return TrainedModel(model=model, tokenizer=tokenizer, renderer=renderer,
                        stop_ids=stop_token_ids(tokenizer, renderer), recipe=recipe,
                        run_dir=run_dir, base_path=base, adapter_dir=adapter, checkpoint=ckpt,
                        device=device)
