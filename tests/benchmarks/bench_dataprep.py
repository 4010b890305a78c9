"""Data preparation: slothlab's pipeline vs TRL's own, on 100,000 sharegpt conversations.

    .venv/bin/python tests/benchmarks/bench_dataprep.py                   # 100,000 rows
    .venv/bin/python tests/benchmarks/bench_dataprep.py --rows 20000      # quicker
    .venv/bin/python tests/benchmarks/bench_dataprep.py --profile         # + cProfile of slothlab
    .venv/bin/python tests/benchmarks/bench_dataprep.py \
        --sides slothlab,slothlab-parallel,trl,trl-masked                   # every side

The script writes ``--rows`` synthetic conversations in FineTome's sharegpt schema
(``{"conversations": [{"from": "system"|"human"|"gpt", "value": ...}], "source", "score"}``;
seeded, so every run sees the same file: 1-4 exchanges, optional system prompt, answers from a
few words to ~1,500 words, some multi-line, some non-ASCII) to a temporary ``.jsonl``, then
prepares it in one fresh child process per side (``--side ...``), so each side's peak RSS
(``ru_maxrss``) is its own:

* **slothlab**: ``recipes.data.prepare.load_examples`` + ``prepare`` with a recipe of
  ``dataset_format: auto`` (the layout is detected from every row's columns, as a user's run
  does) and ``val_fraction = test_fraction = 0`` (so every row is tokenized, as on the TRL
  side): load, detect, normalise, split, render, tokenize, mask labels to the assistant
  responses, drop untrainable rows, preflight statistics. The child first calls
  ``recipes.host.quiet_libraries()`` as ``run()`` does, which sets
  ``TOKENIZERS_PARALLELISM=false`` unless it is already set.
* **slothlab-parallel** (opt-in): the same with ``TOKENIZERS_PARALLELISM=true``, i.e. the
  Rust-parallel batch tokenization that ``recipes.data.render.tokenize`` is written for.
* **trl**: the standard TRL path for conversational data: ``datasets.load_dataset("json")``, a
  ``map`` turning sharegpt rows into ``{"messages": [...]}`` (TRL's own ``maybe_convert_to_chatml``
  renames the keys but keeps the roles ``human``/``gpt``, which the chat template ignores, so the
  roles must be mapped first, as unsloth's ``standardize_sharegpt`` does), then
  ``SFTTrainer._prepare_dataset`` with ``assistant_only_loss=False`` (``apply_chat_template`` +
  tokenize per row, labels, truncation to ``max_length``). The trainer is built once around a
  one-layer model on an 8-row dataset; only ``_prepare_dataset`` on the full data is timed.
* **trl-masked** (opt-in): the same with ``assistant_only_loss=True``, which masks labels to the
  assistant turns as slothlab does (like for like). The tokenizer's template has no
  ``{% generation %}`` markers and TRL has no training template for it, so this side swaps in the
  same template with the markers added (renders the same text).

Both use the same tokenizer: TinyLlama-1.1B-Chat's real one from
``/work/shared/realdata/tokenizers`` when it is there, else the demo's tiny tokenizer (built in
a temporary cache), and the same ``max_length`` (2048). Each child gets its own empty
``HF_DATASETS_CACHE`` so no side reuses another run's Arrow files. Timings include loading the
``.jsonl``; the table also shows each phase, examples per CPU-second of the child (steadier
than wall time when other processes share the machine) and "others": the share of the machine's
CPU that other processes used while the side ran (above ~10%, distrust the wall-clock figures).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REAL_TOKENIZER = Path("/work/shared/realdata/tokenizers/TinyLlama-1.1B-Chat-v1.0")
MAX_LENGTH = 2048
SIDES = ("slothlab", "slothlab-parallel", "trl", "trl-masked")
SHAREGPT_TO_ROLE = {"human": "user", "gpt": "assistant", "system": "system"}

# TinyLlama-1.1B-Chat's template with {% generation %} around what the assistant is trained on
# (its content and the eos token), for TRL's assistant_only_loss. Same text as the original.
ZEPHYR_GENERATION = (
    "{% for message in messages %}\n"
    "{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n' }}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}\n\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
    "{% endfor %}"
)

# ----------------------------------------------------------------------------- synthetic data

WORDS = (
    "the of and to in is that for it as with was on be by this are or from at which an have not "
    "model data training loss token batch gradient learning rate memory layer weight attention "
    "question answer explain because however therefore example number value result function "
    "python code list string return error file line table figure step first second third last "
    "water energy planet history language music science city river mountain animal plant cell "
    "protein market price growth policy health student teacher school research study method "
    "approximately significantly important different possible available specific general simple "
    "café naïve résumé Zürich São Paulo über straße 東京 数据 模型 привет мир "
    "😀"
).split()
SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a concise assistant. Answer in as few words as possible.",
    "You are an expert tutor. Explain your reasoning step by step, then give the final answer.",
    "You are a careful coding assistant. Prefer clear, well-commented Python.",
)


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".?!.")


def _text(rng: random.Random, n_words: int, multiline: bool) -> str:
    parts, left = [], n_words
    while left > 0:
        k = min(left, rng.randint(4, 24))
        parts.append(_sentence(rng, k))
        left -= k
    if not multiline:
        return " ".join(parts)
    lines = []
    for i, part in enumerate(parts):
        lines.append(f"{i + 1}. {part}" if rng.random() < 0.5 else part)
        if rng.random() < 0.15:
            lines.append("```python\ndef f(x):\n    return x * 2  # doubled\n```")
    return "\n".join(lines)


def _answer_words(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.01:
        return rng.randint(900, 1500)  # a few long ones, truncated at max_length
    if r < 0.2:
        return rng.randint(3, 20)
    return int(rng.lognormvariate(4.3, 0.6))  # median ~75 words


def make_row(rng: random.Random) -> dict:
    turns = []
    if rng.random() < 0.3:
        turns.append({"from": "system", "value": rng.choice(SYSTEM_PROMPTS)})
    exchanges = rng.choices((1, 2, 3, 4), weights=(70, 18, 8, 4))[0]
    for _ in range(exchanges):
        turns.append({"from": "human", "value": _text(rng, rng.randint(4, 60), rng.random() < 0.1)})
        turns.append({"from": "gpt", "value": _text(rng, _answer_words(rng), rng.random() < 0.3)})
    return {"conversations": turns, "source": rng.choice(("synthetic-a", "synthetic-b")),
            "score": round(rng.uniform(3.0, 5.5), 2)}


def write_dataset(path: Path, rows: int, seed: int = 1234) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(rows):
            fh.write(json.dumps(make_row(rng), ensure_ascii=False) + "\n")


# ------------------------------------------------------------------------------------ sides

def load_tokenizer(cache: Path):
    from transformers import AutoTokenizer

    if REAL_TOKENIZER.is_dir():
        return AutoTokenizer.from_pretrained(str(REAL_TOKENIZER)), "TinyLlama-1.1B-Chat (real)"
    from recipes.data.prepare import load_examples
    from recipes.host import PROJECT_ROOT
    from recipes.registry import find_recipe
    from recipes.schema import data_source, load_recipe
    from recipes.tiny import build_tiny_model, tokenizer_corpus

    recipe = load_recipe(find_recipe("demo"))
    examples, _, _ = load_examples(recipe, data_source(recipe), base_dirs=[PROJECT_ROOT])
    folder = build_tiny_model(recipe, tokenizer_corpus(recipe, examples), cache)
    return AutoTokenizer.from_pretrained(str(folder)), "demo tiny tokenizer"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def setup_slothlab(path: Path, tokenizer, profile: Path | None):
    """Imports done, recipe built; returns the timed preparation as a callable."""
    import datasets  # noqa: F401  (imported by load_rows; not part of the timing)

    from recipes.data.prepare import load_examples, prepare
    from recipes.schema import Recipe

    recipe = Recipe(name="bench", dataset=str(path), dataset_format="auto",
                    max_seq_length=MAX_LENGTH, val_fraction=0.0, test_fraction=0.0)

    def prep() -> dict:
        profiler = None
        if profile is not None:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        examples, skipped, n_rows = load_examples(recipe, str(path))
        t1 = time.perf_counter()
        data = prepare(recipe, tokenizer, examples, skipped, n_rows, source=str(path))
        t2, cpu = time.perf_counter(), cpu_seconds() - cpu0
        peak = peak_rss_mb()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))
        rows = data.train + data.val
        return {"peak_rss_mb": peak, "cpu_seconds": cpu,
                "phases": {"load+normalise": t1 - t0, "split+render+tokenize+stats": t2 - t1},
                "seconds": t2 - t0, "examples": len(rows),
                "tokens": sum(len(t.input_ids) for t in rows),
                "trained_tokens": sum(sum(1 for x in t.labels if x != -100) for t in rows)}

    return prep


def setup_trl(path: Path, tokenizer, masked: bool):
    """A trainer around a one-layer model; returns the timed preparation as a callable."""
    import datasets
    import pyarrow.compute as pc
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()
    if masked:
        tokenizer.chat_template = ZEPHYR_GENERATION
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1,
                         max_position_embeddings=MAX_LENGTH, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    args = SFTConfig(output_dir=str(path.parent / "trl-out"), use_cpu=True, bf16=False,
                     report_to="none", max_length=MAX_LENGTH, assistant_only_loss=masked,
                     dataset_num_proc=None, packing=False)

    def to_messages(row: dict) -> dict:
        return {"messages": [{"role": SHAREGPT_TO_ROLE[t["from"]], "content": t["value"]}
                             for t in row["conversations"]]}

    probe = datasets.Dataset.from_list([make_row(random.Random(i)) for i in range(8)])
    probe = probe.map(to_messages, remove_columns=probe.column_names)
    trainer = SFTTrainer(model=model, args=args, train_dataset=probe, processing_class=tokenizer)

    def prep() -> dict:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        raw = datasets.load_dataset("json", data_files=str(path), split="train")
        t1 = time.perf_counter()
        messages = raw.map(to_messages, remove_columns=raw.column_names)
        t2 = time.perf_counter()
        prepared = trainer._prepare_dataset(messages, tokenizer, trainer.args, False, None, "train")
        t3, cpu = time.perf_counter(), cpu_seconds() - cpu0
        peak = peak_rss_mb()
        table = prepared.with_format("arrow")[:]  # counted in Arrow: no Python lists
        return {"peak_rss_mb": peak, "cpu_seconds": cpu,
                "phases": {"load_dataset": t1 - t0, "to messages": t2 - t1,
                           "_prepare_dataset": t3 - t2},
                "seconds": t3 - t0, "examples": len(prepared),
                "tokens": pc.sum(pc.list_value_length(table["input_ids"])).as_py(),
                "trained_tokens": pc.sum(pc.not_equal(pc.list_flatten(table["labels"]),
                                                      -100)).as_py()}

    return prep


def child(side: str, path: Path, profile: Path | None) -> int:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    if side == "slothlab":
        # Exactly what recipes.runner.run() does before it prepares the data.
        from recipes.host import quiet_libraries

        quiet_libraries()
    elif side == "slothlab-parallel":
        os.environ["TOKENIZERS_PARALLELISM"] = "true"  # what recipes/data/render.py's tokenize() expects
    tokenizer, tok_name = load_tokenizer(path.parent / "tiny-cache")
    if side.startswith("slothlab"):
        prep = setup_slothlab(path, tokenizer, profile)
    else:
        prep = setup_trl(path, tokenizer, masked=side == "trl-masked")
    before = rss_mb()  # everything imported and set up: what follows is the preparation
    result = prep()
    result.update(side=side, tokenizer=tok_name, rss_before_mb=before,
                  tokenizers_parallelism=os.environ.get("TOKENIZERS_PARALLELISM", "(unset)"))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------------------------ parent

def busy_seconds() -> float:
    """Non-idle CPU time of the whole machine so far (every core), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_side(side: str, path: Path, tmp: Path, profile: Path | None) -> dict:
    env = dict(os.environ, HF_DATASETS_CACHE=str(tmp / f"hf-{side}"), PYTHONWARNINGS="ignore")
    cmd = [sys.executable, __file__, "--side", side, "--data", str(path)]
    if profile is not None:
        cmd += ["--profile-out", str(profile)]
    busy0, kids0, t0 = busy_seconds(), children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    foreign = (busy_seconds() - busy0) - (children_cpu_seconds() - kids0)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            result["foreign_cpu"] = max(0.0, foreign) / (wall * (os.cpu_count() or 1))
            return result
    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    raise SystemExit(f"side {side} failed (exit {proc.returncode})")


