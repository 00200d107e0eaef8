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
