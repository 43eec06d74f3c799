"""Alerts through Apprise to a real HTTP server on the loopback address (Apprise's json:// target),
sent by real supervisors and by the reconciler, plus the config, masking and `zerodeck alerts test`."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from zerodeck.core.alerts.config import AlertConfig, for_recipe, load_config, mask_url
from zerodeck.core.alerts.message import compose
from zerodeck.core.errors import BadInput
from zerodeck.core.launch import procs

from tests.launch_helpers import command_recipe, home_store, run_row, wait_for


class Hooks:
    """A webhook receiver: every POST body by path; `/hang` holds its request until released."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any], float]] = []
        self.release = threading.Event()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/hang"):
                    hooks.release.wait(60)
                hooks.received.append((self.path, json.loads(body or b"{}"), time.monotonic()))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def messages(self, path: str = "/ok") -> list[dict[str, Any]]:
        return [body for p, body, _ in self.received if p.startswith(path)]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    yield h
    h.release.set()
    h.server.shutdown()


def configure(home: Path, *urls: str, on: str = '["finished", "stalled", "lost"]') -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f"[alerts]\nurls = {json.dumps(list(urls))}\non = {on}\n")


# -- config, masking, the message ----------------------------------------------------------------
def test_urls_are_shown_without_their_secrets() -> None:
    assert mask_url("json://127.0.0.1:8080/hook?token=abc") == "json://127.0.0.1:8080/***"
    assert mask_url("mailto://user:pw@example.com") == "mailto://example.com/***"
    assert mask_url("slack://TokenA/TokenB/TokenC") == "slack://***/***"
    assert mask_url("lark://0123456789abcdef") == "lark://***"
    assert mask_url("dingtalk://secret@token/") == "dingtalk://***/***"
    assert mask_url("no scheme") == "***"


def test_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert load_config(path) == AlertConfig()  # no file: no targets
    for text, field in (('[alerts]\nurls = "json://x"\n', "alerts.urls"), ('[alerts]\non = ["done"]\n', "alerts.on"),
                        ('[alerts]\nurl = []\n', "unknown key(s) url"), ("[alerts\n", str(path))):
        path.write_text(text)
        with pytest.raises(BadInput) as exc:
            load_config(path)
        assert str(exc.value).startswith(f"{path}: ") and field in str(exc.value) and "\n" not in str(exc.value)
    path.write_text('[alerts]\nurls = ["mailto://u:secret@example.com", "s3cret-no-scheme"]\n')
    with pytest.raises(BadInput) as exc:
        load_config(path)
    assert "secret" not in str(exc.value)


def test_a_recipe_overrides_the_config_key_by_key(tmp_path: Path) -> None:
    from zerodeck.core.recipe import load_recipe_file

    from tests.launch_helpers import demo_copy

    recipe = load_recipe_file(demo_copy(tmp_path, 0, __extra__='[alerts]\non = ["lost"]\n'))
    base = AlertConfig(("json://127.0.0.1:1/a",), ("finished", "stalled", "lost"))
    assert for_recipe(base, recipe) == AlertConfig(("json://127.0.0.1:1/a",), ("lost",))


# -- real runs -------------------------------------------------------------------------------------
STEPS = """
    import json, sys, time
    for s in range(1, 4):
        print(json.dumps({"zerodeck": "step", "step": s, "total_steps": 3, "loss": 6.0 - s / 2, "rank": 0,
                          "t": s * 0.1}), flush=True)
        if s == 2 and "{mode}" == "hang":  # mid-training: after the last step nothing is watched
            time.sleep({sleep})
    if "{mode}" == "fail":
        print("Traceback (most recent call last):\\nValueError: bad batch", flush=True)
        sys.exit(3)
    print(json.dumps({"zerodeck": "done", "steps": 3, "train_runtime": 0.3, "train_loss": 5.0}), flush=True)
"""


def _recipe(tmp: Path, mode: str, sleep: float = 0, extra: str = "") -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    path = command_recipe(tmp, STEPS.replace("{mode}", mode).replace("{sleep}", str(sleep)))
    if extra:
        path.write_text(path.read_text() + extra)
    return path


def test_succeeded_and_failed_runs_send_one_message_each(cli, tmp_path: Path, zd_home: Path, hooks: Hooks) -> None:
    configure(zd_home, hooks.url("ok?token=s3cret"))
    code, out, _ = cli("run", str(_recipe(tmp_path / "a", "ok")), "--json")
    (good,) = json.loads(out)
    code, out, _ = cli("run", str(_recipe(tmp_path / "b", "fail")), "--json")
    (bad,) = json.loads(out)
    assert good["outcome"] == "succeeded" and bad["outcome"] == "failed"
    wait_for(lambda: len(hooks.messages()) == 2, 30)
    by_title = {m["title"]: m["message"] for m in hooks.messages()}
    body = by_title[f"zerodeck: run {good['id']} demo-cpu-zero0 succeeded"]
    assert "last step 3/3, loss 4.5" in body and f"zerodeck show {good['id']}" in body and "2 cpu cards" in body
    failed = by_title[f"zerodeck: run {bad['id']} demo-cpu-zero0 failed"]
    assert "outcome: failed (" in failed and "ValueError" in failed
    sent = wait_for(lambda: home_store().events(good["id"], kinds=["alert_sent"]), 10)
    assert sent[0].detail["target"] == f"json://127.0.0.1:{hooks.port}/***"
    code, out, _ = cli("show", str(good["id"]), "--json")
    assert "s3cret" not in out and "s3cret" not in json.dumps(home_store().run(good["id"]).env)