def print_profile(path: Path, top: int) -> None:
    import io
    import pstats

    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(str(path), stream=out).sort_stats(key).print_stats(top)
        text = out.getvalue()
        start = text.find("   ncalls")
        print(f"\ncProfile of the slothlab side, top {top} by {key}:")
        print(text[start:].rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="conversations (default 100000)")
    parser.add_argument("--sides", default="slothlab,trl",
                        help=f"comma-separated, from {','.join(SIDES)} (default slothlab,trl)")
    parser.add_argument("--profile", action="store_true",
                        help="also run the slothlab side under cProfile and print the top entries")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return child(args.side, args.data, args.profile_out)

    sides = [s for s in args.sides.split(",") if s]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="slothlab-dataprep-") as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "sharegpt.jsonl"
        write_dataset(path, args.rows)
        print(f"{args.rows} synthetic sharegpt rows, {path.stat().st_size / 2**20:.0f} MiB, "
              f"written in {time.perf_counter() - started:.1f} s; load average "
              f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
        results = {}
        for side in sides:
            results[side] = run_side(side, path, tmp, None)
            r = results[side]
            print(f"  {side:17s} {r['seconds']:7.1f} s  "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in r["phases"].items())
                  + f"; other processes used {r['foreign_cpu']:.0%} of the CPUs", flush=True)
        if args.profile:
            profile = tmp / "slothlab.prof"
            run_side("slothlab", path, tmp, profile)
            print_profile(profile, 25)

    first = next(iter(results.values()))
    print(f"\nresults ({args.rows} rows, tokenizer: {first['tokenizer']}, max_length {MAX_LENGTH}, "
          "single process each):")
    print(f"  {'side':17s} {'seconds':>8s} {'examples/s':>11s} {'ex/CPU-s':>9s} "
          f"{'peak RSS MiB':>13s} {'(before prep)':>14s} {'examples':>9s} {'tokens':>11s} "
          f"{'trained':>11s} {'others':>7s}  TOKENIZERS_PARALLELISM")
    for side, r in results.items():
        print(f"  {side:17s} {r['seconds']:8.1f} {r['examples'] / r['seconds']:11.0f} "
              f"{r['examples'] / r['cpu_seconds']:9.0f} "
              f"{r['peak_rss_mb']:13.0f} {r['rss_before_mb']:14.0f} {r['examples']:9d} "
              f"{r['tokens']:11d} {r['trained_tokens']:11d} {r['foreign_cpu']:7.0%}  "
              f"{r['tokenizers_parallelism']}")
    if "slothlab" in results:
        s = results["slothlab"]
        for side in (x for x in results if not x.startswith("slothlab")):
            r = results[side]
            speed = (s["examples"] / s["seconds"]) / (r["examples"] / r["seconds"])
            cpu = (s["examples"] / s["cpu_seconds"]) / (r["examples"] / r["cpu_seconds"])
            growth = ((s["peak_rss_mb"] - s["rss_before_mb"])
                      / max(1.0, r["peak_rss_mb"] - r["rss_before_mb"]))
            print(f"  slothlab/{side}: speed {speed:.2f}x (per CPU-second {cpu:.2f}x), peak RSS "
                  f"{s['peak_rss_mb'] / r['peak_rss_mb']:.2f}x, RSS growth during prep "
                  f"{growth:.2f}x")
    print(f"  total wall time {time.perf_counter() - started:.0f} s, load average at end "
          f"{os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
