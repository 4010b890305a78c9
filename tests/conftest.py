"""Shared fixtures: tiny tokenizers built offline, the realdata folder, a runs folder per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import slothlab_env

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"

# Tests never reach a hub: fail fast instead of retrying the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_real = pytest.mark.skip(reason=f"{REALDATA} is absent")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "realdata" in item.keywords and not REALDATA.is_dir():
            item.add_marker(skip_real)


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slothlab-cache")


def _tiny_tokenizer(model: str, cache: Path):
    from transformers import AutoTokenizer

    from recipes.data.prepare import load_examples
    from recipes.schema import Recipe
    from recipes.tiny import build_tiny_model, tokenizer_corpus

    recipe = Recipe(model=model, tiny=True, dataset=str(ROOT / "data/demo_qa.jsonl"),
                    dataset_format="sharegpt", max_seq_length=128)
    examples, _, _ = load_examples(recipe, recipe.dataset)
    folder = build_tiny_model(recipe, tokenizer_corpus(recipe, examples), cache)
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_llama_tokenizer(tiny_cache: Path):
    """The demo's miniature TinyLlama tokenizer (zephyr template, <s> </s>)."""
    return _tiny_tokenizer("TinyLlama/TinyLlama-1.1B-Chat-v1.0", tiny_cache)


@pytest.fixture(scope="session")
def tiny_llama3_tokenizer(tiny_cache: Path):
    """A miniature Llama-3.2 tokenizer (llama-3.1 template, <|eot_id|> special tokens)."""
    return _tiny_tokenizer("meta-llama/Llama-3.2-3B-Instruct", tiny_cache)


@pytest.fixture(scope="session")
def tiny_lfm2_tokenizer(tiny_cache: Path):
    """A miniature LFM2 tokenizer (ChatML-like template, <|startoftext|> <|im_end|>)."""
    return _tiny_tokenizer("LiquidAI/LFM2-1.2B", tiny_cache)


@pytest.fixture()
def runs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    """The README's demo command, run once for the session: (run dir, seconds, process)."""
    import subprocess
    import sys
    import time

    root = tmp_path_factory.mktemp("demo")
    cache = tmp_path_factory.mktemp("cache")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tui.cli", "--recipe", "demo", "--runs-dir",
                           str(root / "runs")], capture_output=True, text=True,
                          env=slothlab_env(cache), timeout=600)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = list((root / "runs").iterdir())
    return run_dir, seconds, proc


@pytest.fixture(autouse=True)
def unsloth_stays_out_of_this_process():
    """Importing unsloth patches TRL and transformers for the whole process (8-bit optimizers
    become adamw_torch_fused, SFTTrainer is replaced): every test that trains through it must
    use a child process, or it would silently change every later test."""
    import sys

    yield
    module = sys.modules.get("unsloth")
    assert module is None or getattr(module, "__file__", None) is None, \
        "a test imported unsloth in the test process: run it in a child process"
