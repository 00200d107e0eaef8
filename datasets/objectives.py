"""Objectives: the loss a task minimises, additive statistics, and the metrics derived from them.

Each objective is told the model output ``out`` and a :class:`~datasets.base.Batch`. Statistics are sums so that
a split's metric is exact however it is batched.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .base import Batch, Objective


class StepCE(Objective):
    """Cross-entropy averaged over every step; accuracy over the last ``acc_last`` steps (all when 0).

    The nnRNN/Stair copying-memory objective: out (B, T, C), y (B, T) long.
    """

    metrics = ("loss", "accuracy")

    def __init__(self, acc_last: int = 0):
        self.acc_last = acc_last

    def loss(self, out, batch: Batch):
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), batch.y.reshape(-1))

    def stats(self, out, batch: Batch):
        n = batch.y.numel()
        loss_sum = F.cross_entropy(out.reshape(-1, out.shape[-1]), batch.y.reshape(-1), reduction="sum")
        o, y = (out[:, -self.acc_last:], batch.y[:, -self.acc_last:]) if self.acc_last else (out, batch.y)
        correct = (o.argmax(-1) == y).sum()
        return {"loss_sum": float(loss_sum), "count": n, "correct": float(correct), "acc_count": y.numel()}

    def summarize(self, s):
        return {"loss": s["loss_sum"] / s["count"], "accuracy": s["correct"] / s["acc_count"]}


class MaskedBitCE(Objective):
    """minimal-LRU copy objective: ``bits`` binary classifications per step (2 logits each), masked to the scored
    window. out (B, T, 2*bits), y (B, T, bits) long, mask (B, T). Loss = mean BCE over scored bits; accuracy = mean
    per-bit correctness over the window."""

    metrics = ("loss", "accuracy")

    def __init__(self, bits: int):
        self.bits = bits

    def _per_bit(self, out, batch: Batch):
        logp = F.log_softmax(out.reshape(*out.shape[:2], self.bits, 2), dim=-1)  # (B, T, bits, 2)
        nll = -logp.gather(-1, batch.y.unsqueeze(-1)).squeeze(-1)  # (B, T, bits)
        m = batch.mask.to(out.dtype).unsqueeze(-1).expand_as(nll)
        return logp, nll, m

    def loss(self, out, batch: Batch):
        _, nll, m = self._per_bit(out, batch)
        return (nll * m).sum() / m.sum()

    def stats(self, out, batch: Batch):
        logp, nll, m = self._per_bit(out, batch)
        correct = ((logp.argmax(-1) == batch.y).to(out.dtype) * m).sum()
        return {"loss_sum": float((nll * m).sum()), "count": float(m.sum()), "correct": float(correct)}

    def summarize(self, s):
        return {"loss": s["loss_sum"] / s["count"], "accuracy": s["correct"] / s["count"]}


class ClassCE(Objective):
    """Sequence classification: out (B, C) from a last-step or pooled readout, y (B,) long."""

    metrics = ("loss", "accuracy")

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def loss(self, out, batch: Batch):
        return F.cross_entropy(out, batch.y, label_smoothing=self.label_smoothing)

    def stats(self, out, batch: Batch):
        return {"loss_sum": float(F.cross_entropy(out, batch.y, reduction="sum")), "count": batch.y.numel(),
                "correct": float((out.argmax(-1) == batch.y).sum())}

    def summarize(self, s):
        return {"loss": s["loss_sum"] / s["count"], "accuracy": s["correct"] / s["count"]}


def bits_per_char(loss_nats: float) -> float:
    return loss_nats / math.log(2)


class MaskedStepCE(Objective):
    """Cross-entropy per step averaged over the scored positions: ``mask`` (B, T) when given, every step otherwise.

    out (B, T, C), y (B, T) long. Used where only part of the sequence is scored (the UR-LSTM copy task scores the
    last 10 steps) and by the language-model objective below.
    """

    metrics = ("loss", "accuracy")

    def _nll(self, out, batch: Batch):
        B, T, C = out.shape
        nll = F.cross_entropy(out.reshape(B * T, C), batch.y.reshape(B * T), reduction="none").view(B, T)
        m = torch.ones_like(nll) if batch.mask is None else batch.mask.to(nll.dtype)
        return nll, m

    def loss(self, out, batch: Batch):
        nll, m = self._nll(out, batch)
        return (nll * m).sum() / m.sum().clamp_min(1.0)

    def stats(self, out, batch: Batch):
        nll, m = self._nll(out, batch)
        correct = ((out.argmax(-1) == batch.y).to(m.dtype) * m).sum()
        return {"loss_sum": float((nll * m).sum()), "count": float(m.sum()), "correct": float(correct)}

    def summarize(self, s):
        n = max(s["count"], 1.0)
        return {"loss": s["loss_sum"] / n, "accuracy": s["correct"] / n}


class LanguageCE(MaskedStepCE):
    """Next-token cross-entropy (nats) with bits per character and perplexity derived from the same sums."""

    metrics = ("loss", "bpc", "ppl", "accuracy")

    def summarize(self, s):
        out = super().summarize(s)
        out["bpc"] = bits_per_char(out["loss"])
        out["ppl"] = math.exp(min(out["loss"], 700.0))  # exp overflows a float past ~709 nats
        return out


class MSE(Objective):
    """Mean squared error of a regression read out at the last step: out (B, D), y (B, D)."""

    metrics = ("loss", "mse")

    def loss(self, out, batch: Batch):
        return F.mse_loss(out, batch.y)

    def stats(self, out, batch: Batch):
        return {"sq_sum": float(F.mse_loss(out, batch.y, reduction="sum")), "count": batch.y.numel()}

    def summarize(self, s):
        mse = s["sq_sum"] / s["count"]
        return {"loss": mse, "mse": mse}


class MusicNLL(Objective):
    """Polyphonic music NLL: per time step the sum over the 88 notes of sigmoid binary cross-entropy, averaged over
    the real (unpadded) time steps. out (B, T, 88) logits, y (B, T, 88) float multi-hot, mask (B, T)."""

    metrics = ("loss", "nll")

    def _per_step(self, out, batch: Batch):
        nll = F.binary_cross_entropy_with_logits(out, batch.y, reduction="none").sum(-1)  # (B, T)
        m = torch.ones_like(nll) if batch.mask is None else batch.mask.to(nll.dtype)
        return nll, m

    def loss(self, out, batch: Batch):
        nll, m = self._per_step(out, batch)
        return (nll * m).sum() / m.sum().clamp_min(1.0)

    def stats(self, out, batch: Batch):
        nll, m = self._per_step(out, batch)
        return {"nll_sum": float((nll * m).sum()), "count": float(m.sum())}

    def summarize(self, s):
        nll = s["nll_sum"] / max(s["count"], 1.0)
        return {"loss": nll, "nll": nll}
