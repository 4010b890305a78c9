"""The Unsloth backend against the installed unsloth, on a CPU.

Every keyword recipes/backends/unsloth.py passes to FastLanguageModel is recorded through a
fake `unsloth` module, then checked against the real signatures of BOTH classes it can reach:
the GPU FastLanguageModel (read in a child process with UNSLOTH_ALLOW_CPU=1, unsloth's test
switch, never set in this process; or, if even that import fails, from the installed source
with ast) and the CPU class that really runs without CUDA (unsloth_zoo's FastCPUModel, read in
a plain child process). A keyword that only lands in **kwargs does not count: both classes take
**kwargs, and a misspelt keyword would pass silently. The backend auto-selection is tested case
by case, and a GPU-marked test trains a few steps through the real thing.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from recipes.backends import select_backend
from recipes.errors import BackendError
from recipes.schema import Recipe

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("from_pretrained", "get_peft_model", "for_inference", "for_training")

SIGNATURES_CODE = """
import inspect, json, sys
from unsloth import FastLanguageModel
out = {}
for name in METHODS:
    params = inspect.signature(getattr(FastLanguageModel, name)).parameters.values()
    out[name] = [p.name for p in params
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
sys.stdout.write("SIGNATURES " + json.dumps(out) + "\\n")
""".replace("METHODS", repr(METHODS))


class FakeFastLanguageModel:
    calls: list[tuple[str, tuple, dict]] = []

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        cls.calls.append(("from_pretrained", args, kwargs))
        return "model", "tokenizer"

    @classmethod
    def get_peft_model(cls, *args, **kwargs):
        cls.calls.append(("get_peft_model", args, kwargs))
        return "peft-model"

    @classmethod
    def for_inference(cls, *args, **kwargs):
        cls.calls.append(("for_inference", args, kwargs))

    @classmethod
    def for_training(cls, *args, **kwargs):
        cls.calls.append(("for_training", args, kwargs))


@pytest.fixture()
def recorded_calls(monkeypatch):
    """Drive the backend module against a fake unsloth; return {method: (args, kwargs)}."""
    fake = types.ModuleType("unsloth")
    fake.FastLanguageModel = FakeFastLanguageModel
    monkeypatch.setitem(sys.modules, "unsloth", fake)
    FakeFastLanguageModel.calls = []
    from recipes.backends import unsloth as backend

    recipe = Recipe(model="unsloth/tinyllama-chat-bnb-4bit", max_seq_length=512,
                    compute_dtype="bfloat16", lora_r=8, lora_alpha=32, lora_dropout=0.05,
                    target_modules=["q_proj", "v_proj"], seed=1234, trust_remote_code=False)
    assert backend.load("/models/x", recipe, "cuda") == ("peft-model", "tokenizer")
    backend.for_inference("peft-model")
    if hasattr(backend, "for_training"):
        backend.for_training("peft-model")
    backend.enable_gradient_checkpointing("peft-model")  # the OOM back-off's last training step
    return recipe, {name: (args, kwargs) for name, args, kwargs in FakeFastLanguageModel.calls}


def test_backend_passes_the_recipe_to_unsloth(recorded_calls):
    import torch

    recipe, calls = recorded_calls
    _, loaded = calls["from_pretrained"]
    assert loaded["model_name"] == "/models/x"
    assert loaded["max_seq_length"] == 512
    assert loaded["dtype"] == torch.bfloat16
    assert loaded["load_in_4bit"] is True
    assert loaded["use_gradient_checkpointing"] == "unsloth"
    args, peft = calls["get_peft_model"]
    assert args == ("model",)
    assert (peft["r"], peft["lora_alpha"], peft["lora_dropout"]) == (8, 32, 0.05)
    assert peft["target_modules"] == ["q_proj", "v_proj"]
    assert peft["bias"] == "none"
    assert peft["use_gradient_checkpointing"] == "unsloth"
    assert peft["random_state"] == 1234
    assert calls["for_inference"][0] == ("peft-model",)
    assert calls["for_training"] == (("peft-model",), {"use_gradient_checkpointing": "unsloth"})


def _signatures_from_child(cwd: Path, *, gpu_class: bool = True
                           ) -> tuple[dict[str, list[str]] | None, str]:
    env = {k: v for k, v in os.environ.items() if k != "UNSLOTH_DISABLE_CPU_FALLBACK"}
    if gpu_class:
        env["UNSLOTH_ALLOW_CPU"] = "1"
    # cwd: unsloth writes an unsloth_compiled_cache/ folder where it is imported
    proc = subprocess.run([sys.executable, "-c", SIGNATURES_CODE], env=env, capture_output=True,
                          text=True, timeout=600, cwd=cwd)
    for line in proc.stdout.splitlines():
        if line.startswith("SIGNATURES "):
            return json.loads(line.removeprefix("SIGNATURES ")), "inspect.signature"
    return None, (proc.stderr.strip().splitlines() or ["no output"])[-1]


def _signatures_from_source() -> dict[str, list[str]]:
    """FastLanguageModel's methods, read from the installed unsloth/models/loader.py with ast."""
    spec = importlib.util.find_spec("unsloth")
    assert spec is not None and spec.origin, "unsloth is not installed"
    models = Path(spec.origin).parent / "models"
    by_class: dict[str, dict[str, tuple[list[str], bool]]] = {}
    for path in sorted(models.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in ("FastLanguageModel",
                                                                 "FastLlamaModel"):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name in METHODS:
                        names = [a.arg for a in item.args.args + item.args.kwonlyargs]
                        # @functools.wraps(FastLlamaModel.x) def x(model, *args, **kwargs)
                        forwards = any("wraps" in ast.unparse(d) for d in item.decorator_list)
                        by_class.setdefault(node.name, {})[item.name] = (names, forwards)
    # FastLanguageModel inherits from FastLlamaModel; where its own method only forwards
    # **kwargs (functools.wraps of FastLlamaModel's), the parameters are FastLlamaModel's.
    found: dict[str, list[str]] = {}
    base, own = by_class.get("FastLlamaModel", {}), by_class.get("FastLanguageModel", {})
    for method in METHODS:
        if method in own and not (own[method][1] and method in base):
            found[method] = own[method][0]
        elif method in base:
            found[method] = base[method][0]
    return found


@pytest.fixture(scope="module")
def real_signatures(tmp_path_factory):
    signatures, how = _signatures_from_child(tmp_path_factory.mktemp("unsloth-signatures"))
    if signatures is None:
        signatures, how = _signatures_from_source(), f"ast (import failed: {how})"
    return signatures, how


@pytest.fixture(scope="module")
def cpu_signatures(tmp_path_factory):
    """The class `from unsloth import FastLanguageModel` gives on this CPU: the one that runs."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the CPU class is not the one that runs")
    signatures, how = _signatures_from_child(tmp_path_factory.mktemp("unsloth-cpu"),
                                             gpu_class=False)
    assert signatures is not None, f"import unsloth failed on this CPU: {how}"
    return signatures, "inspect.signature of the CPU class"


def unknown_keywords(calls, signatures: dict[str, list[str]], how: str) -> list[str]:
    problems = []
    for method, (args, kwargs) in calls.items():
        if method not in signatures:
            problems.append(f"FastLanguageModel.{method} not found ({how})")
            continue
        params = signatures[method]
        unknown = [k for k in kwargs if k not in params]
        if unknown:
            problems.append(f"FastLanguageModel.{method} has no parameter(s) {unknown} "
                            f"({how}); it takes {params}")
        if len(args) > len(params):
            problems.append(f"{method}: too many positional arguments")
    return problems


def test_every_keyword_exists_in_the_installed_gpu_class(recorded_calls, real_signatures):
    _, calls = recorded_calls
    assert not unknown_keywords(calls, *real_signatures)


def test_every_keyword_exists_in_the_cpu_class_that_runs(recorded_calls, cpu_signatures):
    _, calls = recorded_calls
    assert not unknown_keywords(calls, *cpu_signatures)


def test_a_misspelt_keyword_is_caught(recorded_calls, cpu_signatures, real_signatures):
    """The check itself can fail: a keyword neither class names is reported for both."""
    _, calls = recorded_calls
    args, kwargs = calls["from_pretrained"]
    broken = {**calls, "from_pretrained": (args, {**kwargs, "load_in_4bits": True})}
    for signatures in (cpu_signatures, real_signatures):
        assert any("load_in_4bits" in p for p in unknown_keywords(broken, *signatures))


def test_ast_fallback_reads_the_same_parameters(real_signatures):
    signatures, how = real_signatures
    if how != "inspect.signature":
        pytest.skip(f"no live signatures to compare with ({how})")
    from_source = _signatures_from_source()
    for method in METHODS:
        assert from_source.get(method) == signatures[method], method


def test_installed_unsloth_defaults_we_rely_on(real_signatures):
    signatures, _ = real_signatures
    for name in ("use_gradient_checkpointing", "random_state", "bias", "lora_dropout"):
        assert name in signatures["get_peft_model"], name


# -- auto selection, each case -------------------------------------------------------------------


def test_no_cuda_auto_picks_reference_and_says_why():
    choice = select_backend("auto", cuda=False, unsloth_problem=None)
    assert choice.name == "reference" and "no CUDA device" in choice.reason


def test_no_cuda_unsloth_requested_runs_unsloths_cpu_backend():
    choice = select_backend("unsloth", cuda=False, unsloth_problem=None)
    assert choice.name == "unsloth" and "Unsloth's CPU backend" in choice.reason
    with pytest.raises(BackendError) as err:
        select_backend("unsloth", cuda=False, unsloth_problem="import unsloth failed: X")
    assert "import unsloth failed" in err.value.what and err.value.fix


def test_cuda_and_importable_picks_unsloth():
    for requested in ("auto", "unsloth"):
        choice = select_backend(requested, cuda=True, unsloth_problem=None)
        assert choice.name == "unsloth" and "unsloth" in choice.reason


def test_cuda_but_import_fails_auto_falls_back_with_the_reason():
    problem = "import unsloth failed: ImportError: broken wheel"
    choice = select_backend("auto", cuda=True, unsloth_problem=problem)
    assert choice.name == "reference" and "broken wheel" in choice.reason


def test_cuda_but_import_fails_unsloth_requested_is_an_error():
    with pytest.raises(BackendError) as err:
        select_backend("unsloth", cuda=True, unsloth_problem="unsloth is not installed")
    assert "not installed" in err.value.what


def test_reference_requested_is_reference_anywhere():
    for cuda in (False, True):
        choice = select_backend("reference", cuda=cuda, unsloth_problem=None)
        assert choice.name == "reference" and "requested" in choice.reason


IMPORT_FAILURE_CODE = """
import json
from recipes.backends import select_backend
from recipes.errors import BackendError
out = {"auto_on_cuda": select_backend("auto", cuda=True).reason}
try:
    select_backend("unsloth", cuda=False)
except BackendError as exc:
    out["unsloth_error"] = exc.what
print(json.dumps(out))
"""


def test_a_real_import_failure_is_caught(tmp_path: Path):
    """With UNSLOTH_DISABLE_CPU_FALLBACK=1 the real `import unsloth` raises on a CPU: auto (as
    if on a GPU) falls back to reference with the reason, --backend unsloth is a clear error."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: unsloth imports")
    env = {**os.environ, "UNSLOTH_DISABLE_CPU_FALLBACK": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", IMPORT_FAILURE_CODE], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["auto_on_cuda"].startswith("CUDA device but import unsloth failed")
    assert "import unsloth failed" in out["unsloth_error"]


# -- the real thing, on a GPU --------------------------------------------------------------------


@pytest.mark.gpu
def test_unsloth_backend_trains_a_few_steps(tmp_path):
    """In a child process: importing unsloth patches TRL for the whole process (conftest)."""
    from tests.helpers import slothlab_env

    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--recipe", "demo", "--backend", "unsloth",
         "--runs-dir", str(tmp_path / "runs"), "--set", "max_steps=3", "--set", "logging_steps=1",
         "--set", "eval_steps=0", "--set", "save_steps=3", "--set", "eval_samples=2",
         "--set", "eval_prompts=1", "--set", "max_new_tokens=4"],
        capture_output=True, text=True, env=slothlab_env(tmp_path / "cache"), timeout=900,
        cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = (tmp_path / "runs").iterdir()
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    started = next(e for e in events if e["type"] == "run_started")
    assert started["backend"] == "unsloth"
    assert any(e["type"] == "finished" for e in events), events[-1]
    losses = [e["loss"] for e in events if e["type"] == "step"]
    assert losses and all(loss == loss for loss in losses)  # no NaN
