"""Resume: which checkpoint is complete, `zerodeck resume` and the automatic resume of `[launch]
retries` with `resume = true`, with real supervised processes (the `command` backend writing
HF-Trainer-shaped checkpoints) and a real store."""

from __future__ import annotations

import json
from pathlib import Path

from zerodeck.core.launch.checkpoints import is_complete, newest_complete

from tests.launch_helpers import command_recipe, home_store, run_row, wait_for


def _hf(path: Path, *, weights: bool = True, optimizer: bool = True, state: bool = True) -> Path:
    path.mkdir(parents=True)
    if state:
        (path / "trainer_state.json").write_text('{"global_step": 1}')
    if weights:
        (path / "model.safetensors").write_bytes(b"w")
    if optimizer:
        (path / "optimizer.pt").write_bytes(b"o")
    return path


def test_a_checkpoint_counts_only_when_every_file_is_there(tmp_path: Path) -> None:
    assert is_complete(_hf(tmp_path / "checkpoint-10"))
    assert not is_complete(_hf(tmp_path / "checkpoint-20", optimizer=False))
    assert not is_complete(_hf(tmp_path / "checkpoint-30", state=False))
    lora = _hf(tmp_path / "checkpoint-40", weights=False)
    (lora / "adapter_model.safetensors").write_bytes(b"a")
    assert is_complete(lora)
    sharded = _hf(tmp_path / "checkpoint-50", weights=False)
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    (sharded / "model-00001-of-00002.safetensors").write_bytes(b"1")
    assert not is_complete(sharded)  # the save stopped before its second shard
    ds = _hf(tmp_path / "checkpoint-60", optimizer=False)
    (ds / "global_step60").mkdir()
    (ds / "global_step60" / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"z")
    assert is_complete(ds)
    own = tmp_path / "checkpoint-70"
    own.mkdir()
    (own / "ds").mkdir()
    (own / "ds" / "mp_rank_00_model_states.pt").write_bytes(b"m")
    (own / "trainer_state.json").write_text(json.dumps(
        {"global_step": 70, "zerodeck_files": ["ds/mp_rank_00_model_states.pt", "ds/zero_pp_rank_1_optim.pt"]}))
    assert not is_complete(own)
    (own / "ds" / "zero_pp_rank_1_optim.pt").write_bytes(b"o")
    assert is_complete(own)
    (tmp_path / ".checkpoint-80.partial").mkdir()
    _hf(tmp_path / "checkpoint-90", optimizer=False)
    newest = newest_complete(tmp_path)
    assert newest is not None and newest.step == 70  # 90 is incomplete, the partial one is not a checkpoint


# A job shaped like an HF Trainer run: steps as JSON lines, a complete checkpoint every 2 steps, and
# when ZERODECK_RESUME_FROM names one, it continues after that step.
TRAIN = """
    import json, os, sys
    out = os.path.join(sys.argv[1], "output")
    start = 1
    resume = os.environ.get("ZERODECK_RESUME_FROM")
    if resume:
        start = json.load(open(os.path.join(resume, "trainer_state.json")))["global_step"] + 1
    fail_at = int(os.environ.get("FAIL_AT", "0"))
    for s in range(start, 7):
        print(json.dumps({"zerodeck": "step", "step": s, "total_steps": 6, "loss": 6.0 - s / 2, "rank": 0,
                          "t": s * 0.1}), flush=True)
        if s % 2 == 0:
            d = os.path.join(out, f"checkpoint-{s}")
            os.makedirs(d)
            for name in ("model.safetensors", "optimizer.pt"):
                open(os.path.join(d, name), "wb").write(b"x")
            json.dump({"global_step": s}, open(os.path.join(d, "trainer_state.json"), "w"))
        if s == fail_at and not resume:
            print("RuntimeError: [pair.cc:598] Connection closed by peer [127.0.0.1]:4242", flush=True)
            sys.exit(1)
    print(json.dumps({"zerodeck": "done", "steps": 6, "train_runtime": 0.6, "train_loss": 4.5}), flush=True)
"""


