"""`zerodeck run`, `resume`, `runs`, `show`, `logs`, `stop`: thin wrappers over core/launch/api.py.

`run` in the foreground only watches: the run belongs to its detached supervisor, so Ctrl+C, a
closed terminal or a lost SSH session leaves it training.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodeck.core.cli.output import add_json_flag, emit, err, say
from zerodeck.core.errors import EXIT_FAILED, EXIT_OK, BadInput, OperationFailed
from zerodeck.core.i18n import _
from zerodeck.core.values import human, printable

if TYPE_CHECKING:  # the store pulls in SQLAlchemy: handlers import it, `zerodeck --help` does not
    from zerodeck.store.api import Store
    from zerodeck.store.records import RunRecord

RUN_COLUMNS = ["id", "name", "status", "outcome", "backend", "device", "cards", "steps", "final_loss",
               "tokens_per_s", "started_at", "reason"]


def register(sub: Any) -> None:
    p = sub.add_parser("run", help=_("launch recipes headless (the run survives the terminal)"))
    p.add_argument("recipes", nargs="+", metavar="RECIPE", help=_("recipe file or catalog name"))
    p.add_argument("--detach", action="store_true", help=_("return at once, printing the run id(s)"))
    p.add_argument("--dry-run", action="store_true",
                   help=_("print what would be launched (argv, environment, rendered files); start and record nothing"))
    p.add_argument("--scheduler", choices=("local", "slurm"), default=None,
                   help=_("run here, or submit to Slurm (overrides the recipe's [cluster] scheduler)"))
    add_json_flag(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("resume", help=_("start a new run continuing RUN from its newest complete checkpoint"))
    p.add_argument("run", type=int, metavar="RUN")
    p.add_argument("--detach", action="store_true", help=_("return at once, printing the new run id"))
    add_json_flag(p)
    p.set_defaults(handler=cmd_resume)

    p = sub.add_parser("runs", help=_("list runs"))
    p.add_argument("--limit", type=int, default=None)
    add_json_flag(p)
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser("show", help=_("one run: outcome, argv, environment, versions, metrics summary"))
    p.add_argument("run", type=int, metavar="RUN")
    add_json_flag(p)
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("logs", help=_("print a run's log"))
    p.add_argument("run", type=int, metavar="RUN")
    p.add_argument("-f", "--follow", action="store_true", help=_("keep printing until the run ends"))
    p.set_defaults(handler=cmd_logs)

    p = sub.add_parser("stop", help=_("stop a run: SIGTERM, a grace period, then SIGKILL to every process"))
    p.add_argument("run", type=int, metavar="RUN")
    add_json_flag(p)
    p.set_defaults(handler=cmd_stop)


def resolve_recipe(ref: str) -> tuple[Any, Path]:
    """A recipe file (a grid allowed: every member runs) or a catalog name."""
    from zerodeck.core.recipe import load_recipe_file
    from zerodeck.core.recipe.catalog import find_recipe
    from zerodeck.core.recipe.load import check_recipe_files

    p = Path(ref).expanduser()
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise BadInput(_("{path}: no such recipe file").format(path=ref))
        recipe = load_recipe_file(p)
        check_recipe_files(recipe, p)  # a missing data file is bad input now, not a failed job later
        return recipe, p.resolve()
    recipe, path = find_recipe(ref)
    check_recipe_files(recipe, Path(path))
    return recipe, Path(path).resolve()


def expand_refs(refs: list[str]) -> list[tuple[Any, Path]]:
    from zerodeck.core.recipe.grid import expand

    out = []
    for ref in refs:
        recipe, path = resolve_recipe(ref)
        for one in expand(recipe) if recipe.is_grid else [recipe]:
            out.append((one, path))
    return out


def reconciled(store: Store) -> None:
    from zerodeck.core.launch.reconcile import reconcile

    for run_id, what in reconcile(store):
        err(_("run {run_id}: supervisor was gone; {what}").format(run_id=run_id, what=_reconciled_as(what)))


def _reconciled_as(what: str) -> str:
    if what == "adopted":
        return _("re-adopted")
    return _("marked lost") if what == "lost" else _("recorded {outcome} from its log").format(outcome=what)


def _row(r: RunRecord) -> dict[str, Any]:
    d = r.brief()
    d["steps"] = f"{r.steps_done or 0}/{r.steps_total}" if r.steps_total else r.steps_done
    if r.stalled_at is not None and not r.finished:
        d["status"] = f"{r.status} (stalled)"
    return d


class Progress:
    """One status line per run: step/total, loss and an ETA from the step rate seen so far."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.first: tuple[float, int] | None = None
        self.last_key: tuple[Any, ...] = ()

    def line(self, r: RunRecord) -> str:
        if r.status != "running" or not r.steps_done:
            return f"run {r.id} {r.name}: {r.status}"
        now = time.monotonic()
        if self.first is None:
            self.first = (now, r.steps_done)
        total = r.steps_total or 0
        eta = ""
        t0, s0 = self.first
        if total and r.steps_done > s0:
            rate = (r.steps_done - s0) / (now - t0)
            eta = f" ETA {max(0.0, (total - r.steps_done) / rate):.0f}s"
        loss = f" loss {r.final_loss:.4f}" if r.final_loss is not None else ""
        return f"run {r.id} {r.name}: step {r.steps_done}/{total or '?'}{loss}{eta}"

    def __call__(self, r: RunRecord) -> None:
        key = (r.status, r.steps_done)
        if key == self.last_key:
            return
        self.last_key = key
        sys.stderr.write(("\r\033[K" if self.tty else "") + self.line(r) + ("" if self.tty else "\n"))
        sys.stderr.flush()


