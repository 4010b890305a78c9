"""`slothlab chat RUN_DIR`: talk to a run's fine-tuned model, and its base side by side.

    slothlab chat runs/<id>                        # terminal chat (Rich, streamed), greedy
    slothlab chat runs/<id> --mode both            # base | fine-tuned answers side by side
    slothlab chat runs/<id> --temperature 0.7 --top-p 0.9 --max-new-tokens 128
    slothlab chat runs/<id> --checkpoint latest    # a stopped run: its last checkpoint
    slothlab chat runs/<id> --json                 # JSON lines on stdin/stdout (front ends)

Commands in the chat: /base /tuned /both /reset /system TEXT /eval N /set KEY=VALUE /help
/quit (recipes/chat.py says what each does); the terminal adds /evals (list the eval prompts).

JSON protocol (--json): one JSON object per line each way; stdout carries nothing else
(library output goes to stderr). The process starts, loads the model, and answers requests
in order until /quit, end of input or SIGINT.

Requests (stdin):
    {"type": "user", "text": "Hi", "input": ""}   a message; "input" fills a prompt_template's
                                                 {input} (prompt_template recipes only)
    {"type": "eval", "index": 3}                 start over from the eval's prompt 3, asked
                                                 exactly as the eval asked it
    {"type": "command", "text": "/both"}         any chat command, as typed
    {"type": "stop"}                             end the answer being generated now

Responses (stdout):
    {"type": "ready", "run_dir", "recipe", "base_model", "adapter", "checkpoint",
     "loaded": {device, weights, compute_dtype, adapter_dtype}, "template", "stop_tokens",
     "mode", "system", "multi_turn", "settings": {temperature, top_p, max_new_tokens,
     decoding}, "eval_prompts": [{index, row, question, reference, task, lang,
     classification, eval: {base?, tuned?}}], "eval_note", "help"}
    {"type": "turn", "index", "text", "input", "modes": ["base", "tuned"], "eval_index",
     "prompt"}                                   a message accepted; "prompt" is the exact
                                                 text the models see
    {"type": "token", "mode": "base"|"tuned", "text"}   the next piece of an answer
    {"type": "done", "mode", "text", "tokens", "seconds", "finish": "stop_token" |
     "max_new_tokens" | "stopped" | "label", "eval_answer"?}   the whole answer (stripped,
                                                 as the eval keeps it); one per mode of the turn
    {"type": "info", "command", "message", "mode", "system", "multi_turn", "settings"}
    {"type": "error", "message", "where", "fix", "fatal"}   fatal: the process exits 2 (bad
                                                 run dir, no adapter ...); else it goes on

Exit codes: 0 (quit or end of input), 2 (bad input: not a run, no adapter, bad settings),
1 (anything else, e.g. the model does not load; --debug shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from recipes.errors import SlothlabError

EXIT_OK, EXIT_FAILED = 0, 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slothlab chat",
        description="Chat with a run's fine-tuned model (and its base, adapter off), rendered "
                    "and decoded as the run's eval does. Greedy by default.",
        epilog="in the chat: /base /tuned /both /reset /system TEXT /eval N /evals "
               "/set temperature=0.7 /help /quit")
    parser.add_argument("run_dir", type=Path, help="a run folder (runs/<id>)")
    parser.add_argument("--checkpoint", metavar="latest|STEP|DIR",
                        help="load a checkpoint instead of adapter/ (a stopped run)")
    parser.add_argument("--mode", choices=("tuned", "base", "both"), default="tuned",
                        help="who answers first (default: tuned; /base /tuned /both switch)")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="0 = greedy, the eval's decoding (default: 0)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default: 1)")
    parser.add_argument("--max-new-tokens", type=int, default=0, metavar="N",
                        help="longest answer (default: the recipe's max_new_tokens)")
    parser.add_argument("--json", action="store_true",
                        help="JSON lines on stdin/stdout (the protocol in tui/chat_cli.py)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    stdout = sys.stdout
    if args.json:
        sys.stdout = sys.stderr  # library chatter must not corrupt the protocol on stdout
    try:
        return run(args, stdout)
    except SlothlabError as exc:
        if args.debug:
            raise
        if args.json:
            write(stdout, {"type": "error", "message": exc.what, "where": exc.where,
                           "fix": exc.fix, "fatal": True})
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            raise
        if args.json:
            write(stdout, {"type": "error", "message": f"{type(exc).__name__}: {exc}"[:500],
                           "where": None, "fix": "rerun with --debug for the traceback",
                           "fatal": True})
        print(f"error: {type(exc).__name__}: {exc}\n  → rerun with --debug for the traceback",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        sys.stdout = stdout


def run(args: argparse.Namespace, stdout: TextIO) -> int:
    from recipes.chat import ChatSession, Settings
    from recipes.eval_prompts import load_eval_prompts
    from recipes.trained import load_trained

    settings = Settings(args.temperature, args.top_p, args.max_new_tokens).check()
    if not args.json:
        from tui.chat_terminal import TerminalChat

        return TerminalChat(args, settings).run()
    trained = load_trained(args.run_dir, checkpoint=args.checkpoint)
    prompts, note = load_eval_prompts(trained)
    session = ChatSession(trained, settings, emit=lambda m: write(stdout, m), mode=args.mode,
                          eval_prompts=prompts)
    session.ready(note)
    return serve_json(session, sys.stdin)


def write(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message, ensure_ascii=False) + "\n")
    out.flush()


def serve_json(session: Any, stdin: TextIO) -> int:
    """Answer requests until /quit or end of input; "stop" acts at once, mid-answer."""
    from recipes.chat import ChatError

    requests: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        for line in stdin:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError as exc:
                request = {"type": "_bad", "why": f"not JSON ({exc.msg})"}
            if isinstance(request, dict) and request.get("type") == "stop":
                session.interrupt.set()
                continue
            requests.put(request)
        requests.put(None)

    threading.Thread(target=read, name="chat-stdin", daemon=True).start()
    while (request := requests.get()) is not None:
        try:
            if not handle(session, request):
                break
        except ChatError as exc:
            session.emit({"type": "error", "message": exc.what, "where": exc.where,
                          "fix": exc.fix, "fatal": False})
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory: this turn fails, not the chat
            session.emit({"type": "error", "message": f"{type(exc).__name__}: {exc}"[:500],
                          "where": None, "fix": "try a shorter message or lower "
                          "max_new_tokens (/set max_new_tokens=64)", "fatal": False})
    return EXIT_OK


def handle(session: Any, request: Any) -> bool:
    """One request; False ends the session."""
    from recipes.chat import ChatError

    kind = request.get("type") if isinstance(request, dict) else None
    if kind == "user":
        session.say(str(request.get("text", "")), input_text=str(request.get("input") or ""))
    elif kind == "eval":
        index = request.get("index")
        if not isinstance(index, int):
            raise ChatError("eval needs an integer index", where="index")
        session.ask_eval(index)
    elif kind == "command":
        return session.command(str(request.get("text", "")))
    else:
        why = request.get("why") if kind == "_bad" else f"unknown request {str(request)[:80]}"
        raise ChatError(why, fix='send {"type": "user", "text": ...}, {"type": "eval", '
                        '"index": N}, {"type": "command", "text": "/both"} or {"type": "stop"}')
    return True


if __name__ == "__main__":
    sys.exit(main())
