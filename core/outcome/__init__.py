"""Outcome classification and metrics extraction for training logs.

`diagnose` says why a run ended (succeeded, oom, comm_error, failed, killed); `parse_metrics` and
`MetricsFollower` turn what the run printed into metric points and a summary. Both are pure text
functions: the supervisor, the CLI and the TUI feed them log text and never need torch.
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
)

__all__ = [
    "Diagnosis", "Metrics", "MetricsFollower", "UnreadableLog", "diagnose", "diagnose_file",
    "is_transient_startup_failure", "parse_metrics", "parse_results_json", "parse_trainer_log_jsonl",
]
