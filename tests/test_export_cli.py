"""`slothlab export` end to end: the trained demo through the CLI's JSON protocol, and a model
carrying the real TinyLlama tokenizer (../shared/realdata) through llama.cpp's converter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REALDATA
from tests.export_runs import make_run

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SLOTHLAB = [sys.executable, "-m", "tui.cli"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo recipe trained for 2 steps (its real tokenizer, 4-bit base and adapter)."""
    root = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "SLOTHLAB_CACHE": str(tmp_path_factory.mktemp("cache"))}
    proc = subprocess.run([*SLOTHLAB, "--recipe", "demo", "--set", "max_steps=2",
                           "--set", "eval_samples=2", "--set", "eval_steps=0", "--json",
                           "--runs-dir", str(root)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = list(root.iterdir())
    return run_dir


def test_the_demo_exports_to_ollama_through_the_json_protocol(demo_run: Path) -> None:
    import gguf

    proc = subprocess.run([*SLOTHLAB, "export", str(demo_run), "--to", "ollama", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    messages = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "export_started" and kinds[-1] == "export_finished"
    assert set(kinds[1:-1]) == {"export_progress"}
    stages = {m["stage"] for m in messages if m["type"] == "export_progress"}
    assert {"merge", "convert", "write", "modelfile"} <= stages
    started, finished = messages[0], messages[-1]
    out = demo_run / "export" / "ollama-q8_0"
    assert started["out"] == finished["out"] == str(out)
    assert any("4-bit (NF4) base" in note for note in started["notes"])
    assert finished["command"] == f"ollama create demo -f {out / 'Modelfile'}"
    assert set(finished["files"]) == {str(out / n) for n in
                                      ("demo-q8_0.gguf", "Modelfile", "slothlab_export.json")}
    reader = gguf.GGUFReader(out / "demo-q8_0.gguf")
    assert reader.fields["general.name"].contents() == "demo"
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q8_0
    assert "FROM ./demo-q8_0.gguf" in (out / "Modelfile").read_text()
    assert [p.name for p in (demo_run / "export").iterdir()] == ["ollama-q8_0"]


@pytest.mark.realdata
def test_a_small_llama_with_the_real_tinyllama_tokenizer_converts(tmp_path: Path,
                                                                   tiny_cache: Path) -> None:
    import gguf
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from recipes.export import plan_export, run_export

    source = REALDATA / "tokenizers" / "TinyLlama-1.1B-Chat-v1.0"
    folder = tmp_path / "small-llama"
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32000, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "tokenizer.model"):
        shutil.copyfile(source / name, folder / name)
    run_dir = make_run(tmp_path / "runs", str(folder), tiny_cache, tiny=False,
                       name="real-tokenizer")
    result = run_export(plan_export(run_dir, "ollama", "q8_0"))
    [path] = [Path(p) for p in result.files if p.endswith(".gguf")]
    reader = gguf.GGUFReader(path)
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokens = reader.fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == 32000
    assert [tokens.contents(i) for i in range(32000)] == tokenizer.convert_ids_to_tokens(
        list(range(32000)))
    assert reader.fields["tokenizer.chat_template"].contents() == tokenizer.chat_template
    assert len(reader.tensors) == 21
    modelfile = (result.out / "Modelfile").read_text()
    assert 'TEMPLATE """{{- range .Messages }}<|{{ .Role }}|>' in modelfile, \
        "the real template is recognised as zephyr"