class StoreAway:
    """What a foreground run or `logs -f` says when the store goes away and comes back: one line each;
    the run goes on meanwhile and its supervisor writes its record when the store is back."""

    def __init__(self, run_id: int, tty: bool = False) -> None:
        self.run_id = run_id
        self.tty = tty
        self.away = False

    def __call__(self, error: Exception | None) -> None:
        if self.away == (error is not None):
            return  # said already
        self.away = error is not None
        lead = "\n" if self.tty else ""
        if error is not None:
            err(lead + _("{error}; run {run_id} goes on, waiting for the store").format(
                error=str(error).splitlines()[0], run_id=self.run_id))
        else:
            err(lead + _("store reachable again; run {run_id}").format(run_id=self.run_id))


def cmd_run(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_host, cli_store
    from zerodeck.core.launch import api

    todo = expand_refs(args.recipes)
    if args.scheduler is not None:
        todo = [(with_scheduler(recipe, args.scheduler), path) for recipe, path in todo]
    if args.dry_run:
        return dry_run(todo, as_json=args.json)
    host = cli_host()
    store = cli_store()
    reconciled(store)
    ids: list[int] = []
    failures = 0
    if args.detach:
        for recipe, path in todo:
            try:
                ids.append(api.start_run(store, recipe, path, detach=True, host=host))
            except OperationFailed as exc:
                err(str(exc))
                failures += 1
        if args.json:
            emit([api.get_run(store, i).brief() for i in ids], as_json=True)
        else:
            for i in ids:
                print(i)
        return EXIT_FAILED if failures else EXIT_OK
    results = []
    tty = sys.stderr.isatty()
    for recipe, path in todo:
        try:
            run_id = api.start_run(store, recipe, path, detach=True, host=host)
        except OperationFailed as exc:
            err(str(exc))
            failures += 1
            continue
        ids.append(run_id)
        if not args.json:
            print(run_id, flush=True)
        try:
            final = api.wait_run(store, run_id, poll=0.5, on_progress=Progress(tty),
                                 on_unreachable=StoreAway(run_id, tty))
        except KeyboardInterrupt:
            err(_("run {run_id} keeps running in the background; `zerodeck stop {run_id}` ends it")
                .format(run_id=run_id))
            return 130
        if tty:
            sys.stderr.write("\n")
        results.append(final)
        note = f": {final.reason}" if final.reason and final.outcome != "succeeded" else ""
        err(f"run {run_id} {final.name}: {final.outcome}{note}")
        if final.outcome != "succeeded":
            failures += 1
    if args.json:
        emit([r.brief() for r in results], as_json=True)
    return EXIT_FAILED if failures else EXIT_OK


def with_scheduler(recipe: Any, scheduler: str) -> Any:
    """The recipe with `[cluster] scheduler` replaced, validated as if the file said so."""
    from pydantic import ValidationError
    from zerodeck.core.recipe.model import ClusterSpec

    try:
        cluster = ClusterSpec.model_validate({**recipe.cluster.model_dump(), "scheduler": scheduler})
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise BadInput(f"--scheduler {scheduler}: {recipe.name}: cluster: {msg}") from None
    return recipe.model_copy(update={"cluster": cluster})


def dry_run(todo: list[tuple[Any, Path]], as_json: bool) -> int:
    """Render every recipe as `run` would and print it; no store is opened, nothing is started.
    Exit 1 when the launch preflight says one would fail at once (the reason is printed with it)."""
    import shlex

    from zerodeck.core.launch.dryrun import dry_run as render_dry

    shown = [render_dry(recipe, path) for recipe, path in todo]
    if as_json:
        emit(shown, as_json=True)
    else:
        for i, d in enumerate(shown):
            if i:
                print()
            head = f"# {d['name']} ({d['recipe_path'] or '-'}): backend {d['backend']}, {d['ranks']} rank(s)"
            print(printable(head))
            print(printable(f"# would run in {d['cwd'] or '.'}; {d['run_dir']} stands for the run's directory"))
            for key, value in d["env"].items():
                print(printable(f"{key}={shlex.quote(value)}"))
            print(printable(shlex.join(d["argv"])))
            for name, content in d["files"].items():
                print(printable(f"# --- {name} ---"))
                print("\n".join(printable(line) for line in content.rstrip("\n").split("\n")))
            if d["problem"]:
                print(printable(f"# would fail: {d['problem']}"))
    for d in shown:
        if d["problem"]:
            err(f"{d['name']}: would fail: {d['problem']}")
    return EXIT_FAILED if any(d["problem"] for d in shown) else EXIT_OK
def cmd_resume(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_host, cli_store
    from zerodeck.core.launch import api
    from zerodeck.core.launch.resume import resume_run

    host = cli_host()
    store = cli_store()
    reconciled(store)
    run_id = resume_run(store, args.run, host=host)
    if args.detach:
        if args.json:
            emit(api.get_run(store, run_id).brief(), as_json=True)
        else:
            print(run_id)
        return EXIT_OK
    if not args.json:
        print(run_id, flush=True)
    tty = sys.stderr.isatty()
    try:
        final = api.wait_run(store, run_id, poll=0.5, on_progress=Progress(tty),
                             on_unreachable=StoreAway(run_id, tty))
    except KeyboardInterrupt:
        err(f"run {run_id} keeps running in the background; `zerodeck stop {run_id}` ends it")
        return 130
    if tty:
        sys.stderr.write("\n")
    note = f": {final.reason}" if final.reason and final.outcome != "succeeded" else ""
    err(f"run {run_id} {final.name}: {final.outcome}{note}")
    if args.json:
        emit(final.brief(), as_json=True)
    return EXIT_OK if final.outcome == "succeeded" else EXIT_FAILED


def cmd_runs(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.launch import api

    store = cli_store()
    reconciled(store)
    runs = api.list_runs(store, limit=args.limit)
    if args.json:
        emit([r.brief() for r in runs], as_json=True)
    else:
        emit([_row(r) for r in runs], as_json=False, columns=RUN_COLUMNS)
    return EXIT_OK


def run_detail(store: Store, run_id: int) -> dict[str, Any]:
    """Every column of the run (JSON columns decoded) plus its metric points and card peaks."""
    from zerodeck.core.launch import api

    record = api.get_run(store, run_id).as_dict()
    # Keys in the table's column order, as `show --json` has always printed them (the record puts
    # `status` first among its required fields).
    status = record.pop("status")
    data: dict[str, Any] = {}
    for key, value in record.items():
        data[key] = value
        if key == "tags":
            data["status"] = status
    data["metrics"] = [p._asdict() for p in store.metrics(run_id)]
    data["card_peaks"] = [asdict(p) for p in store.card_peaks(run_id)]
    data["events"] = [e.as_dict() for e in store.events(run_id)]
    job = store.slurm_job(run_id)  # issue 15: the run's Slurm job (null for a local run)
    data["slurm"] = job.as_dict() if job is not None else None
    return data


def cmd_show(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store

    store = cli_store()
    reconciled(store)
    data = run_detail(store, args.run)
    if args.json:
        emit(data, as_json=True)
        return EXIT_OK
    keys = ["id", "name", "status", "outcome", "reason", "exit_code", "attempts", "backend", "device", "cards",
            "master_port", "steps_done", "steps_total", "final_loss", "samples_per_s", "tokens_per_s",
            "train_runtime_s", "predicted_peak_gib", "measured_peak_gib", "created_at", "started_at", "ended_at",
            "host",
            "log_path", "recipe_path", "parent_id", "resumed_from", "stalled_at"]
    emit({k: data.get(k) for k in keys}, as_json=False)
    say(f"{'argv'.ljust(18)}  {printable(' '.join(data.get('argv') or []))}")
    for peak in data["card_peaks"]:
        total = f" of {peak['total_mb']:.0f}" if peak.get("total_mb") else ""
        base = f" (baseline {peak['baseline_mb']:.0f})" if peak.get("baseline_mb") is not None else ""
        say(f"{('peak ' + peak['card']).ljust(18)}  {peak['peak_mb'] or 0:.0f} MB{total}{base} [{peak['source']}]")
    slurm = data.get("slurm")
    if slurm:
        why = f" ({slurm['state_reason']})" if slurm.get("state_reason") else ""
        waited = slurm.get("queue_wait_s")
        wait = f", waited {human(waited)} s in the queue" if waited is not None else ""
        say(f"{'slurm'.ljust(18)}  job {slurm['job_id']} {slurm['state']}{why}: {slurm['nodes']} node(s) x "
            f"{slurm['cards_per_node']} card(s){' on ' + slurm['node_list'] if slurm.get('node_list') else ''}{wait}")
    for event in data["events"]:
        say(f"{('event ' + event['kind']).ljust(18)}  {event['at']}  {printable(_event_text(event['detail']))}")
    return EXIT_OK


def _event_text(detail: Any) -> str:
    if isinstance(detail, dict):
        return str(detail.get("summary") or ", ".join(f"{k}={v}" for k, v in detail.items() if k != "cards"))
    return "" if detail is None else str(detail)


def cmd_logs(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.launch import api

    store = cli_store()
    run = api.get_run(store, args.run)
    if not run.log_path or not Path(run.log_path).exists():
        raise OperationFailed(_("run {run_id} has no log file").format(run_id=args.run))
    away = StoreAway(args.run)
    with open(run.log_path, "rb") as fh:
        while True:
            chunk = fh.read(65536)
            if chunk:
                sys.stdout.write(chunk.decode("utf-8", errors="replace"))
                sys.stdout.flush()
                continue
            # refresh: a follower notices a dead supervisor too, so `logs -f` never waits forever.
            if not args.follow or follow_over(store, args.run, away):
                rest = fh.read()
                if rest:
                    sys.stdout.write(rest.decode("utf-8", errors="replace"))
                break
            time.sleep(0.5)
    return EXIT_OK


def follow_over(store: Any, run_id: int, away: StoreAway) -> bool:
    """Whether a followed run has finished; a store that cannot be reached says so once and the
    log goes on being followed (the run goes on)."""
    from zerodeck.core.launch import api
    from zerodeck.store.errors import StoreUnreachable

    try:
        finished = api.refresh(store, run_id).finished
    except StoreUnreachable as exc:
        away(exc)
        return False
    away(None)
    return finished


def cmd_stop(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.launch import api

    run = api.stop_run(cli_store(), args.run)
    if args.json:
        emit(run.brief(), as_json=True)
    else:
        err(f"run {run.id} {run.name}: {run.outcome}")
    return EXIT_OK