def test_a_stalled_run_sends_the_stall_with_its_cards_then_the_outcome(cli, tmp_path: Path, zd_home: Path,
                                                                      hooks: Hooks) -> None:
    configure(zd_home, hooks.url("ok"))
    watch = "\n[watch]\nstall_floor_s = 2\nstall_factor = 1\n"
    code, out, _ = cli("run", str(_recipe(tmp_path, "hang", sleep=6, extra=watch)), "--json")
    (run,) = json.loads(out)
    assert run["outcome"] == "succeeded"
    wait_for(lambda: len(hooks.messages()) == 2, 30)
    stalled = next(m for m in hooks.messages() if m["title"].endswith(" stalled"))
    assert "stalled: no progress for" in stalled["message"] and "at step 2" in stalled["message"]
    assert "card rank" in stalled["message"]  # the CPU ranks' state at the stall


def test_a_run_whose_supervisor_was_sigkilled_is_reported_lost_by_the_reconciler(
        cli, tmp_path: Path, zd_home: Path, hooks: Hooks) -> None:
    configure(zd_home, hooks.url("ok"), on='["lost"]')
    code, out, _ = cli("run", str(_recipe(tmp_path, "hang", sleep=120)), "--detach", "--json")
    (run,) = json.loads(out)
    wait_for(lambda: (run_row(run["id"]).steps_done or 0) >= 2, 30)
    row = run_row(run["id"])
    os.kill(row.supervisor_pid, signal.SIGKILL)
    for pid in procs.tagged_pids(row.workdir):  # the job dies hard too: nothing is left to tell
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not procs.tagged_pids(row.workdir), 10)
    code, out, err = cli("runs", "--json")
    assert run_row(run["id"]).outcome == "lost", err
    (msg,) = wait_for(lambda: hooks.messages(), 30)
    assert msg["title"] == f"zerodeck: run {run['id']} demo-cpu-zero0 lost" and "last step 2/3" in msg["message"]


def test_a_hanging_target_delays_neither_the_outcome_nor_the_other_targets(
        cli, tmp_path: Path, zd_home: Path, hooks: Hooks) -> None:
    configure(zd_home, hooks.url("hang"), hooks.url("ok"))
    t0 = time.monotonic()
    code, out, _ = cli("run", str(_recipe(tmp_path, "ok")), "--json")
    returned = time.monotonic()
    (run,) = json.loads(out)
    assert code == 0 and run["outcome"] == "succeeded"
    wait_for(lambda: hooks.messages("/ok"), 30)
    assert not home_store().events(run["id"], kinds=["alert_failed"])  # still waiting on the hanging one
    failed = wait_for(lambda: home_store().events(run["id"], kinds=["alert_failed"]), 40)
    assert failed[0].detail["target"] == f"json://127.0.0.1:{hooks.port}/***"
    assert [e.kind for e in home_store().events(run["id"])].count("alert_sent") == 1
    assert returned - t0 < 60


def test_alerts_test_reports_each_target(cli, zd_home: Path, hooks: Hooks) -> None:
    code, _, err = cli("alerts", "test")
    assert code == 2 and err.startswith("zerodeck: ") and "no alert targets" in err
    configure(zd_home, hooks.url("ok?key=s3cret"), "json://127.0.0.1:1/closed")
    code, out, _ = cli("alerts", "test", "--json")
    data = json.loads(out)
    assert code == 1 and "s3cret" not in out
    assert [(t["url"], t["ok"]) for t in data["targets"]] == [
        (f"json://127.0.0.1:{hooks.port}/***", True), ("json://127.0.0.1:1/***", False)]
    assert "test alert" in hooks.messages()[0]["title"]


def test_the_message_names_what_a_person_needs(tmp_path: Path) -> None:
    from zerodeck.store.records import RunRecord

    run = RunRecord(id=7, name="qwen-7b", recipe_hash="x", status="finished", outcome="comm_error",
                    reason="stalled for 12 min at step 4100", host="node3", cards=8, device="npu",
                    steps_done=4100, steps_total=9000, final_loss=1.2345, parent_id=5,
                    resumed_from="/o/checkpoint-4000")
    title, body = compose(run, "finished")
    assert title == "zerodeck: run 7 qwen-7b comm_error"
    assert body.splitlines() == [
        "run 7 qwen-7b on node3, 8 npu cards", "outcome: comm_error (stalled for 12 min at step 4100)",
        "last step 4100/9000, loss 1.234", "resumed from run 5 at /o/checkpoint-4000", "look: zerodeck show 7"]
