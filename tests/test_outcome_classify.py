"""Outcome classification against real captured logs and real error texts (tests/fixtures/*/PROVENANCE.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zerodeck.core.outcome import diagnose, diagnose_file, is_transient_startup_failure

from .conftest import FIXTURES

SWIFT = FIXTURES / "swift"
LOGS = FIXTURES / "logs"
NPU = FIXTURES / "npu-smi-errors"
SMI = FIXTURES / "npu-smi"  # npu-smi's own failures live with its other outputs

# file, exit_code, (outcome, device, code, rank)
CASES: list[tuple[Path, int | None, tuple[str, str | None, str | None, int | None]]] = [
    # succeeded, FutureWarnings and all
    (LOGS / "run_lf095_cpu_console.log", None, ("succeeded", None, None, None)),
    (LOGS / "run_lf095_ds0198_zero3_cpu_eval_steps.log", None, ("succeeded", None, None, None)),
    (LOGS / "run_lf095_ds0198_zero3_cpu_eval_stale_bar.log", None, ("succeeded", None, None, None)),
    (LOGS / "run_hf_tf4571_ds0184_zero3_cpu_console.log", None, ("succeeded", None, None, None)),
    (LOGS / "run_hf_tf5240_ds0198_zero3_cpu_console.log", None, ("succeeded", None, None, None)),
    (LOGS / "run_ds0198_launcher_zero3_cpu_loglevel_info.log", None, ("succeeded", None, None, None)),
    (LOGS / "issue_lf10488_v0_final_metrics_tf5_format.txt", None, ("succeeded", None, None, None)),
    # device OOM
    (LOGS / "issue_cads4_cuda_oom_torch_outofmemoryerror.txt", None, ("oom", "cuda", None, None)),
    (LOGS / "issue_gpt4llm16_cuda_oom_torch1x_format.txt", None, ("oom", "cuda", None, None)),
    (LOGS / "issue_sglang29838_npu_oom_torch_outofmemoryerror.txt", None, ("oom", "npu", None, None)),
    (NPU / "oom_torch_npu_runtimeerror_1.txt", None, ("oom", "npu", None, None)),
    (NPU / "oom_el0004_aclnn_hccl_alloc_3.txt", None, ("oom", "npu", "EL0004", 7)),
    # host OOM: a rank SIGKILLed
    (LOGS / "run_ds0198_launcher_rank_sigkill_rc_minus9.log", 247, ("oom", "host", "-9", 0)),
    (LOGS / "run_torch213_torchrun_childfailed_sigkill.log", 1, ("oom", "host", "-9", 1)),
    (LOGS / "run_torch213_torchrun_childfailed_single_sigkill.log", 1, ("oom", "host", "-9", 0)),
    (LOGS / "issue_ds3232_exit_minus9_line.txt", None, ("oom", "host", "-9", None)),
    (LOGS / "issue_ds3160_exit_minus9_old_see_memory_usage_format.txt", 247, ("oom", "host", "-9", None)),
    # communication
    (LOGS / "run_ds0198_launcher_gloo_connect_fail_rc1.log", 1, ("comm_error", "cpu", None, 0)),
    (LOGS / "run_ds0198_launcher_peer_killed_gloo_closed_rc1.log", 1, ("comm_error", "cpu", None, 0)),
    (LOGS / "run_torch213_torchrun_gloo_collective_timeout.log", 1, ("comm_error", "cpu", None, 0)),
    (LOGS / "issue_lf7396_nccl_watchdog_timeout_allreduce.txt", None, ("comm_error", "cuda", None, 0)),
    (LOGS / "issue_lf1845_nccl_communicator_aborted_old_torch.txt", None, ("comm_error", "cuda", None, 0)),
    (LOGS / "issue_lf8261_console_tf4_loss_lines_then_nccl_timeout.txt", None, ("comm_error", "cuda", None, 5)),
    (NPU / "hccl_ei0006_socket_timeout_1.txt", None, ("comm_error", "npu", "EI0006", 1)),
    (NPU / "hccl_ei9999_fftsplus_timeout_7.txt", None, ("comm_error", "npu", "EI9999", 2)),
    (NPU / "hccl_fftsplus_timeout_stuck_notify_3.txt", None, ("comm_error", "npu", None, 3)),
    (NPU / "hccl_connect_timeout_transport_init_8.txt", None, ("comm_error", "npu", None, 7)),
    # killed by a signal
    (LOGS / "run_ds0198_launcher_sigterm_to_process_group.log", 241, ("killed", None, "-15", None)),
    (LOGS / "run_ds0198_runner_sigint_pid_only.log", None, ("killed", None, "-2", None)),
    (LOGS / "run_lf095_sigint_process_group.log", None, ("killed", None, "-2", None)),
    (LOGS / "run_torch213_torchrun_sigterm_forwarded.log", 1, ("killed", None, "-15", None)),
    # finished, then a rank aborted at exit (SIGABRT): the training is complete
    (LOGS / "run_zerodeck_builtin_zero3_teardown_sigabrt.log", 1, ("succeeded", None, None, None)),
    (LOGS / "run_lf095_ds0198_zero3_cpu_teardown_sigabrt_before_metrics.log", 1, ("succeeded", None, None, None)),
    (LOGS / "run_torch213_torchrun_sigint_forwarded.log", 1, ("killed", None, "-2", None)),
    # failed: tracebacks and Ascend runtime errors
    (LOGS / "run_lf095_tf4571_lora_ds3_zip_strict_valueerror.log", 1, ("failed", None, None, 0)),
    (LOGS / "run_ds0198_torchrun_zero3_cpu_no_compiler.log", 1, ("failed", None, None, 0)),
    (LOGS / "run_hf_tf5240_ds0198_cpu_worldsize1_batch_assertion.log", 1, ("failed", None, None, 0)),
    (LOGS / "run_lf095_cli_torchrun_not_on_path.log", 1, ("failed", None, None, None)),
    (NPU / "err_ee9999_capture_mode_5.txt", None, ("failed", "npu", "EE9999", None)),
    (NPU / "err_eh9999_fftsplus_timeout_507048_4.txt", None, ("failed", "npu", "EH9999", None)),
    (SMI / "npusmi_err_dcmi_-8005.txt", None, ("failed", "npu", "dcmi -8005", None)),
    (SMI / "npusmi_err_dcmi_-8020.txt", None, ("failed", "npu", "dcmi -8020", None)),
    # Ascend runtime / operator failures with no E-code on their line still happened on the NPU
    (LOGS / "issue_lf3670_npu_rts_hwts_aicore_exception.txt", 1, ("failed", "npu", None, None)),
    (LOGS / "issue_vllmascend4859_npu_function_error_aclnn.txt", None, ("failed", "npu", "561103", None)),
    (LOGS / "issue_ascendpt66_npu_function_error_err00100.txt", 1, ("failed", "npu", "507035", None)),
    (LOGS / "issue_ptodsl90_aicore_exception_ez9999.txt", None, ("failed", "npu", "EZ9999", None)),
    # cut-short excerpts with no error and no end, read without an exit status: nothing can be told
    (LOGS / "issue_cla534_ds_fp16_overflow_loss_scale.txt", None, (None, None, None, None)),
    (LOGS / "issue_lf5627_npu910b_grad_norm_nan.txt", None, (None, None, None, None)),
]


@pytest.mark.parametrize(("path", "exit_code", "expected"), CASES, ids=[c[0].name for c in CASES])
def test_fixture_diagnosis(path: Path, exit_code: int | None, expected: tuple) -> None:
    d = diagnose_file(path, exit_code=exit_code)
    assert (d.outcome, d.device, d.code, d.rank) == expected, d.reason
    assert d.excerpt.strip(), "an excerpt shows the evidence"
    assert "\n" not in d.reason and d.reason


def test_every_copied_log_has_a_case() -> None:
    covered = {c[0].name for c in CASES}
    logs = {p.name for p in LOGS.glob("*") if p.suffix in (".log", ".txt") and "PROVENANCE" not in p.name}
    errors = {p.name for p in NPU.glob("*.txt")} | {p.name for p in SMI.glob("npusmi_err_*.txt")}
    missing = (logs | errors) - covered
    # The fp16-overflow and the second NaN excerpt say the same as their covered twins.
    assert missing <= {"issue_ds931_fp16_overflow_hysteresis.txt", "issue_lf5660_cuda_bf16_fp16_nan.txt"}


def test_reasons_name_the_root_exception() -> None:
    assert diagnose_file(LOGS / "run_lf095_tf4571_lora_ds3_zip_strict_valueerror.log", 1).reason == (
        "ValueError: zip() argument 2 is longer than argument 1")
    reason = diagnose_file(LOGS / "run_ds0198_torchrun_zero3_cpu_no_compiler.log", 1).reason
    assert reason.startswith("RuntimeError: Error building extension 'deepspeed_shm_comm'")
    assert diagnose_file(LOGS / "run_lf095_cli_torchrun_not_on_path.log", 1).reason == (
        "FileNotFoundError: [Errno 2] No such file or directory: 'torchrun'")
    hccl = diagnose_file(NPU / "hccl_ei0006_socket_timeout_1.txt")
    assert "Getting socket times out" in hccl.reason


def test_exit_zero_wins_over_a_caught_oom() -> None:
    text = (LOGS / "issue_cads4_cuda_oom_torch_outofmemoryerror.txt").read_text()
    assert diagnose(text, exit_code=0).outcome == "succeeded"
    assert diagnose(text, exit_code=1).outcome == "oom"


def test_stopped_by_user_wins() -> None:
    text = (LOGS / "run_torch213_torchrun_gloo_collective_timeout.log").read_text()
    d = diagnose(text, exit_code=1, stopped_by_user=True)
    assert (d.outcome, d.reason) == ("killed", "stopped by the user")
    sigterm = (LOGS / "run_torch213_torchrun_sigterm_forwarded.log").read_text()
    assert diagnose(sigterm, exit_code=1, stopped_by_user=True).code == "-15"


def test_sigkill_outranks_the_survivors_connection_closed() -> None:
    # Rank 1 SIGKILLed; rank 0 printed "Connection closed by peer" first. The root cause is the kill.
    text = (LOGS / "run_torch213_torchrun_childfailed_sigkill.log").read_text()
    assert text.index("Connection closed by peer") < text.index("exitcode  : -9")
    d = diagnose(text, exit_code=1)
    assert (d.outcome, d.device, d.rank) == ("oom", "host", 1)
    assert "exitcode  : -9" in d.excerpt


def test_deepspeed_last_rank_argv_is_not_the_failing_rank() -> None:
    # Two ranks, the launcher prints `--local_rank=1`'s argv; rank 0 is the one that raised.
    d = diagnose_file(LOGS / "run_ds0198_launcher_peer_killed_gloo_closed_rc1.log", 1)
    assert d.rank == 0


def test_exit_status_alone() -> None:
    assert diagnose("", exit_code=137).outcome == "oom"
    assert diagnose("", exit_code=143).outcome == "killed"
    d = diagnose("some output\n", exit_code=3)
    assert (d.outcome, d.device, d.code) == ("failed", None, None)
    assert "exit status 3" in d.reason
    assert diagnose("", exit_code=0).outcome == "succeeded"


def test_failure_after_a_completion_marker_is_a_failure() -> None:
    ok = (LOGS / "run_hf_tf4571_ds0184_zero3_cpu_console.log").read_text()
    crash = "Traceback (most recent call last):\n  File \"x.py\", line 1\nOSError: disk full\n"
    # Training finished (train metrics printed), then saving crashed before the ranks exited.
    cut = ok.index("[2026-11-28 03:21:28,183]")
    d = diagnose(ok[:cut] + crash)
    assert (d.outcome, d.reason) == ("failed", "OSError: disk full")
    # ...while a marker after an earlier error (an OOM retried by auto_find_batch_size) is a success.
    retried = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n" + ok
    assert diagnose(retried).outcome == "succeeded"


def test_abort_while_shutting_down_after_training_is_a_success() -> None:
    """Captured from zerodeck's own ZeRO-3 demo under load: all 20 steps and the done line, then
    rank 1 died of SIGABRT at exit and torchrun exited 1."""
    text = (LOGS / "run_zerodeck_builtin_zero3_teardown_sigabrt.log").read_text()
    d = diagnose(text, exit_code=1)
    assert d.outcome == "succeeded" and "aborted while shutting down" in d.reason
    # The same abort with no completion marker before it is still a failure.
    cut = text.index('{"zerodeck": "done"')
    assert diagnose(text[:cut] + text[text.index("terminate called"):], exit_code=1).outcome != "succeeded"
    # ...and so is a real error before the marker, even if the ranks then abort at exit.
    oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    assert diagnose(oom + text, exit_code=1).outcome == "oom"


def test_abort_between_the_completion_markers_is_a_success() -> None:
    """Captured from the real LLaMA-Factory test in CI: rank 1 aborted at exit while rank 0 was still
    saving, so the abort stands between `Training completed` and rank 0's `train metrics` block."""
    text = (LOGS / "run_lf095_ds0198_zero3_cpu_teardown_sigabrt_before_metrics.log").read_text()
    assert text.index("Training completed") < text.index("terminate called") < text.index("***** train metrics")
    d = diagnose(text, exit_code=1)
    assert d.outcome == "succeeded" and "aborted while shutting down" in d.reason
    # The same abort before training completed is no success, even with rank 0's markers after it.
    abort = "terminate called without an active exception\n"
    early = text.replace(abort, "").replace("Training completed", abort + "Training completed", 1)
    assert diagnose(early, exit_code=1).outcome == "failed"


