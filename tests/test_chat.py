"""`slothlab chat` end to end on tiny runs: answers equal the eval's, multi-turn, /both, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recipes.registry import bundled
from recipes.runner import RunOptions, run
from recipes.schema import load_recipe

pytestmark = pytest.mark.slow
SLOTHLAB = [sys.executable, "-m", "tui.cli"]


def train(name: str, overrides: list[str], root: Path, cache: Path) -> Path:
    recipe = load_recipe(bundled()[name], overrides=["tiny=true", "eval_steps=0", *overrides])
    return run(recipe, RunOptions(runs_root=root, cache_dir=cache))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short demo run: 20 steps, checkpoints at 10 and 20, 6 eval prompts."""
    return train("demo", ["max_steps=20", "save_steps=10", "eval_samples=6",
                          "max_new_tokens=12"],
                 tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("cache"))


def report(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "report.json").read_text(encoding="utf-8"))["samples"]


class Chat:
    """`slothlab chat RUN --json` driven line by line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([*SLOTHLAB, "chat", *args, "--json"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"the chat ended: {self.proc.stderr.read()[-2000:]}"
        return json.loads(line)

    def ask(self, request: dict) -> list[dict]:
        """Send one request; the messages up to its last answer (or its info / error)."""
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        got = [self.read()]
        if got[0]["type"] != "turn":
            return got
        while sum(m["type"] == "done" for m in got) < len(got[0]["modes"]):
            got.append(self.read())
        return got

    def close(self) -> int:
        self.proc.stdin.close()
        code = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


def answers(messages: list[dict]) -> dict[str, str]:
    return {m["mode"]: m["text"] for m in messages if m["type"] == "done"}


def test_a_two_turn_json_chat_answers_as_the_eval_did(demo: Path) -> None:
    samples = report(demo)
    chat = Chat(str(demo))
    ready = chat.read()
    assert ready["type"] == "ready" and ready["settings"]["decoding"] == "greedy"
    assert ready["loaded"]["weights"] == "4-bit nf4" and ready["stop_tokens"] == ["</s>"]
    assert [p["question"] for p in ready["eval_prompts"]] == [s["prompt"] for s in samples]

    first = chat.ask({"type": "eval", "index": 0})  # turn 1: the eval's own prompt 0
    eval_prompt = first[0]["prompt"]
    assert answers(first) == {"tuned": samples[0]["finetuned"]}
    streamed = "".join(m["text"] for m in first if m["type"] == "token")
    assert streamed.strip() == samples[0]["finetuned"], "the tokens add up to the answer"

    second = chat.ask({"type": "user", "text": "Say it again, please."})  # turn 2
    follow_up = second[0]["prompt"]
    assert follow_up.startswith(eval_prompt + samples[0]["finetuned"]), "turn 1 is in the history"
    assert follow_up.endswith("Say it again, please.</s>\n<|assistant|>\n")

    assert chat.ask({"type": "command", "text": "/reset"})[0]["command"] == "reset"
    typed = chat.ask({"type": "user", "text": samples[0]["prompt"]})  # the question, typed
    assert typed[0]["prompt"] == eval_prompt and answers(typed) == {"tuned": samples[0]["finetuned"]}

    assert chat.ask({"type": "command", "text": "/both"})[0]["mode"] == "both"
    both = chat.ask({"type": "eval", "index": 1})
    assert answers(both) == {"base": samples[1]["base"], "tuned": samples[1]["finetuned"]}
    assert [m["eval_answer"] for m in both if m["type"] == "done"] == [
        samples[1]["base"], samples[1]["finetuned"]]
    bad = chat.ask({"type": "command", "text": "/temperature 2"})
    assert bad[0]["type"] == "error" and not bad[0]["fatal"]
    assert chat.close() == 0

    from recipes.evaluate import generate
    from recipes.trained import load_trained

    trained = load_trained(demo)  # turn 2 decoded by the eval's own greedy generate()
    [expected] = generate(trained.model, trained.tokenizer, [follow_up],
                          max_new_tokens=12, stop_ids=trained.stop_ids)
    assert answers(second) == {"tuned": expected}


def test_every_eval_prompt_gets_the_evals_base_and_tuned_answers(demo: Path) -> None:
    from recipes.chat import ChatSession
    from recipes.eval_prompts import load_eval_prompts
    from recipes.trained import load_trained

    trained = load_trained(demo)
    prompts, note = load_eval_prompts(trained)
    assert note == "" and len(prompts) == 6
    assert any(p.history[0]["role"] == "system" for p in prompts), "system messages kept"
    got: list[dict] = []
    session = ChatSession(trained, emit=got.append, mode="both", eval_prompts=prompts)
    for prompt in prompts:
        session.ask_eval(prompt.index)
    done = [m for m in got if m["type"] == "done"]
    assert len(done) == 12
    assert [m["text"] for m in done] == [m["eval_answer"] for m in done]
    assert [m["text"] for m in done] == [x for s in report(demo) for x in (s["base"],
                                                                           s["finetuned"])]


def test_the_terminal_chat_streams_and_shows_both_answers(demo: Path) -> None:
    proc = subprocess.run([*SLOTHLAB, "chat", str(demo)], input="What is 2 plus 2?\n/both\n"
                          "/eval 1\n/nonsense\n/quit\n", capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "slothlab chat · demo" in out and "greedy, max_new_tokens 12" in out
    assert "fine-tuned ›" in out and "base (adapter off)" in out
    assert "(the eval's answer)" in out and "unknown command /nonsense" in out


def test_a_stopped_run_offers_its_checkpoint(demo: Path, tmp_path: Path) -> None:
    stopped = tmp_path / "stopped"
    shutil.copytree(demo, stopped, ignore=shutil.ignore_patterns("adapter"))
    proc = subprocess.run([*SLOTHLAB, "chat", str(stopped)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "no adapter/" in proc.stderr and "last checkpoint: step 20" in proc.stderr
    assert f"slothlab chat {stopped} --checkpoint latest" in proc.stderr
    refused = subprocess.run([*SLOTHLAB, "chat", str(stopped), "--checkpoint", "7"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "(10, 20)" in refused.stderr

    from recipes.eval_prompts import load_eval_prompts
    from recipes.trained import load_trained

    trained = load_trained(stopped, checkpoint="latest")
    assert trained.checkpoint == stopped / "checkpoints" / "checkpoint-20"
    prompts, _ = load_eval_prompts(trained)
    assert set(prompts[0].answers) == {"base"}, "the report scored adapter/, not a checkpoint"


def test_runs_the_chat_cannot_load_exit_2_with_what_to_do(demo: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    shutil.copytree(demo, empty, ignore=shutil.ignore_patterns("adapter", "checkpoints"))
    cases = [([str(empty)], "ended before its first save"),
             ([str(tmp_path / "nowhere")], "run directory not found"),
             ([str(tmp_path)], "not a slothlab run"),
             ([str(demo), "--top-p", "0"], "top_p must be in (0, 1]")]
    for args, words in cases:
        proc = subprocess.run([*SLOTHLAB, "chat", *args, "--json"], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, args
        assert words in proc.stderr, (args, proc.stderr)
        [error] = [json.loads(line) for line in proc.stdout.splitlines()]
        assert error["type"] == "error" and error["fatal"] and words in error["message"]


@pytest.mark.parametrize("name, overrides", [
    ("inkuba-multitask", ["max_steps=6", "max_new_tokens=6"]),
    ("gemma3-scratch", ["pretrain_max_steps=4", "max_steps=4", "eval_samples=4",
                        "max_new_tokens=4"]),
])
def test_classification_and_from_scratch_runs_answer_as_their_eval(
        name: str, overrides: list[str], tmp_path: Path, tiny_cache: Path) -> None:
    from recipes.chat import ChatSession
    from recipes.eval_prompts import load_eval_prompts
    from recipes.trained import load_trained

    run_dir = train(name, overrides, tmp_path / "runs", tiny_cache)
    trained = load_trained(run_dir)
    prompts, note = load_eval_prompts(trained)
    assert prompts and not note
    got: list[dict] = []
    session = ChatSession(trained, emit=got.append, mode="both", eval_prompts=prompts)
    picked = {p.task: p for p in prompts}  # one prompt per task (inkuba: labels and MT)
    for prompt in picked.values():
        session.ask_eval(prompt.index)
    done = [m for m in got if m["type"] == "done"]
    assert done and [m["text"] for m in done] == [m["eval_answer"] for m in done]
    if name == "inkuba-multitask":
        assert not session.multi_turn and {m["finish"] for m in done} >= {"label"}
        assert picked["mt"].fields and picked["mt"].fields["input"], "instruction + input"