def _with_env(path: Path, env: str, resume: bool = False) -> Path:
    text = path.read_text().replace('backend = "command"', f'backend = "command"\nenv = {{ {env} }}')
    if resume:
        text = text.replace("retries = 1", "retries = 1\nresume = true")
    path.write_text(text)
    return path


def test_resume_continues_from_the_newest_checkpoint_as_a_linked_run(cli, tmp_path: Path) -> None:
    recipe = _with_env(command_recipe(tmp_path, TRAIN), 'FAIL_AT = "5"')
    code, out, _ = cli("run", str(recipe), "--json")
    (first,) = json.loads(out)
    assert code == 1 and first["outcome"] == "comm_error" and first["steps_done"] == 5
    code, out, err = cli("resume", str(first["id"]), "--json")
    second = json.loads(out)
    assert code == 0 and second["outcome"] == "succeeded", err
    code, out, _ = cli("show", str(second["id"]), "--json")
    detail = json.loads(out)
    assert detail["parent_id"] == first["id"] and detail["resumed_from"].endswith("/output/checkpoint-4")
    (event,) = [e for e in detail["events"] if e["kind"] == "resumed"]
    assert event["detail"]["step"] == 4 and event["detail"]["parent"] == first["id"]
    assert [p["step"] for p in detail["metrics"]] == [5, 6]  # nothing before the checkpoint again
    curve = home_store().chain_metrics(second["id"])
    assert [p.step for p in curve] == [1, 2, 3, 4, 5, 6]
    code, out, _ = cli("show", str(first["id"]), "--json")
    assert [e["kind"] for e in json.loads(out)["events"]] == ["resumed_as"]


def test_resume_without_a_checkpoint_fails_and_of_a_live_run_is_refused(cli, tmp_path: Path) -> None:
    recipe = _with_env(command_recipe(tmp_path, TRAIN), 'FAIL_AT = "1"')
    code, out, _ = cli("run", str(recipe), "--json")
    (run,) = json.loads(out)
    code, _, err = cli("resume", str(run["id"]))
    assert code == 1 and err.strip() == f"zerodeck: run {run['id']} has no complete checkpoint to resume from"
    from zerodeck.core.launch.api import create_run
    from zerodeck.core.recipe import load_recipe_file

    queued = create_run(home_store(), load_recipe_file(recipe), recipe)  # just recorded: not reconciled yet
    code, _, err = cli("resume", str(queued))
    assert code == 2 and err.strip() == f"zerodeck: run {queued} is queued; stop it first (`zerodeck stop {queued}`)"
    assert cli("resume", "9999")[0] == 2


def test_retries_with_resume_continue_after_a_comm_error(cli, tmp_path: Path) -> None:
    recipe = _with_env(command_recipe(tmp_path, TRAIN, retries=1), 'FAIL_AT = "3"', resume=True)
    code, out, _ = cli("run", str(recipe), "--json")
    (first,) = json.loads(out)
    assert first["outcome"] == "comm_error" and code == 1
    store = home_store()
    child = wait_for(lambda: next((r for r in store.runs() if r.parent_id == first["id"]), None), 30)
    done = wait_for(lambda: run_row(child.id).finished and run_row(child.id), 60)
    assert done.outcome == "succeeded" and done.resumed_from.endswith("checkpoint-2")
    assert [p.step for p in store.metrics(child.id)] == [3, 4, 5, 6]
    assert store.events(child.id)[0].detail["automatic"] is True
    assert "resumed automatically as run" in Path(first["log_path"]).read_text()


def test_an_oom_is_never_resumed(cli, tmp_path: Path) -> None:
    oom = TRAIN.replace('print("RuntimeError: [pair.cc:598] Connection closed by peer [127.0.0.1]:4242", flush=True)',
                        'print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)')
    recipe = _with_env(command_recipe(tmp_path, oom, retries=1), 'FAIL_AT = "3"', resume=True)
    code, out, _ = cli("run", str(recipe), "--json")
    (first,) = json.loads(out)
    assert first["outcome"] == "oom"
    assert not [r for r in home_store().runs() if r.parent_id == first["id"]]
