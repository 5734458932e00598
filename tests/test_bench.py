"""`oarl bench --quick` is a smoke test only: it must run and write its files; speed is never asserted."""

import json

from oarl.cli import main


def test_bench_quick_writes_report(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    report = json.loads((out / "bench.json").read_text())
    tiny = report["scorer"]["tiny"]
    assert tiny["max_abs_diff"] < 1e-4  # the fast OAR-P equals the naive one
    assert set(tiny["seconds"]) == {"naive_oar_p", "oar_p", "oar_g", "perturbation_linear"}
    assert tiny["peak_bytes"]["naive_oar_p"] >= 0
    assert report["step"]["perturbation"]["zero_adv_scored"] == 0
    assert (out / "scaling.png").stat().st_size > 0 and "speed-up" in (out / "bench.md").read_text()
