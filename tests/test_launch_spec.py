"""The launch spec the launcher hands the supervisor: written private, read back strictly."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from zerodeck.core.launch.spec import SPEC_FILE, JobSpec, SpecError

SPEC = JobSpec(argv=("torchrun", "--nproc-per-node", "2", "train.py"), env={"MASTER_PORT": "29731", "HF_TOKEN": "x"},
               cwd="/work", device="npu", visible_devices=(4, 5), retries=1, world_size=2, python="/usr/bin/python3",
               output_dir="/runs/7/output", validate_ds_config=True, store_url="sqlite:////home/u/.zerodeck/zerodeck.db")


def test_round_trip_in_a_private_file(tmp_path: Path) -> None:
    path = SPEC.write(tmp_path)
    assert path == tmp_path / SPEC_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the unmasked environment
    assert JobSpec.read(tmp_path) == SPEC
    assert json.loads(path.read_text())["visible_devices"] == [4, 5]


@pytest.mark.parametrize(("change", "message"), [
    ({"store_url": None}, "store_url: a non-empty string expected"),
    ({"argv": []}, "argv: a non-empty list of strings expected"),
    ({"env": {"A": 1}}, "env: an object of strings expected"),
    ({"retries": "1"}, "retries: a non-negative integer expected"),
    ({"visible_devices": [0, True]}, "visible_devices: a list of integers expected"),
    ({"validate_ds_config": "yes"}, "validate_ds_config: true or false expected"),
    ({"cwd": 3}, "cwd: a string or null expected"),
    ({"colour": "blue"}, "unknown colour"),
])
def test_an_odd_field_is_a_clear_error(tmp_path: Path, change: dict, message: str) -> None:
    (tmp_path / SPEC_FILE).write_text(json.dumps({**SPEC.to_json(), **change}))
    with pytest.raises(SpecError, match=message):
        JobSpec.read(tmp_path)


def test_a_missing_field_or_file_is_named(tmp_path: Path) -> None:
    data = SPEC.to_json()
    del data["store_url"], data["world_size"]
    (tmp_path / SPEC_FILE).write_text(json.dumps(data))
    with pytest.raises(SpecError, match="missing world_size, store_url"):
        JobSpec.read(tmp_path)
    with pytest.raises(SpecError, match="not JSON"):
        (tmp_path / SPEC_FILE).write_text("{")
        JobSpec.read(tmp_path)
    with pytest.raises(SpecError, match="No such file"):
        JobSpec.read(tmp_path / "nope")
