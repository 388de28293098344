"""The CLI contracts other code relies on: --json-progress events, `qdq runs --json`, `qdq presets --json`."""

from __future__ import annotations

import json

import pytest

from core.cli import main
from core.jobs.spec import EVENT_TYPES, Event
from core.presets import preset_ids

pytestmark = pytest.mark.slow


def test_json_progress_and_runs(capsys, tmp_path, zoo_pt2, db):
    code = main(
        [
            "quantize",
            str(zoo_pt2("linear")),
            "--out",
            str(tmp_path / "run"),
            "--db",
            db,
            "--samples",
            "8",
            "--json-progress",
        ]
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    events = [Event.from_json(line) for line in out]  # every stdout line is an event
    assert {e.type for e in events} <= set(EVENT_TYPES)
    assert events[-1].type == "result" and events[-1].data["out_dir"] == str(tmp_path / "run")
    progress = [e.data for e in events if e.type == "progress"]
    assert all({"fraction", "message", "eta_s"} <= set(p) for p in progress)
    assert [p["fraction"] for p in progress] == sorted(p["fraction"] for p in progress)

    assert main(["runs", "--db", db, "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert {"id", "status", "model_path", "preset", "started_at", "finished_at", "out_dir", "metrics"} <= set(
        run
    )
    assert run["status"] == "succeeded" and run["metrics"]["output_sqnr_db"] > 30


def test_presets_json_lists_every_id(capsys):
    assert main(["presets", "--json"]) == 0
    presets = json.loads(capsys.readouterr().out)
    assert [p["id"] for p in presets] == preset_ids()
    assert all(p["hardware"] and p["choose_when"] for p in presets)


def test_a_run_without_onnx_claims_nothing_about_onnx(capsys, tmp_path, zoo_pt2, db):
    out_dir = tmp_path / "run"
    args = [
        "quantize",
        str(zoo_pt2("linear")),
        "--out",
        str(out_dir),
        "--db",
        db,
        "--samples",
        "8",
        "--no-onnx",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "n/a" not in out  # parity, size and latency come from ONNX files this run did not write
    assert f"model.int8.pt2, {(out_dir / 'model.int8.pt2').stat().st_size:,} bytes" in out
    report = json.loads((out_dir / "report.json").read_text())
    assert report["unfused"] is None, "nothing was diagnosed, so nothing may read as fused"
    html = (out_dir / "report.html").read_text()
    assert "not diagnosed" in html and "runs as an integer kernel" not in html and "0 MB" not in html
