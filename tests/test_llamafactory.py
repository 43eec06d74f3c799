"""Real LLaMA-Factory training on the CPU: LoRA SFT of a tiny Qwen2 under DeepSpeed ZeRO-3, 2 ranks.

The environment is the cached one `scripts/lf-venv.sh` builds (llamafactory 0.9.5, transformers
5.5.4, DeepSpeed 0.19.8, torch 2.13 CPU); the model and tokenizer are built locally by
`tests/lf_tiny_model.py` with that environment's Python, so nothing is downloaded. The tests skip,
saying why, only when that environment cannot be built.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from zerodeck.core.launch.context import RenderContext
from zerodeck.core.launch.llamafactory import CLI_ENV, YAML_NAME, render
from zerodeck.core.outcome.classify import diagnose
from zerodeck.core.outcome.evals import eval_points
from zerodeck.core.recipe import load_recipe_file

from .conftest import FIXTURES, ROOT
from .launch_helpers import built_env
from .test_llamafactory_render import parse_yaml

pytestmark = [pytest.mark.slow, pytest.mark.llamafactory]

LF_FIXTURES = FIXTURES / "llamafactory"
RECIPE = """\
name = "tiny-qwen2-lora-z3"
[model]
path = "{model}"
[method]
kind = "lora"
rank = 8
alpha = 16
target = "all"
[zero]
stage = 3
[data]
dataset = "alpaca_tiny"
dataset_dir = "{data}"
template = "qwen"
[train]
micro_batch = 2
grad_accum = 2
seq_len = 128
epochs = 2
lr = 1e-3
grad_ckpt = false
precision = "fp32"
[hardware]
device = "cpu"
cards = 2
card_gb = 4
[launch]
backend = "llamafactory"
"""

EVAL_OPTIONS = ('options = { val_size = 0.25, eval_strategy = "steps", eval_steps = 2, '
                'per_device_eval_batch_size = 2 }\n')


@pytest.fixture(scope="session")
def lf_venv() -> Path:
    """The LLaMA-Factory environment, built once (about a minute) and then reused."""
    return built_env("lf-venv.sh", "LLaMA-Factory", timeout=1800)


@pytest.fixture(scope="session")
def tiny_qwen(lf_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-qwen2")
    subprocess.run([str(lf_venv / "bin" / "python"), str(ROOT / "tests" / "lf_tiny_model.py"), str(out),
                    str(LF_FIXTURES / "alpaca_tiny.json")], check=True, capture_output=True, timeout=600)
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    return out


@pytest.fixture
def recipe_file(tmp_path: Path, tiny_qwen: Path) -> Path:
    path = tmp_path / "recipes" / "tiny-qwen2-lora-z3.toml"
    path.parent.mkdir()
    path.write_text(RECIPE.format(model=tiny_qwen, data=LF_FIXTURES))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env() -> dict[str, str]:
    """This process's environment with zerodeck's venv first on PATH: its own `torchrun` (another
    torch, no LLaMA-Factory) is what a job would find unless the render puts the CLI's bin first."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def loss_points(output_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (output_dir / "trainer_log.jsonl").read_text().splitlines() if line]
    return [row["loss"] for row in rows if "loss" in row]


