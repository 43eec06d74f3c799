"""The one question asked before anything starts or stops cards: launch a recipe, queue it, stop a run.

A modal dialog that says what will happen where (the recipe, its backend, the visible cards, the
predicted GiB per card; or the run's name and age), answered in one key: Enter or `y` goes ahead,
Esc or `n` does not. Every other key is swallowed, so a word typed into the wrong place (`lora` in a
table: `l` opens this dialog, `o r a` land here) starts nothing. Details that need the disk or the
store (the recipe, the planner) are read in a worker; until they are shown, going ahead is refused,
so nobody confirms a launch without having been shown its cards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static
from zerodeck.core.i18n import _
from zerodeck.tui.widgets.text import verdict_text

if TYPE_CHECKING:
    from zerodeck.store.records import RunRecord
    from zerodeck.tui.services import Services

ANSWER_KEYS = frozenset({"enter", "y", "escape", "n"})


class ConfirmDetails(Message, bubble=False):
    """The dialog's details, read in its worker (`ok` False: reading failed, only cancel is left)."""

    def __init__(self, text: Text, ok: bool) -> None:
        super().__init__()
        self.text = text
        self.ok = ok


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True (Enter / y) or False (Esc / n)."""

    BINDINGS = [
        Binding("enter,y", "answer(True)", _("Yes"), show=False),
        Binding("escape,n", "answer(False)", _("No"), show=False),
    ]
    ANSWER_KEYS: ClassVar[frozenset[str]] = ANSWER_KEYS  # every other key is swallowed

    def __init__(self, question: str, details: Text | str = "", *, verb: str = "",
                 load: Callable[[], Text] | None = None) -> None:
        super().__init__()
        self.question = question
        self.details = details if isinstance(details, Text) else Text(details)
        self.verb = verb or _("go ahead")
        self.load = load
        self.ready = load is None  # confirming waits until the details are on screen

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(Text(self.question, style="bold"), id="confirm-question")
            yield Static(self.details if self.ready else Text(_("reading the recipe and its plan …"), style="dim"),
                         id="confirm-details")
            yield Static(self._hint(), id="confirm-keys")

    def _hint(self) -> Text:
        t = Text()
        t.append("Enter", style="bold")
        t.append("/")
        t.append("y", style="bold")
        t.append(f" {self.verb}   ")
        t.append("Esc", style="bold")
        t.append("/")
        t.append("n", style="bold")
        t.append(" " + _("cancel"))
        return t

    def on_mount(self) -> None:
        if self.load is not None:
            self._load(self.load)

    @work(thread=True, exclusive=True, group="confirm")
    def _load(self, load: Callable[[], Text]) -> None:
        try:
            self.post_message(ConfirmDetails(load(), ok=True))
        except Exception as exc:
            self.post_message(ConfirmDetails(Text(f"{type(exc).__name__}: {exc}", style="red"), ok=False))

    def on_confirm_details(self, msg: ConfirmDetails) -> None:
        self.details = msg.text
        self.query_one("#confirm-details", Static).update(msg.text)
        # A recipe that cannot be read cannot be launched: only cancelling is left.
        self.ready = msg.ok

    def action_answer(self, yes: bool) -> None:
        if yes and not self.ready:
            return
        self.dismiss(yes)

    def on_key(self, event: events.Key) -> None:
        if event.key not in self.ANSWER_KEYS:
            event.stop()
            event.prevent_default()


class QuitScreen(ConfirmScreen, inherit_bindings=False):
    """`q` asks before the UI closes, and a second `q` answers: `qq` quits as fast as htop's `q`,
    while a word typed without `/` (`qwen`) cannot close the UI, nor run its other letters as
    commands (`e`, `n`, `s`): the question swallows them. `y` and Enter do not answer, so the
    end of a word or an Enter typed after it never quits either. Ctrl+Q quits at once (Textual's
    own binding). Runs keep going either way: they belong to their supervisors."""

    BINDINGS = [
        Binding("q", "answer(True)", _("Quit"), show=False),
        Binding("escape,n", "answer(False)", _("Stay"), show=False),
    ]
    ANSWER_KEYS: ClassVar[frozenset[str]] = frozenset({"q", "escape", "n"})

    def __init__(self) -> None:
        super().__init__(_("quit zerodeck?"), Text(_("runs keep going: their supervisors own them, and "
                                                  "`zerodeck` shows them again")), verb=_("quit"))

    def _hint(self) -> Text:
        t = Text()
        t.append("q", style="bold")
        t.append(" " + _("again quits") + "   ")
        t.append("Esc", style="bold")
        t.append("/")
        t.append("n", style="bold")
        t.append(" " + _("stay") + "   ")
        t.append("ctrl+q", style="bold")
        t.append(" " + _("quits at once"))
        return t


# -- what the questions say ----------------------------------------------------------------------

def age_text(seconds: float | None) -> str:
    """`2 d 03 h`, `3 h 05 m`, `4 m 10 s`, `12 s`: the two largest units, for a person deciding."""
    if seconds is None:
        return _("not started")
    s = max(0, int(seconds))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{d} d {h:02d} h"
    if h:
        return f"{h} h {m:02d} m"
    if m:
        return f"{m} m {sec:02d} s"
    return f"{sec} s"


def device_ids(ids: Sequence[int]) -> str:
    """`0-7` for a run of ids, else `0,2,4`."""
    ids = list(ids)
    if len(ids) > 1 and ids == list(range(ids[0], ids[0] + len(ids))):
        return f"{ids[0]}-{ids[-1]}"
    return ",".join(str(i) for i in ids)


def stop_question(run: RunRecord, now: datetime) -> tuple[str, Text]:
    """`stop run 12 qwen2.5-32b-lora-z3 (running 2 d 03 h)?` and what stopping does."""
    since = run.started_at or run.created_at
    age = None if since is None else (now - since).total_seconds()
    question = _("stop run {run_id} {name} ({status} {age})?").format(run_id=run.id, name=run.name, status=run.status,
                                                                     age=age_text(age))
    details = Text()
    if run.device == "cpu":
        details.append(_("{n} rank(s) on the CPU").format(n=run.cards or "?"))
    else:
        details.append(_("{n} card(s) ({device})").format(n=run.cards or "?", device=run.device or "?"))
    if run.steps_done is not None:
        details.append(_(", step {done}/{total}").format(done=run.steps_done, total=run.steps_total or "?"))
    details.append("\n" + _("its supervisor ends every process of the run (recorded as killed)"))
    return question, details


def launch_details(services: Services, name: str) -> Text:
    """What `launch` will start and where, for the dialog (in a worker: files, planner, store)."""
    recipe, path = services.recipe(name)
    hw = recipe.hardware
    devices = hw.devices or list(range(hw.cards))
    t = Text()
    t.append(_("recipe   "), style="dim")
    t.append(f"{name}\n")
    t.append(_("backend  "), style="dim")
    t.append(f"{recipe.launch.backend}\n")
    t.append(_("where    "), style="dim")
    if hw.device == "cpu":
        t.append(_("{n} rank(s) on the CPU").format(n=hw.cards) + "\n")
    else:
        t.append(_("cards {ids} ({device})").format(ids=device_ids(devices), device=hw.device) + "\n", style="bold")
    t.append(_("plan     "), style="dim")
    try:
        plan = services.plan(name)
        t.append(_("{total:.1f} GiB/card of {capacity:.1f}").format(total=plan.total_gib, capacity=plan.capacity_gib)
                 + "  ")
        t.append_text(verdict_text(plan.verdict))
    except Exception as exc:  # the dialog still asks: the planner is advice, not a gate
        t.append(_("unavailable ({error})").format(error=type(exc).__name__), style="dim")
    try:
        busy = [r for r in services.active_runs() if r.device == hw.device]
    except Exception:
        busy = []
    if busy:
        ids = ", ".join(f"{r.id} {r.name}" for r in busy[:3])
        t.append("\n" + _("already running on {device}: {runs}").format(device=hw.device, runs=ids),
                 style="bold yellow")
    t.append("\n" + _("from {path}").format(path=_shown_path(path)), style="dim")
    return t


def _shown_path(path: Path) -> str:
    """Relative to the working directory when under it: shorter, and the same in every checkout."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def launch_screen(services: Services, name: str, queue: bool = False) -> ConfirmScreen:
    """The dialog for launching (or queueing) a catalog recipe."""
    verb = _("queue") if queue else _("launch")
    question = (_("queue {name} for the runner?") if queue else _("launch {name}?")).format(name=name)
    return ConfirmScreen(question, verb=verb, load=lambda: launch_details(services, name))
