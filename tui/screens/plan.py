"""Plan: a recipe's per-card memory breakdown against the card, the verdict, the cheapest change that
fits, and the data advice. Everything shown comes from the planner (zerodeck.core.plan)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static
from zerodeck.core.i18n import _
from zerodeck.tui.messages import LaunchRequested, PlanBuilt
from zerodeck.tui.screens.base import ZerodeckScreen
from zerodeck.tui.widgets.footer import KeysFooter
from zerodeck.tui.widgets.modebar import ModeBar
from zerodeck.tui.widgets.plan_bars import PlanBars, plan_numbers


class PlanScreen(ZerodeckScreen):
    BINDINGS = [Binding("escape,b", "app.pop_screen", _("Back")), Binding("l", "launch", _("Launch"))]

    def __init__(self, recipe_name: str) -> None:
        super().__init__()
        self.recipe_name = recipe_name
        self.file_problems: list[str] = []

    def compose(self) -> ComposeResult:
        yield ModeBar()
        with VerticalScroll(id="plan-body"):
            yield Static(Text(_("Plan · {recipe}").format(recipe=self.recipe_name), style="bold"), id="plan-title")
            yield PlanBars(id="plan-bars")
            yield Static("", id="plan-advice")
            yield Static("", id="plan-data")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="plan")
    def load(self) -> None:
        services = self.zapp.services
        try:
            plan = services.plan(self.recipe_name)
        except Exception as exc:
            self.post_message(PlanBuilt(error=str(exc)))
            return
        try:
            advice = services.data_advice(self.recipe_name)
        except Exception as exc:
            advice = {"error": str(exc)}
        self.file_problems = missing_files(services, self.recipe_name)
        self.post_message(PlanBuilt(plan, advice))

    def on_plan_built(self, msg: PlanBuilt) -> None:
        if msg.error:
            self.query_one("#plan-bars", PlanBars).display = False
            self.query_one("#plan-advice", Static).update(Text(msg.error, style="red"))
            return
        plan, advice = msg.plan, msg.advice
        numbers = plan_numbers(plan)
        self.query_one("#plan-bars", PlanBars).show(numbers)
        text = advice_text(plan, numbers)
        for line in self.file_problems:
            text.append(_("{problem} (a launch would fail)").format(problem=line) + "\n", style="red")
        self.query_one("#plan-advice", Static).update(text)
        self.query_one("#plan-data", Static).update(data_text(advice))

    def action_launch(self) -> None:
        # The plan stays under the confirmation, so a cancelled launch comes back to it.
        self.app.post_message(LaunchRequested(self.recipe_name))


def missing_files(services: Any, name: str) -> list[str]:
    """`PATH:LINE: field: message` for each local file the recipe names that is not there now."""
    from zerodeck.core.recipe.load import recipe_file_problems

    try:
        recipe, path = services.recipe(name)
        return [str(p) for p in recipe_file_problems(recipe, path, path.parent)]
    except Exception as exc:  # the plan above already says what is wrong with the recipe itself
        return [_("cannot check the recipe's files: {error}").format(error=exc)]


def _attr(obj: Any, *names: str) -> Any:
    for n in names:
        v = obj.get(n) if isinstance(obj, dict) else getattr(obj, n, None)
        if v is not None:
            return v
    return None


def advice_text(plan: Any, numbers: dict[str, Any]) -> Text:
    raw = numbers["raw"]
    t = Text()
    host = numbers.get("host_gib")
    if host is not None:
        t.append(_("host RAM: {gib:.1f} GiB").format(gib=host) + "\n")
    text_of = getattr(plan, "max_micro_batch_text", None)
    mb = text_of() if callable(text_of) else _attr(raw, "max_micro_batch")
    if mb is not None:
        t.append(_("largest micro-batch that fits: {mb}").format(mb=mb) + "\n")
    sug = _attr(plan, "suggestion") or _attr(raw, "suggestion")
    if sug:
        t.append(_("cheapest change that fits: "), style="bold")
        t.append(str(_attr(sug, "text", "description", "summary") or sug) + "\n")
    note = _attr(plan, "data_advice")
    if note:
        t.append(_("data size: {advice}").format(advice=note) + "\n")
    return t


def data_text(advice: Any) -> Text:
    if advice is None:
        return Text(_("data: no local data file to inspect"), style="dim")
    if isinstance(advice, dict) and "error" in advice and len(advice) == 1:
        return Text(_("data: {error}").format(error=advice["error"]), style="red")
    get = (lambda k: advice.get(k)) if isinstance(advice, dict) else (lambda k: getattr(advice, k, None))
    t = Text(_("data: "), style="bold")
    t.append(_("{samples} samples, {duplicates} duplicates").format(samples=get("samples"),
                                                                    duplicates=get("duplicates")))
    rec = get("recommended_samples")
    if rec:
        t.append(_(", recommended ≈ {n}").format(n=rec))
    length = get("length") or {}
    if length:
        p = (lambda k: length.get(k)) if isinstance(length, dict) else (lambda k: getattr(length, k, None))
        t.append(_("; length p50 {p50} p95 {p95} max {max}").format(p50=p("p50"), p95=p("p95"), max=p("max")))
    verdict = get("verdict")
    if verdict:
        t.append(f" — {verdict}")
    return t
