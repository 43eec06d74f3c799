"""Real ms-swift training on the CPU through `zerodeck run`: LoRA SFT of a tiny Qwen2 under DeepSpeed
ZeRO-2, 2 ranks started by ms-swift's own `NPROC_PER_NODE` launch.

The environment is the cached one `scripts/swift-venv.sh` builds (ms-swift 4.6.0 over the LLaMA-Factory
environment's torch 2.13 CPU, transformers 5.5.4, DeepSpeed); the model and tokenizer are built
locally by `tests/lf_tiny_model.py`, so nothing is downloaded. The test skips, saying why, only when
that environment cannot be built. It proves what the render tests cannot: ms-swift's own parser takes
every rendered argument, the DeepSpeed JSON agrees with its TrainingArguments, and its log gives the
metric points, the progress and the completion.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from .conftest import FIXTURES, ROOT
from .launch_helpers import built_env

pytestmark = [pytest.mark.slow]

RECIPE = """\
name = "tiny-qwen2-swift-lora-z2"
[model]
path = "{model}"
[method]
kind = "lora"
rank = 8
alpha = 16
[zero]
stage = 2
[data]
path = "{data}"
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
backend = "swift"
[launch.options]
model_type = "qwen2"  # a local folder's name tells ms-swift nothing about the architecture
dataloader_num_workers = 0
save_strategy = "no"
[launch.env]
# Offline: the model and data are local; without these ms-swift asks the ModelScope hub first.
USE_HF = "1"
HF_HUB_OFFLINE = "1"
MODELSCOPE_OFFLINE = "1"
"""


@pytest.fixture(scope="session")
def swift_venv() -> Path:
    return built_env("swift-venv.sh", "ms-swift", timeout=2400)


@pytest.fixture(scope="session")
def tiny_qwen_for_swift(swift_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-qwen2-swift")
    subprocess.run([str(swift_venv / "bin" / "python"), str(ROOT / "tests" / "lf_tiny_model.py"), str(out),
                    str(FIXTURES / "llamafactory" / "alpaca_tiny.json")], check=True, capture_output=True, timeout=600)
    return out


def test_zerodeck_run_trains_with_ms_swift(swift_venv: Path, tiny_qwen_for_swift: Path, tmp_path: Path, cli,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZERODECK_SWIFT_CLI", str(swift_venv / "bin" / "swift"))
    recipe = tmp_path / "tiny-swift.toml"
    recipe.write_text(RECIPE.format(model=tiny_qwen_for_swift, data=FIXTURES / "llamafactory" / "alpaca_tiny.json"))

    code, out, err = cli("run", str(recipe), "--json")
    [run] = json.loads(out)
    log = Path(run["log_path"]).read_text(errors="replace")
    assert code == 0, (err, log[-4000:])
    assert (run["status"], run["outcome"], run["backend"]) == ("finished", "succeeded", "swift")
    # 24 samples, 2 ranks x micro batch 2 x accumulation 2, 2 epochs: 6 optimizer steps.
    assert (run["steps_done"], run["steps_total"]) == (6, 6)
    assert run["train_runtime_s"] and run["final_loss"] is not None and math.isfinite(run["final_loss"])

    assert "--nproc_per_node 2" in log and "world_size: 2" in log
    assert "'zero_optimization': {'stage': 2" in log  # the rendered JSON is what DeepSpeed got
    assert "End time of running main" in log

    from tests.launch_helpers import home_store

    store = home_store()
    points = [(p.step, p.loss) for p in store.metrics(run["id"]) if p.loss is not None]
    assert [step for step, _ in points] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(loss) and loss > 0 for _, loss in points), points
    row = store.run(run["id"])
    assert row is not None and json.loads(row.rendered["swift_env.json"])["ms_swift"] == "4.6.0"
    output = Path(row.workdir or "") / "output"
    assert (output / "logging.jsonl").is_file()
