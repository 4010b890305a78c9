"""The Chat screen, driven with Pilot against a fake `slothlab chat --json` (tests/tui/fake_chat.py)."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui.test_screens import until
from tui.runstate import RunState
from tui.screens.chat import ChatScreen
from tui.screens.eval_prompts import EvalPromptsScreen
from tui.screens.history import HistoryScreen
from tui.screens.results import ResultsScreen
from tui.widgets.chat_pane import ChatPane
from tui.widgets.error_panel import ErrorPanel
from tui.widgets.runs_table import RunsTable

SIZE = (120, 40)


def pane_text(screen: ChatScreen, mode: str) -> str:
    pane = screen.query_one(f"#pane-{mode}", ChatPane)
    return "\n".join(str(child.render()) for child in pane.children)


async def open_chat(app, pilot: Pilot, run_dir) -> ChatScreen:
    app.show_results(RunState.from_run_dir(run_dir))
    await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
    await pilot.press("t")
    await until(pilot, lambda: isinstance(app.screen, ChatScreen), what="the Chat screen")
    screen = app.screen
    await until(pilot, lambda: screen.ready, what="ready from the chat process")
    return screen


async def say(pilot: Pilot, screen: ChatScreen, text: str) -> None:
    prompt = screen.query_one("#prompt", Input)
    prompt.value = text
    prompt.focus()
    await pilot.press("enter")


async def test_results_open_a_chat_whose_answers_stream_side_by_side(make_app, past_runs,
                                                                     monkeypatch) -> None:
    monkeypatch.setenv("FAKE_CHAT_DELAY", "0.1")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(app, pilot, past_runs["finished"])
        assert screen.extra_args == ["--mode", "both"], "a finished run chats with adapter/"
        assert "greedy, max_new_tokens 24" in str(screen.query_one("#chat-status").render())
        await say(pilot, screen, "hello there")
        tuned = screen.query_one("#pane-tuned", ChatPane)  # answers second: seen mid-stream
        whole = "tuned answer to: hello there"
        await until(pilot, lambda: tuned.answer and tuned.answer != whole,
                    what="a partial answer")
        assert whole.startswith(tuned.answer) and screen.answering == ["tuned"]
        await until(pilot, lambda: not screen.answering, what="both answers done")
        assert "base answer to: hello there" in pane_text(screen, "base")
        assert "tuned answer to: hello there" in pane_text(screen, "tuned")
        assert "you › hello there" in pane_text(screen, "base")


async def test_eval_prompts_are_one_key_away_and_compared_with_the_eval(make_app, past_runs
                                                                       ) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(app, pilot, past_runs["finished"])
        await pilot.press("f2")
        await until(pilot, lambda: isinstance(app.screen, EvalPromptsScreen))
        await pilot.press("down", "enter")  # the second prompt
        await until(pilot, lambda: app.screen is screen)
        await until(pilot, lambda: not screen.answering and "Red." in pane_text(screen, "tuned"))
        tuned = pane_text(screen, "tuned")
        assert "eval prompt 1" in tuned and "you › Name a primary colour." in tuned
        assert "= the eval's answer" in tuned and "A colour." in pane_text(screen, "base")


async def test_who_answers_switches_and_reset_starts_over(make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(app, pilot, past_runs["finished"])
        await pilot.press("ctrl+b")  # both -> fine-tuned only
        await until(pilot, lambda: screen.state.get("mode") == "tuned")
        await say(pilot, screen, "just you")
        await until(pilot, lambda: "tuned answer to: just you" in pane_text(screen, "tuned"))
        assert "(not asked: fine-tuned answers)" in pane_text(screen, "base")
        assert "base answer to" not in pane_text(screen, "base")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: "new conversation" in pane_text(screen, "base"))
        await say(pilot, screen, "/nonsense")
        await until(pilot, lambda: any("unknown command" in str(n.message)
                                       for n in app._notifications), what="the error toast")
        assert not screen.failed, "a refused command is not a crash"


async def test_esc_stops_an_answer_then_goes_back(make_app, past_runs, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_CHAT_DELAY", "0.3")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(app, pilot, past_runs["finished"])
        await say(pilot, screen, "a long question with many words to answer")
        await until(pilot, lambda: screen.query_one("#pane-base", ChatPane).answer)
        await pilot.press("escape")
        await until(pilot, lambda: "(stopped)" in pane_text(screen, "base"), what="stopped")
        assert isinstance(app.screen, ChatScreen), "Esc while answering stops, stays"
        await until(pilot, lambda: not screen.answering)
        process = screen.process
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        await until(pilot, lambda: not process.running, what="the chat process to end")


async def test_a_crash_of_the_chat_process_shows_an_error_panel_and_f5_restarts(
        make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(app, pilot, past_runs["finished"])
        await say(pilot, screen, "please crash")
        panel = screen.query_one(ErrorPanel)
        await until(pilot, lambda: panel.has_class("-visible"), what="the error panel")
        shown = str(panel.render())
        assert "exit code 1" in shown and "illegal memory access" in shown
        assert screen.query_one("#prompt", Input).disabled
        assert "(the chat process ended)" in pane_text(screen, "base")
        assert app.is_running and isinstance(app.screen, ChatScreen)
        await pilot.press("f5")
        await until(pilot, lambda: screen.ready and not panel.has_class("-visible"),
                    what="a restarted chat")
        await say(pilot, screen, "again")
        await until(pilot, lambda: "tuned answer to: again" in pane_text(screen, "tuned"))


async def test_a_refused_chat_says_why(make_app, past_runs, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_CHAT", "refuse")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.show_results(RunState.from_run_dir(past_runs["finished"]))
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ChatScreen))
        panel = app.screen.query_one(ErrorPanel)
        await until(pilot, lambda: panel.has_class("-visible"))
        shown = str(panel.render())
        assert "no adapter/ and no checkpoint" in shown and "train it again" in shown
        assert "exit code" not in shown, "the process's own words, not a crash report"


async def test_history_opens_a_chat_on_a_stopped_runs_checkpoint(make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        table = app.screen.query_one(RunsTable)
        await until(pilot, lambda: table.row_count == 3)
        assert "t" in app.screen.active_bindings, "Chat is in History's footer"
        await pilot.press("down", "t")  # the stopped run
        await until(pilot, lambda: isinstance(app.screen, ChatScreen))
        screen = app.screen
        assert screen.extra_args == ["--mode", "both", "--checkpoint", "latest"]
        await until(pilot, lambda: screen.ready)
        assert "the run stopped before adapter/ was written" in pane_text(screen, "tuned")
