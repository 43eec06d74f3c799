"""What the launcher reads besides the console log: LLaMA-Factory's output directory
(`trainer_log.jsonl`, `train_results.json`) and ms-swift's (`logging.jsonl`), which are more exact
than their consoles (transformers 5 prints four significant digits), whether the final model the
log says was being saved is on disk, and the retry rule. Classification itself is
`zerodeck.core.outcome.classify.diagnose`, used directly.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from zerodeck.core.launch.checkpoints import has_weights, newest_complete
from zerodeck.core.outcome.classify import Diagnosis, is_transient_startup_failure
from zerodeck.core.outcome.metrics import parse_results_json, parse_trainer_log_jsonl, parse_trainer_state_json


def verdict(outcome: str, reason: str) -> Diagnosis:
    """An outcome the supervisor decides itself (no log to read: it could not start, or was stopped)."""
    return Diagnosis(outcome, None, None, None, "", reason)


def is_transient(text: str, exit_code: int | None) -> bool:
    return exit_code != 0 and is_transient_startup_failure(text)


def llamafactory_results(output_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Summary keys and metric points from LLaMA-Factory's or ms-swift's files in `output_dir` (empty if
    none). Each names its points' steps, which the console does not: there a loss dict takes its step
    from tqdm's bar, which can still show the step before (seen in a real run: the last step's loss
    read as the one before it, and the last step missing). HF's `trainer_state.json`, written once
    the model is saved, also has each step's gradient norm: its values win where both have one."""
    summary: dict[str, Any] = {}
    by_step: dict[int, dict[str, Any]] = {}
    log = output_dir / "trainer_log.jsonl"
    if not log.is_file():
        log = output_dir / "logging.jsonl"  # ms-swift: the same parser reads its lines
    if log.is_file():
        m = parse_trainer_log_jsonl(log)
        by_step = {p["step"]: p for p in m.points}
        summary.update({k: v for k, v in m.summary.items() if v is not None})
    state = output_dir / "trainer_state.json"
    if state.is_file():
        for p in parse_trainer_state_json(state).points:
            mine = by_step.setdefault(p["step"], dict(p))
            mine.update({k: v for k, v in p.items() if v is not None})
    points = [by_step[s] for s in sorted(by_step)]
    results = output_dir / "train_results.json"
    if results.is_file():
        summary.update({k: v for k, v in parse_results_json(results).items() if v is not None})
    return summary, points


# HF Trainer's line as it starts a save: into `checkpoint-N`, or, for the final model, the output
# directory itself (LLaMA-Factory's `trainer.save_model()` after the last step).
_SAVING = re.compile(r"Saving model checkpoint to ([^\r\n]+)")


def final_model_check(d: Diagnosis, exit_code: int | None, text: str, output_dir: str | None) -> Diagnosis:
    """A run read as succeeded from its log although the job did not exit 0 (a rank aborted at
    teardown, or no exit status was seen) is a success only if the final model its trainer started
    saving into `output_dir` is there whole: when one rank aborts, torchrun ends the others, and
    rank 0 may be in the middle of that save. Without it the run is failed, naming the newest
    complete checkpoint, which holds the trained weights. Jobs that never save into the output
    directory itself (the built-in trainer, ms-swift's checkpoints) are not judged by it."""
    if d.outcome != "succeeded" or exit_code == 0 or not output_dir or not text:
        return d
    target = os.path.normpath(output_dir)
    if not any(os.path.normpath(m.group(1).strip()) == target for m in _SAVING.finditer(text)):
        return d
    out = Path(output_dir)
    if has_weights(out):
        return d
    ckpt = newest_complete(out)
    where = f"; the newest complete checkpoint is {ckpt.path.name}" if ckpt else "; no complete checkpoint either"
    return dataclasses.replace(d, outcome="failed", reason=(
        f"training completed, but the final model was not written to {output_dir} "
        f"(the job ended while saving it){where}"))
