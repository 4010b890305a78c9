"""A stand-in for `slothlab chat RUN --json`: the JSON-lines protocol with scripted answers.

No torch, instant. fake_slothlab.py hands it `slothlab chat ...`. Answers are "<mode> answer
to: <text>", streamed a word at a time. Driven by the environment and the messages:

    FAKE_CHAT=ok | refuse        refuse: a fatal error (no adapter), exit 2
    FAKE_CHAT_DELAY=0.005        seconds between tokens
    a message containing "crash" dies mid-answer with a traceback on stderr (exit 1)
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time

EVAL_PROMPTS = [
    {"index": 0, "row": 7, "question": "What is the capital of France?", "reference": "Paris.",
     "task": "", "lang": "", "classification": False,
     "eval": {"base": "France is a country.", "tuned": "Paris."}},
    {"index": 1, "row": 9, "question": "Name a primary colour.", "reference": "Red.",
     "task": "", "lang": "", "classification": False,
     "eval": {"base": "A colour.", "tuned": "Red."}},
]


def write(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--mode", default="tuned")
    parser.add_argument("--checkpoint")
    args = parser.parse_args(argv)
    if os.environ.get("FAKE_CHAT") == "refuse":
        write({"type": "error", "message": "this run has no adapter/ and no checkpoint",
               "where": args.run_dir, "fix": "train it again", "fatal": True})
        print("error: this run has no adapter/ and no checkpoint", file=sys.stderr)
        return 2
    delay = float(os.environ.get("FAKE_CHAT_DELAY", "0.005"))
    state = {"mode": args.mode, "system": "", "multi_turn": True,
             "settings": {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 24,
                          "decoding": "greedy"}}
    write({"type": "ready", "run_dir": args.run_dir, "recipe": "demo",
           "base_model": f"{args.run_dir}/base", "adapter": f"{args.run_dir}/adapter",
           "checkpoint": args.checkpoint, "loaded": {"device": "cpu", "weights": "4-bit nf4",
                                                     "compute_dtype": "float32",
                                                     "adapter_dtype": "float32"},
           "template": "chat template (the model's own)", "stop_tokens": ["</s>"],
           "eval_prompts": EVAL_PROMPTS, "eval_note": "", "help": "/both ...", **state})
    requests: queue.Queue = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("type") == "stop":
                stop.set()
            else:
                requests.put(request)
        requests.put(None)

    threading.Thread(target=read, daemon=True).start()
    turn = 0
    while (request := requests.get()) is not None:
        kind = request["type"]
        if kind == "command":
            name = request["text"].strip().lstrip("/").split(" ")[0]
            if name == "quit":
                return 0
            if name not in ("base", "tuned", "both", "reset"):
                write({"type": "error", "message": f"unknown command /{name}", "where": None,
                       "fix": "/help", "fatal": False})
                continue
            if name != "reset":
                state["mode"] = name
            write({"type": "info", "command": name, "message": f"/{name}", **state})
            continue
        modes = ["base", "tuned"] if state["mode"] == "both" else [state["mode"]]
        item = EVAL_PROMPTS[request["index"]] if kind == "eval" else None
        text = item["question"] if item else request["text"]
        write({"type": "turn", "index": turn, "text": text, "input": "", "modes": modes,
               "eval_index": item["index"] if item else None, "prompt": f"<|user|>\n{text}"})
        turn += 1
        for mode in modes:
            stop.clear()
            answer = item["eval"][mode] if item else f"{mode} answer to: {text}"
            sent = []
            for word in answer.split(" "):
                if stop.is_set():
                    break
                piece = word if not sent else " " + word
                write({"type": "token", "mode": mode, "text": piece})
                sent.append(piece)
                if "crash" in text:
                    print("Traceback (most recent call last):\n  File \"chat.py\", line 1\n"
                          "RuntimeError: CUDA error: an illegal memory access", file=sys.stderr)
                    sys.stderr.flush()
                    os._exit(1)
                time.sleep(delay)
            done = {"type": "done", "mode": mode, "text": "".join(sent), "tokens": len(sent),
                    "seconds": 0.01, "finish": "stopped" if stop.is_set() else "stop_token"}
            if item:
                done["eval_answer"] = item["eval"][mode]
            write(done)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
