"""The RRU paper's modified RAdam ("rradam"): normalised-gradient momentum, rectification, adaptive clipping.

Zakovskis et al., "Gates are not what you need in RNNs", 2021, arXiv 2108.00527 (PAPERS.md section 4.2);
rectification from Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020,
arXiv 1908.03265. Per parameter tensor, at step t = 1, 2, ... (b1, b2 = betas):

    clip   = clip_multiplier * sqrt(sum(v_{t-1}) / (1 - b2^t)) + 0.01       (v before this step's update)
    g      = g * min(1, clip / ||g||)                                     (per-tensor norm clipping)
    v_t    = b2 v_{t-1} + (1 - b2) g^2
    m_t    = b1 m_{t-1} + (1 - b1) g / (sqrt(v_t / (1 - b2^t)) + eps)    (momentum of the normalised gradient)
    rho_inf = 2 / (1 - b2) - 1,   rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
    r_t    = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
    u      = m_t / (1 - b1^t), times r_t when rho_t >= 5
    p      = p - lr (u + weight_decay p)

Because m already holds the normalised gradient, the unrectified early steps are Adam-like too (plain RAdam
falls back to SGD with momentum there). The first step's clip is 0.01 (v_0 = 0): the paper's cautious start.
"""
from __future__ import annotations

import math

import torch

from .errors import ConfigError
from .optim import register_optimizer

CLIP_EPS = 0.01


class RRAdam(torch.optim.Optimizer):
    """See the module docstring. ``clip_multiplier=None`` turns the adaptive clipping off."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-7,
                 clip_multiplier: float | None = 5.0, weight_decay: float = 0.0):
        b1, b2 = (float(b) for b in betas)
        if not (0.0 <= b1 < 1.0 and 0.0 < b2 < 1.0):
            raise ConfigError(f"betas must lie in [0, 1) x (0, 1), got {tuple(betas)}")
        if not eps >= 0:
            raise ConfigError(f"eps must be >= 0, got {eps}")
        if clip_multiplier is not None and not (math.isfinite(clip_multiplier) and clip_multiplier >= 0):
            raise ConfigError(f"clip_multiplier must be a finite number >= 0 (None: no clipping), got {clip_multiplier}")
        super().__init__(params, dict(lr=lr, betas=(b1, b2), eps=eps, clip_multiplier=clip_multiplier,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr, eps, mult, wd = group["lr"], group["eps"], group["clip_multiplier"], group["weight_decay"]
            rho_inf = 2 / (1 - b2) - 1
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("rradam does not support sparse gradients")
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
                t = st["step"]
                m, v = st["m"], st["v"]
                bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
                g = p.grad
                if mult is not None:
                    # clip against the running gradient scale, before v sees this gradient
                    clip = mult * torch.sqrt(v.sum() / bc2) + CLIP_EPS
                    g = g * torch.clamp(clip / (torch.linalg.vector_norm(g) + 1e-30), max=1.0)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                m.mul_(b1).add_(g / ((v / bc2).sqrt_().add_(eps)), alpha=1 - b1)
                rho_t = rho_inf - 2 * t * b2 ** t / bc2
                scale = 1 / bc1
                if rho_t >= 5:
                    scale *= math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                if wd:
                    p.add_(p, alpha=-lr * wd)
                p.add_(m, alpha=-lr * scale)
        return loss


@register_optimizer("rradam")
def _rradam(groups, *, betas=(0.9, 0.999), eps=1e-7, clip_multiplier=5.0, **_):
    # clip_multiplier 5 is the repo's sMNIST/IMDB default (PAPERS 4.3); music used 1.5, language models 10
    return RRAdam(groups, betas=tuple(betas), eps=eps, clip_multiplier=clip_multiplier)
