"""Pre-registered contrasts: Holm's adjustment by hand, the share of the ceiling, and the claim rule."""

from __future__ import annotations

import math

from oarl.lab.testbed.contrasts import contrasts, holm, markdown


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, 2 * 0.03, max(0.06, 1 * 0.04); NaN is outside the family
    got = holm([0.01, 0.04, math.nan, 0.03])
    assert (
        [round(p, 12) for p in got[:2]] == [0.03, 0.06] and math.isnan(got[2]) and round(got[3], 12) == 0.06
    )
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def study(gain: dict[str, list[float]]) -> dict:
    base = [0.6, 0.62, 0.58, 0.61, 0.59]
    arms = {"grpo": dict(enumerate(base))}
    for arm, g in gain.items():
        arms[arm] = {s: b + d for s, (b, d) in enumerate(zip(base, g, strict=True))}
    return {"cond": arms}


def test_claim_needs_ci_holm_and_share_of_the_oracle():
    values = study({
        "oracle": [0.10, 0.09, 0.11, 0.10, 0.10],
        "good": [0.08, 0.07, 0.09, 0.08, 0.08],  # 80% of the oracle, tight
        "weak": [0.03, 0.02, 0.04, 0.03, 0.03],  # significant but 30% of the oracle
        "noisy": [0.20, -0.15, 0.10, -0.05, 0.15],  # CI spans 0
    })  # fmt: skip
    out = contrasts(values, ["good", "weak", "noisy"], ["grpo", "weak"])
    arms = out["conditions"]["cond"]["arms"]
    assert abs(arms["good"]["share_of_ceiling"] - 0.8) < 1e-9
    assert arms["good"]["claim"] and not arms["weak"]["claim"] and not arms["noisy"]["claim"]
    assert abs(arms["good"]["weak"]["diff"]["mean"] - 0.05) < 1e-9  # the second reference, paired too
    assert arms["noisy"]["p_holm"] >= arms["noisy"]["grpo"]["p_t"]
    text = markdown(out, {"good": "Good"})
    assert "| Good | +0.080" in text and "80%" in text
