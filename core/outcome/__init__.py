"""Outcome classification and metrics extraction for training logs.

`diagnose` says why a run ended (succeeded, oom, comm_error, failed, killed); `parse_metrics` and
`MetricsFollower` turn what the run printed into metric points and a summary. Both are pure text
functions: the supervisor, the CLI and the TUI feed them log text and never need torch.

How the supervisor uses them:

    follower = MetricsFollower()
    for point in follower.feed_text(new_bytes.decode("utf-8", "replace")):
        upsert MetricPoint(run_id=..., **point)         # keyed by step: a step can come back fuller
    progress = follower.summary()                       # steps_done/steps_total, last_loss, eta_s, ...
    ...
    d = diagnose_file(log_path, exit_code=rc, stopped_by_user=user_stopped)
    if d.transient and not retried_once: relaunch       # the gloo connectFullMesh start-up flake
    run.outcome, extras = d.outcome, d.to_json()
"""

from zerodeck.core.outcome.classify import (
    Diagnosis,
    UnreadableLog,
    diagnose,
    diagnose_file,
    is_transient_startup_failure,
)
from zerodeck.core.outcome.metrics import (
    Metrics,
    MetricsFollower,
    parse_metrics,
    parse_results_json,
    parse_trainer_log_jsonl,
    parse_trainer_state_json,
)

__all__ = [
    "Diagnosis", "Metrics", "MetricsFollower", "UnreadableLog", "diagnose", "diagnose_file",
    "is_transient_startup_failure", "parse_metrics", "parse_results_json", "parse_trainer_log_jsonl",
    "parse_trainer_state_json",
]