def test_transient_startup_flake() -> None:
    assert is_transient_startup_failure((LOGS / "run_ds0198_launcher_gloo_connect_fail_rc1.log").read_text())
    assert diagnose_file(LOGS / "run_ds0198_launcher_gloo_connect_fail_rc1.log", 1).transient
    for name in ("run_ds0198_launcher_peer_killed_gloo_closed_rc1.log",
                 "run_torch213_torchrun_gloo_collective_timeout.log",
                 "run_lf095_cpu_console.log", "run_torch213_torchrun_childfailed_sigkill.log"):
        assert not is_transient_startup_failure((LOGS / name).read_text()), name
    port = "torch.distributed.DistNetworkError: The server socket has failed to listen on any local network address. " \
           "port: 29500, useIpv6: False, code: -98, name: EADDRINUSE, message: address already in use\n"
    assert is_transient_startup_failure(port)
    # The same flake after training started is not a start-up failure.
    assert not is_transient_startup_failure("{'loss': 1.0, 'epoch': 0.1}\n" + port)


def test_to_json_contract() -> None:
    d = diagnose_file(NPU / "oom_el0004_aclnn_hccl_alloc_3.txt").to_json()
    assert {"outcome", "device", "code", "rank", "excerpt"} <= set(d)
    assert json.loads(json.dumps(d)) == d
    assert "EL0004" in d["excerpt"]


