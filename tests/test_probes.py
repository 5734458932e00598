import pytest
import torch

from oarl.core.probes import outcome_probe, probe_divergence, probe_index


def test_probe_index_positions_predict_answer_tokens():
    am = torch.tensor([[0, 0, 0, 1, 1, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    pos, valid = probe_index(am, "as_mean")
    assert pos.shape == (3, 3)
    assert pos[0][valid[0]].tolist() == [2, 3]
    assert pos[1][valid[1]].tolist() == [0, 1, 2]
    assert not valid[2].any()
    lt, lt_valid = probe_index(am, "lt_logits")
    assert lt.tolist() == [[2], [0], [0]] and lt_valid.flatten().tolist() == [True, True, False]


def test_answer_token_at_position_zero_has_no_predictor():
    am = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    pos, valid = probe_index(am, "as_joint")
    assert pos[valid].tolist() == [0]


def test_probes_match_hand_computation():
    logits = torch.randn(1, 5, 7, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    am = torch.tensor([[0, 0, 0, 1, 1]], dtype=torch.bool)  # answer tokens 4, 5 predicted at 2, 3
    lt = outcome_probe(logits, ids, am, "lt_logits")
    torch.testing.assert_close(lt[0], torch.log_softmax(logits[0, 2], -1))
    mean = outcome_probe(logits, ids, am, "as_mean")
    torch.testing.assert_close(mean[0], torch.log_softmax((logits[0, 2] + logits[0, 3]) / 2, -1))
    joint = outcome_probe(logits, ids, am, "as_joint")
    lp = torch.log_softmax(logits[0], -1)
    torch.testing.assert_close(joint[0], (lp[2, 4] + lp[3, 5]) / 2)


def test_divergence_is_kl_and_drop():
    p = torch.log_softmax(torch.tensor([[1.0, 2.0, 3.0]]), -1)
    q = torch.log_softmax(torch.tensor([[3.0, 2.0, 1.0]]), -1)
    kl = (p.exp() * (p - q)).sum()
    torch.testing.assert_close(probe_divergence(p, q, "as_mean"), kl.reshape(1))
    # Exact: KL(p || p) sums p * (x - x) = p * 0 terms; -1 - (-3) = 2 is one exact subtraction.
    assert probe_divergence(p, p, "lt_logits").item() == 0.0
    assert probe_divergence(torch.tensor([-1.0]), torch.tensor([-3.0]), "as_joint").item() == 2.0


def test_unknown_probe_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown probe"):
        probe_index(torch.zeros(1, 3, dtype=torch.bool), "as_max")


def test_math_core_does_not_import_trl():
    import subprocess
    import sys

    code = (
        "import sys, oarl, oarl.core.scorers, oarl.core.gating, oarl.core.probes, oarl.core.diagnostics, oarl.batch.reshape, oarl.batch.spans; "
        "assert 'trl' not in sys.modules, 'trl imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
