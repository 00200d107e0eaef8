"""Objectives added for the real-data tasks: summed statistics reproduce the loss however a split is batched."""
import math

import pytest
import torch
from torch.nn import functional as F

from datasets.base import Batch
from datasets.objectives import MSE, LanguageCE, MaskedStepCE, MusicNLL


def _summed(obj, out, batch, cut):
    sums = {}
    for sl in (slice(0, cut), slice(cut, None)):
        part = Batch(*(None if t is None else t[sl] for t in batch))
        for k, v in obj.stats(out[sl], part).items():
            sums[k] = sums.get(k, 0.0) + v
    return obj.summarize(sums)


def test_masked_step_ce_scores_only_masked_positions():
    torch.manual_seed(0)
    out, y = torch.randn(6, 7, 5), torch.randint(0, 5, (6, 7))
    mask = torch.rand(6, 7) > 0.4
    b = Batch(None, y, mask)
    want = F.cross_entropy(out[mask], y[mask])
    assert MaskedStepCE().loss(out, b).item() == pytest.approx(want.item(), rel=1e-6)
    s = _summed(MaskedStepCE(), out, b, 2)
    assert s["loss"] == pytest.approx(want.item(), rel=1e-6)
    assert s["accuracy"] == pytest.approx((out.argmax(-1) == y)[mask].float().mean().item())
    full = MaskedStepCE().loss(out, Batch(None, y))  # no mask: every step
    assert full.item() == pytest.approx(F.cross_entropy(out.reshape(-1, 5), y.reshape(-1)).item(), rel=1e-6)


def test_language_ce_derived_metrics():
    torch.manual_seed(1)
    out, y = torch.randn(4, 9, 11), torch.randint(0, 11, (4, 9))
    s = _summed(LanguageCE(), out, Batch(None, y), 1)
    nats = F.cross_entropy(out.reshape(-1, 11), y.reshape(-1)).item()
    assert s["loss"] == pytest.approx(nats, rel=1e-6)
    assert s["bpc"] == pytest.approx(nats / math.log(2), rel=1e-6)
    assert s["ppl"] == pytest.approx(math.exp(nats), rel=1e-6)


def test_mse():
    out, y = torch.tensor([[1.0], [2.0], [0.5]]), torch.tensor([[0.0], [2.0], [1.5]])
    s = _summed(MSE(), out, Batch(None, y), 1)
    assert s["mse"] == pytest.approx(2.0 / 3) and MSE().loss(out, Batch(None, y)).item() == pytest.approx(2.0 / 3)


def test_music_nll_sums_notes_and_masks_padding():
    torch.manual_seed(2)
    out = torch.randn(3, 5, 88)
    y = (torch.rand(3, 5, 88) > 0.9).float()
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    b = Batch(None, y, mask)
    per_step = F.binary_cross_entropy_with_logits(out, y, reduction="none").sum(-1)  # (B, T)
    want = per_step[mask].mean().item()
    assert MusicNLL().loss(out, b).item() == pytest.approx(want, rel=1e-6)
    assert _summed(MusicNLL(), out, b, 1)["nll"] == pytest.approx(want, rel=1e-6)
    zero = MusicNLL().loss(torch.zeros(3, 5, 88), b).item()  # logit 0: ln 2 per note
    assert zero == pytest.approx(88 * math.log(2), rel=1e-6)