def test_cli_diagnose_json(cli) -> None:
    code, out, err = cli("diagnose", str(NPU / "oom_torch_npu_runtimeerror_1.txt"), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["outcome"], data["device"]) == ("oom", "npu")
    code, out, _ = cli("diagnose", str(LOGS / "run_lf095_cpu_console.log"), "--json")
    assert json.loads(out)["outcome"] == "succeeded"
    code, out, _ = cli("diagnose", str(LOGS / "run_torch213_torchrun_gloo_collective_timeout.log"), "--exit-code", "1")
    assert code == 0 and "comm_error" in out and "Timed out waiting 10000ms" in out


def test_cli_diagnose_bad_files(cli, tmp_path: Path) -> None:
    code, out, err = cli("diagnose", str(tmp_path / "nope.log"))
    assert code == 2 and out == "" and "nope.log" in err and len(err.strip().splitlines()) == 1
    binary = tmp_path / "core.bin"
    binary.write_bytes(b"\x7fELF\x00\x00\x01garbage")
    code, _, err = cli("diagnose", str(binary), "--json")
    assert code == 2 and "binary" in err


_FRAGMENTS = [
    "CUDA out of memory", "exits with return code = -9", "Root Cause (first observed failure):\n[0]:\n  rank : x\n",
    "[rank3]: ", "EI0006: ", "Traceback (most recent call last):\n", "ValueError: ", "KeyboardInterrupt\n",
    "Received 15 death signal", "{'loss': 'nan'}", "\x00", "\r", "[rank", "exitcode  : -9", "Rank[", "EL0004",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.one_of(st.text(max_size=40), st.sampled_from(_FRAGMENTS)), max_size=30),
       exit_code=st.one_of(st.none(), st.integers(-300, 300)), stopped=st.booleans())