def grad_norms(output_dir: Path) -> list[float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return [row["grad_norm"] for row in history if "grad_norm" in row]


def grad_norms_ok(norms: list[float]) -> tuple[bool, str]:
    """Six gradient norms of the size this LoRA gives (about 0.5). Uninitialized memory read as a
    gathered ZeRO-3 weight shows here first: as 1e28 or NaN, or as 0 where it read as denormals, while
    the loss can still look like a random model's ln 400."""
    if len(norms) == 6 and all(math.isfinite(g) and 1e-3 < g < 10 for g in norms):
        return True, ""
    return False, (f"gradient norms {norms}: expected six near 0.5; a weight gathered under ZeRO-3 was "
                   "not the one loaded (DeepSpeed < 0.19.8 on gloo waited for only the last of its all-gathers)")


def losses_ok(losses: list[float], console: str) -> tuple[bool, str]:
    """Six finite positive losses (a random model over a ~400-token vocabulary starts near ln 400 = 6);
    else a message that says what the numbers mean and shows the end of the training console."""
    if len(losses) == 6 and all(math.isfinite(x) and x > 0 for x in losses):
        return True, ""
    why = ("a NaN/inf loss (fp32: from the model or the data, not an fp16 overflow)" if any(not math.isfinite(x)
           for x in losses) else "a zero loss: every label of a batch masked, or the Trainer's NaN filter")
    return False, f"losses {losses}: {why}\n--- console tail ---\n{console[-3000:]}"


def test_rendered_yaml_reads_back_in_llamafactory(lf_venv: Path, tmp_path: Path, monkeypatch) -> None:
    """LLaMA-Factory's own loader (OmegaConf over PyYAML) reads every value as the JSON it was written as."""
    monkeypatch.setenv(CLI_ENV, str(lf_venv / "bin" / "llamafactory-cli"))
    recipe = load_recipe_file(ROOT / "recipes" / "qwen2.5-7b-lora.toml")
    recipe = recipe.model_copy(update={
        "train": recipe.train.model_copy(update={"lr": 1e-5}),
        "zero": recipe.zero.model_copy(update={"stage": 3}),
        "launch": recipe.launch.model_copy(update={"options": {"warmup_ratio": 0.1, "lora_target": "q_proj,v_proj",
                                                               "run_name": "a: b # c", "max_grad_norm": 1}}),
    })
    ctx = RenderContext(1, tmp_path / "run #1: x", tmp_path, free_port(), list(range(8)), sys.executable)
    text = render(recipe, ctx).files[YAML_NAME]
    (tmp_path / "x.yaml").write_text(text)
    code = ("import json,sys; from omegaconf import OmegaConf; "
            "print(json.dumps(OmegaConf.to_container(OmegaConf.load(sys.argv[1]))))")
    out = subprocess.run([str(lf_venv / "bin" / "python"), "-c", code, str(tmp_path / "x.yaml")],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    loaded = json.loads(out)
    assert loaded == parse_yaml(text)
    assert loaded["learning_rate"] == 1e-5 and isinstance(loaded["learning_rate"], float)
    assert loaded["deepspeed"] == str(ctx.run_dir / "ds_config.json")
    assert loaded["run_name"] == "a: b # c" and loaded["resume_from_checkpoint"] is None


def test_render_then_run_the_argv_trains(lf_venv: Path, recipe_file: Path, tmp_path: Path, monkeypatch) -> None:
    """(a) Without the supervisor: the rendered files, argv, env and cwd train as they are."""
    monkeypatch.setenv(CLI_ENV, str(lf_venv / "bin" / "llamafactory-cli"))
    recipe = load_recipe_file(recipe_file)
    run_dir = tmp_path / "run dir"  # a space: LLaMA-Factory re-splits its argv for torchrun
    run_dir.mkdir()
    ctx = RenderContext(1, run_dir, recipe_file.parent, free_port(), [0, 1], sys.executable)
    launch = render(recipe, ctx)
    for name, content in launch.files.items():
        (run_dir / name).write_text(content)
    assert launch.env["FORCE_TORCHRUN"] == "1" and launch.env["NPROC_PER_NODE"] == "2"

    log = run_dir / "console.log"
    with log.open("wb") as fh:
        proc = subprocess.run(launch.argv, env={**base_env(), **launch.env}, cwd=launch.cwd, stdout=fh,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=900,
                              start_new_session=True)
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        # DeepSpeed on gloo: a rank can abort at exit once training is done (std::terminate from a comm
        # thread; rank 1 while rank 0 still saves). zerodeck records that as a success naming the
        # abort; anything else is a failure of this test.
        verdict = diagnose(text, exit_code=proc.returncode)
        assert verdict.outcome == "succeeded" and "aborted while shutting down" in verdict.reason, text[-3000:]
    assert "Initializing 2 distributed tasks" in text
    assert "world size: 2" in text and "distributed training: True" in text
    assert "Detected DeepSpeed ZeRO-3" in text
    assert "Fine-tuning method: LoRA" in text

    output = run_dir / "output"
    assert (output / "adapter_model.safetensors").is_file()
    losses = loss_points(output)
    # 24 samples, 2 ranks x micro batch 2 x accumulation 2, 2 epochs: 6 optimizer steps, one point each.
    ok, message = losses_ok(losses, text)
    assert ok, message
    ok, message = grad_norms_ok(grad_norms(output))
    assert ok, message
    assert losses[-1] < losses[0], f"losses {losses}: the adapter did not learn"
    results = json.loads((output / "train_results.json").read_text())
    assert results["epoch"] == pytest.approx(2.0)


def test_zerodeck_run_records_succeeded_with_loss_points(lf_venv: Path, recipe_file: Path, cli, monkeypatch) -> None:
    """(b) The same recipe through `zerodeck run`, evaluating every two steps on a quarter of the data:
    the supervisor runs it and records the outcome; the eval loss read back from its console (what
    `chart loss` draws) is the one the trainer logged, at the steps it logged it."""
    text = recipe_file.read_text().replace('backend = "llamafactory"\n', 'backend = "llamafactory"\n' + EVAL_OPTIONS)
    recipe_file.write_text(text)
    monkeypatch.setenv(CLI_ENV, str(lf_venv / "bin" / "llamafactory-cli"))
    # zerodeck's own venv (another torch, another torchrun) first on PATH, as when it is activated.
    monkeypatch.setenv("PATH", base_env()["PATH"])
    code, out, err = cli("run", str(recipe_file), "--json")
    runs = json.loads(out)
    assert code == 0, (err, runs)
    assert len(runs) == 1
    run = runs[0]
    assert (run["status"], run["outcome"], run["backend"]) == ("finished", "succeeded", "llamafactory")
    assert run["steps_done"] == 6 and run["final_loss"] is not None and math.isfinite(run["final_loss"])

    from tests.launch_helpers import home_store

    store = home_store()
    points = [(p.step, p.loss) for p in store.metrics(run["id"]) if p.loss is not None]
    assert [step for step, _ in points] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(loss) and loss > 0 for _, loss in points), points
    log = Path(run["log_path"]).read_text(errors="replace")
    assert "Detected DeepSpeed ZeRO-3" in log and "world size: 2" in log
    # The rendered files are recorded with the run, the CLI environment's versions among them.
    row = store.run(run["id"])
    assert row is not None
    ok, message = grad_norms_ok(grad_norms(Path(row.workdir or "") / "output"))
    assert ok, message
    history = json.loads((Path(row.workdir or "") / "output" / "trainer_state.json").read_text())["log_history"]
    logged = [(h["step"], round(h["eval_loss"], 3)) for h in history if "eval_loss" in h]
    assert [s for s, _ in logged] == [2, 4, 6], history
    assert [(s, round(v, 3)) for s, v in eval_points(run["log_path"])] == logged
    rendered = row.rendered
    versions = json.loads(rendered["llamafactory_env.json"])
    assert (versions["transformers"], versions["deepspeed"]) == ("5.5.4", "0.19.8")
    assert "ds_config.json" in rendered and "llamafactory.yaml" in rendered