def test_garbage_never_raises(parts: list[str], exit_code: int | None, stopped: bool) -> None:
    text = "\n".join(parts)
    d = diagnose(text, exit_code=exit_code, stopped_by_user=stopped)
    assert d.outcome in ("succeeded", "oom", "comm_error", "failed", "killed", None)
    # Only a bare log can leave the outcome open: an exit status or a stop always decides it.
    assert d.outcome is not None or (exit_code is None and not stopped)
    assert d.device in (None, "npu", "cuda", "cpu", "host")
    json.dumps(d.to_json())
    is_transient_startup_failure(text)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, 20000), junk=st.binary(max_size=64))
def test_truncated_and_mutated_real_logs_never_raise(cut: int, junk: bytes) -> None:
    text = (LOGS / "run_torch213_torchrun_childfailed_sigkill.log").read_text()
    mutated = text[: cut % (len(text) + 1)] + junk.decode("utf-8", errors="replace")
    diagnose(mutated, exit_code=1)


def test_crlf_logs_classify_the_same() -> None:
    for path, exit_code, expected in CASES:
        d = diagnose(path.read_text(encoding="utf-8").replace("\n", "\r\n"), exit_code=exit_code)
        assert (d.outcome, d.device, d.code, d.rank) == expected, path.name


def test_long_log_reads_head_and_tail(tmp_path: Path) -> None:
    from zerodeck.core.outcome import classify

    launcher = (LOGS / "run_ds0198_launcher_rank_sigkill_rc_minus9.log").read_text()
    head, tail = launcher.split("rank 0 allocating...\n")
    filler = "{'loss': 1.0, 'epoch': 0.5}\n" * (classify.TAIL_CHARS // 20)
    # An error in the middle of a long run that went on afterwards is not its ending.
    text = head + "RuntimeError: NCCL error in the middle\n" + filler + tail
    assert len(text) > classify.HEAD_CHARS + classify.TAIL_CHARS
    big = tmp_path / "big.log"
    big.write_text(text)
    for d in (diagnose(text, exit_code=247), diagnose_file(big, exit_code=247)):
        # dist_world_size=1 is in the head, the -9 in the tail: rank 0, host OOM.
        assert (d.outcome, d.device, d.code, d.rank) == ("oom", "host", "-9", 0)
    assert len(classify.read_log(big)) < classify.HEAD_CHARS + classify.TAIL_CHARS + 10


def test_shell_reported_kill() -> None:
    d = diagnose("step 10\n/bin/sh: line 1: 48213 Killed                  python train.py\n", exit_code=137)
    assert (d.outcome, d.device, d.code) == ("oom", "host", "-9")


def test_a_bare_log_with_no_error_and_no_end_is_not_called_failed() -> None:
    text = "loading model\n{'loss': 1.5, 'learning_rate': 1e-4, 'epoch': 0.1}\n"
    d = diagnose(text)
    assert d.outcome is None and d.device is None
    assert d.reason.startswith("no error and no completion in the log")
    assert diagnose(text, exit_code=1).outcome == "failed"
    assert diagnose(text, exit_code=0).outcome == "succeeded"


def test_ms_swift_completion_is_recognised() -> None:
    text = (SWIFT / "run_swift460_cpu_lora_console.log").read_text()
    assert diagnose(text).outcome == "succeeded"
    # ms-swift logs `last_model_checkpoint` in a `finally`, after a crash too: never proof of the end.
    crash = (SWIFT / "issue_swift4366_checkpoint_line_then_traceback.txt").read_text()
    assert diagnose(crash).outcome is None  # the excerpt stops before the exception line
    end = [ln for ln in text.splitlines() if "End time of running main" in ln]
    assert end and diagnose("Train: 100%\n" + end[0] + "\n").outcome == "succeeded"


def test_diagnose_cli_on_a_log_that_tells_nothing(cli) -> None:
    path = str(LOGS / "issue_lf5627_npu910b_grad_norm_nan.txt")
    code, out, _ = cli("diagnose", path, "--json")
    data = json.loads(out)
    assert code == 0 and list(data)[:5] == ["outcome", "device", "code", "rank", "excerpt"]
    assert data["outcome"] is None and data["reason"].startswith("no error and no completion in the log")
    code, out, _ = cli("diagnose", path)
    assert code == 0 and out.splitlines()[0].split() == ["outcome", "unknown"]
    code, out, _ = cli("diagnose", path, "--exit-code", "1", "--json")
    assert json.loads(out)["outcome"] == "failed"
