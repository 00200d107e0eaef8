"""Trial packs: K member configurations with the same shapes trained together as one batched model (issue 14).

Each member is an ordinary :class:`search.train.Trainer` (same seed handling, initial weights, task, batch order,
optimiser, schedule and clip rule as a single trial of its configuration). The pack only changes how the forward
and backward passes run:

- every parameter is stacked into one leaf tensor ``P[name]`` of shape (K, ...), and each member's own Parameter
  is made a view of its slice, so the member's own torch optimiser updates the shared storage in place;
- one forward runs ``torch.func.vmap`` over the members of ``functional_call(model, (params, buffers), (x, state))``
  inside :class:`rnns.base.packed` (cells take the paths vmap can trace);
- each member's task loss (and its cell penalty, ``extra_loss``, with the member's own ``delta``) is computed
  outside the vmap on its own batch; the member losses are summed and one backward gives every member its
  gradient slice ``P[name].grad[k]``; then each member clips, steps and schedules exactly as ``Trainer.train_epoch``.

A member whose loss is non-finite or above its ``max_loss`` ends alone (``diverged``); a member a scheduler stops
is dropped (``drop``). The remaining members are re-stacked; their optimiser state stays keyed by their own
Parameters. vmap computes every member from its own slices only, so a NaN in one member never reaches another.

Validation runs each member's own ``Trainer.evaluate`` (the same code, and so the same numbers, as a single trial);
the per-member metrics dict is exactly what that member's ``Trainer.run_epoch`` returns, plus ``diverged=0``.

RNG: data order comes from each task's own generators, so it is the single trial's. The global torch RNG (dropout
masks inside the vmap, ``randomness="different"``) is shared by the pack: with dropout a member is a valid draw of
its configuration but not bit-identical to the single trial. Each member's checkpoint keeps the RNG state its
Trainer had after construction.
"""
from __future__ import annotations

import copy
import json
import math
import random
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from rnns.base import detach_state, packed
from rnns.errors import ConfigError
from rnns.optim import OPTIM_OPTIONS, SCHEDULE_OPTIONS

from .train import DIVERGED, DIVERGED_REASON, EPOCH, TRAIN_LOSS, Diverged, Trainer

# Cell and model attributes only read while the weights are initialised (or, for ``delta``, by ``extra_loss``,
# which the pack evaluates per member): members may differ in them. Every other non-tensor attribute of the
# model's modules (nonlinearity, dropout rate, scan mode, rho, rounds, ...) changes the forward function and must
# be equal across a pack.
INIT_ONLY = frozenset({"rinit", "iinit", "input_init", "A_init", "r_min", "r_max", "max_phase", "forget_bias",
                       "chrono", "init", "alpha_init", "delta"})
# Configuration keys that change only numbers, never shapes or the forward function: excluded from the signature.
VALUE_KEYS = frozenset(OPTIM_OPTIONS) | frozenset(SCHEDULE_OPTIONS) | INIT_ONLY | {"seed", "grad_clip", "max_loss"}

# Cells that cannot run under torch.func.vmap (found by tests/search/test_pack.py::test_every_cell_packs): the
# sweep runs them unpacked. Empty when every registered cell packs.
UNPACKABLE: dict[str, str] = {}


def packable(cell: str) -> bool:
    """Whether configurations of ``cell`` can train in a pack (else the sweep runs them as ordinary trials)."""
    return cell not in UNPACKABLE


def signature(config: dict[str, Any], device: str | torch.device | None = None) -> str:
    """A string equal for configurations that can share a pack: everything but the value-only keys.

    Model, hidden size (or ``param_budget``), layers, the model options that change a shape or the forward
    function, task and task options, batch size, epochs, max_batches and device enter it; learning rates,
    optimiser settings, schedules, seeds, init scales and choices, forget bias, delta, grad_clip do not.
    ``PackTrainer`` checks the built members agree as well (parameter shapes, task spec, module attributes).
    """
    cfg = {k: v for k, v in config.items() if v is not None and k not in VALUE_KEYS}
    if device is not None:
        cfg["device"] = str(torch.device(device))
    return json.dumps(cfg, sort_keys=True, default=repr)


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_clone(v) for v in obj)
    return obj


def _module_attrs(model: nn.Module) -> dict[str, str]:
    """Non-tensor attributes of every submodule that may change the forward function (INIT_ONLY left out)."""
    out = {}
    for mn, mod in model.named_modules():
        out[f"{mn or '<model>'}:type"] = type(mod).__name__
        for k, v in vars(mod).items():
            if k.startswith("_") or k == "training" or k in INIT_ONLY or isinstance(v, (torch.Tensor, nn.Module)):
                continue
            out[f"{mn or '<model>'}.{k}"] = repr(v)
    return out


def shape_spec(tr: Trainer) -> dict[str, Any]:
    m = tr.model
    return {
        **{f"param {n}": (tuple(p.shape), str(p.dtype), p.requires_grad) for n, p in m.named_parameters()},
        **{f"buffer {n}": (tuple(b.shape), str(b.dtype)) for n, b in m.named_buffers()},
        **_module_attrs(m),
        "epochs": tr.epochs, "steps_per_epoch": tr.steps_per_epoch, "max_batches": tr.max_batches,
        "task": repr(tr.task.spec), "device": str(tr.device),
    }


class _Extra(nn.Module):
    """Calls a member model's ``extra_loss`` under functional_call (its own delta, the stacked slices' graph)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self):
        return self.model.extra_loss()


class PackTrainer:
    """K member configurations of one shape signature trained as one batched model (see the module docstring)."""

    def __init__(self, configs: list[dict], *, data_dir: str | None = None, device: str | torch.device | None = None,
                 ids: list[str] | None = None):
        if not configs:
            raise ConfigError("a pack needs at least one configuration")
        ids = [f"m{i}" for i in range(len(configs))] if ids is None else [str(i) for i in ids]
        if len(ids) != len(configs) or len(set(ids)) != len(ids):
            raise ConfigError(f"a pack needs one distinct id per configuration, got {len(ids)} ids for "
                              f"{len(configs)} configurations")
        for c in configs:
            if not packable(str(c.get("model"))):
                raise ConfigError(f"model {c.get('model')!r} cannot train in a pack ({UNPACKABLE[c.get('model')]}); "
                                  "run it unpacked (--pack 1)")
        self.ids = ids
        self.members: dict[str, Trainer] = {}
        self._rng: dict[str, tuple] = {}
        for i, c in zip(ids, configs):
            tr = Trainer(c, data_dir=data_dir, device=device)
            self.members[i] = tr
            sd = tr.state_dict()
            self._rng[i] = (sd["torch_rng"], sd["numpy_rng"], sd["python_rng"])
        ref = shape_spec(self.members[ids[0]])
        for i in ids[1:]:
            spec = shape_spec(self.members[i])
            diff = sorted((k for k in set(ref) | set(spec) if ref.get(k) != spec.get(k)),
                          key=lambda k: (not k.startswith(("param ", "buffer ")), k))  # shapes first
            if diff:
                show = "; ".join(f"{k}: {ref.get(k)} vs {spec.get(k)}" for k in diff[:4])
                raise ConfigError(f"pack members {ids[0]!r} and {i!r} differ in shape or forward function "
                                  f"({show}{'; ...' if len(diff) > 4 else ''}): they cannot share a pack")
        first = self.members[ids[0]]
        self.device = first.device
        self.epochs = first.epochs
        self.epoch = 0
        # the module vmap calls functionally (its tensors are swapped for the stacked ones); a copy, so that a cell
        # whose forward vmap cannot trace can be switched to its step-loop reference here without touching member 0
        self.base = copy.deepcopy(first.model)
        self.alive: list[str] = list(ids)
        self.ended: dict[str, str] = {}
        self._names = [n for n, _ in self.base.named_parameters()]
        self._bnames = [n for n, _ in self.base.named_buffers()]
        self._extra = {i: _Extra(tr.model) for i, tr in self.members.items() if tr.model.extra_loss() is not None}
        self._restack()
        self._probe()

    def _probe(self) -> None:
        """Run one tiny vmapped forward and backward (one sequence per member). A cell whose path vmap cannot trace
        (a fused nn.LSTM/nn.GRU kernel, a custom autograd function without a vmap rule) is switched to its step-loop
        ``step_reference`` in the pack's functional copy; a cell that has none is refused by name."""
        tr = self.members[self.alive[0]]
        x = next(iter(tr._batches("train", 0))).x[:1]
        xs = torch.stack([x] * len(self.alive))
        rng = torch.get_rng_state()
        saved = {n: b.clone() for n, b in self.B.items()}  # the probe must not move BatchNorm's running statistics
        try:
            for attempt in range(2):
                try:
                    out, _ = self._forward(xs, None)
                    _sum_floats(out).backward()
                    return
                except (RuntimeError, NotImplementedError) as e:
                    err = e
                    if attempt == 0 and _use_step_reference(self.base):
                        continue
                    break
            cells = ", ".join(sorted({type(c).__name__ for c in self.base.cells()}))
            why = (str(err).splitlines() or [type(err).__name__])[0][:200]
            raise ConfigError(f"model {tr.split.model!r} ({cells}) cannot run in a trial pack under torch.func.vmap "
                              f"({why}); run it unpacked (--pack 1)")
        finally:
            for P in self.P.values():
                P.grad = None
            with torch.no_grad():
                for n, b in saved.items():
                    self.B[n].copy_(b)
            torch.set_rng_state(rng)

    # ---- stacking ----------------------------------------------------------------------------------------------
    def _params(self, i: str) -> dict[str, nn.Parameter]:
        return dict(self.members[i].model.named_parameters())

    def _buffers(self, i: str) -> dict[str, torch.Tensor]:
        return dict(self.members[i].model.named_buffers())

    def _restack(self) -> None:
        """Stack the alive members' parameters and floating buffers; make each member's tensors views of its slice."""
        self.P: dict[str, torch.Tensor] = {}
        self.B: dict[str, torch.Tensor] = {}
        self._bdims: dict[str, int | None] = {}
        self._mp: dict[str, list[tuple[str, nn.Parameter]]] = {}
        if not self.alive:
            return
        mp = {i: self._params(i) for i in self.alive}
        mb = {i: self._buffers(i) for i in self.alive}
        # (name, parameter) of each alive member, in stack order: the step loop reads these, not named_parameters()
        self._mp = {i: [(n, mp[i][n]) for n in self._names] for i in self.alive}
        for n in self._names:
            req = mp[self.alive[0]][n].requires_grad
            P = torch.stack([mp[i][n].detach() for i in self.alive]).requires_grad_(req)
            self.P[n] = P
            for k, i in enumerate(self.alive):
                mp[i][n].data = P.data[k]
        for n in self._bnames:
            b0 = mb[self.alive[0]][n]
            if b0.is_floating_point():
                B = torch.stack([mb[i][n] for i in self.alive])
                self._bdims[n] = 0
                for k, i in enumerate(self.alive):
                    mb[i][n].data = B[k]
            else:  # integer buffers (index tables, BatchNorm's step count) are shared, unbatched
                B = b0
                self._bdims[n] = None
                for i in self.alive:
                    mb[i][n].data = B
            self.B[n] = B
        bdims = dict(self._bdims)

        def f(params, buffers, x, state):
            return functional_call(self.base, (params, buffers), (x, state))

        self._vm = vmap(f, in_dims=(0, bdims, 0, 0), randomness="different")
        self._vm0 = vmap(f, in_dims=(0, bdims, 0, None), randomness="different")

    def _end(self, i: str, why: str) -> None:
        if i in self.alive:
            self.alive.remove(i)
            self.ended[i] = why
            # the member's tensors keep their last values, detached from the stack
            for n, p in self._params(i).items():
                p.data = p.data.clone()
                p.grad = None
            for n, b in self._buffers(i).items():
                b.data = b.data.clone()

    def drop(self, member_id: str) -> None:
        """A scheduler stopped this member: it trains no more (the others are re-stacked)."""
        if member_id not in self.members:
            raise KeyError(f"no pack member {member_id!r}")
        if member_id in self.alive:
            self._end(member_id, "stopped")
            self._restack()

    # ---- one epoch ---------------------------------------------------------------------------------------------
    def _forward(self, xs: torch.Tensor, state):
        with packed():
            if state is None:
                return self._vm0(self.P, self.B, xs, None)
            return self._vm(self.P, self.B, xs, state)

    def _member_loss(self, k: int, i: str, out: torch.Tensor, batch) -> torch.Tensor:
        tr = self.members[i]
        loss = tr.task.objective.loss(out[k], batch)
        if i in self._extra:
            extra = functional_call(self._extra[i], {f"model.{n}": self.P[n][k] for n in self._names}, ())
            if extra is not None:
                loss = loss + extra
        return loss

    def _train_epoch(self) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
        """Train every alive member one epoch; returns ({id: train metrics}, {id: divergence reason})."""
        diverged: dict[str, str] = {}
        if not self.alive:
            return {}, diverged
        self.base.train()
        for i in self.alive:
            self.members[i].model.train()
        first = self.members[self.alive[0]]
        spec = first.task.spec
        check_every = first.check_every
        iters = {i: self.members[i]._batches("train", self.members[i].epoch) for i in self.alive}
        K = len(self.alive)
        total = torch.zeros(K, dtype=torch.float64, device=self.device)
        worst = torch.full((K,), -math.inf, dtype=torch.float64, device=self.device)
        state = None
        n = 0

        def remove(dead: list[str]):
            nonlocal total, worst, state
            keep = [k for k, i in enumerate(self.alive) if i not in dead]
            for i in dead:
                self._end(i, f"diverged: {diverged[i]}")
            idx = torch.tensor(keep, dtype=torch.long, device=self.device)
            total, worst = total[idx], worst[idx]
            if state is not None:
                state = _index_state(state, idx)
            self._restack()

        def check(final: bool = False):
            vals = worst.tolist()
            dead = []
            for k, i in enumerate(self.alive):
                try:
                    self.members[i]._check_loss(vals[k] if (n or not final) else 0.0)
                except Diverged as e:
                    diverged[i] = str(e)
                    dead.append(i)
            if dead:
                remove(dead)

        while self.alive:
            batches = {}
            for i in self.alive:
                b = next(iters[i], None)
                if b is not None:
                    batches[i] = b
            if len(batches) < len(self.alive):
                break
            xs = torch.stack([batches[i].x for i in self.alive])
            values = None
            try:
                out, new_state = self._forward(xs, state)
                losses = [self._member_loss(k, i, out, batches[i]) for k, i in enumerate(self.alive)]
                values = torch.stack([l.detach().to(torch.float64) for l in losses])
                for P in self.P.values():
                    P.grad = None
                torch.stack(losses).sum().backward()
            except RuntimeError:
                # as Trainer.train_epoch: a non-finite loss or weights can make an op fail (a solve on NaN
                # weights); the members that went bad end, and the step is retried for the others (none stepped)
                dead = self._bad_members(worst if values is None else torch.maximum(worst, values))
                if not dead:
                    raise
                for i in dead:
                    diverged.setdefault(i, f"non-finite training loss or weights at epoch {self.members[i].epoch + 1}")
                remove(dead)
                iters = {i: _chain_first(batches[i], iters[i]) for i in self.alive}
                continue
            total = total + values
            worst = torch.maximum(worst, values)  # maximum propagates NaN: one NaN step is never forgotten
            failed = []
            for k, i in enumerate(self.alive):
                tr = self.members[i]
                tr.optimizer.zero_grad(set_to_none=True)
                for name, p in self._mp[i]:
                    g = self.P[name].grad
                    if g is not None:
                        p.grad = g[k]
                try:
                    if tr.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_([p for _, p in self._mp[i]], tr.grad_clip)
                    tr.optimizer.step()
                except RuntimeError:
                    # this member's step failed (its loss is checked next); the others step as usual
                    if i not in self._bad_members(worst, only=i):
                        raise
                    failed.append(i)
            state = detach_state(new_state) if spec.stateful else None
            if failed:
                for i in failed:
                    diverged[i] = f"non-finite training loss or weights at epoch {self.members[i].epoch + 1}"
                remove(failed)
            for i in self.alive:
                if self.members[i].scheduler is not None:
                    self.members[i].scheduler.step()
            n += 1
            if n % check_every == 0:
                check()
        if self.alive:
            check(final=True)
        sums = total.tolist()
        train = {}
        for k, i in enumerate(self.alive):
            self.members[i].epoch += 1
            train[i] = {TRAIN_LOSS: sums[k] / max(n, 1)}
        return train, diverged

    def _bad_members(self, worst: torch.Tensor, only: str | None = None) -> list[str]:
        vals = worst.tolist()
        bad = []
        for k, i in enumerate(self.alive):
            if only is not None and i != only:
                continue
            finite = all(bool(torch.isfinite(self.P[n][k]).all()) for n in self._names)
            v = vals[k]  # -inf: no update yet
            if not finite or math.isnan(v) or v == math.inf or v > self.members[i].max_loss:
                bad.append(i)
        return bad

    def run_epoch(self) -> dict[str, dict]:
        """One epoch of every alive member: {id: metrics}, as each member's Trainer.run_epoch plus diverged=0, or
        {diverged: 1, diverged_reason, epoch} for a member that diverged in this epoch."""
        t0 = time.perf_counter()
        train, diverged = self._train_epoch()
        t_train = time.perf_counter() - t0
        out: dict[str, dict] = {}
        for i in self.ids:
            if i in diverged:
                out[i] = {DIVERGED: 1, DIVERGED_REASON: diverged[i], EPOCH: self.members[i].epoch + 1}
            elif i in train:
                t1 = time.perf_counter()
                tr = self.members[i]
                tr.model.eval()
                m = tr.epoch_metrics(train[i], t1 - t_train)
                m[DIVERGED] = 0
                out[i] = m
        self.epoch += 1
        return out

    # ---- checkpoints -------------------------------------------------------------------------------------------
    def member_state_dict(self, member_id: str) -> dict[str, Any]:
        """That member's ``Trainer.state_dict()``, tensors cloned (not views of the stack), with the member's own RNG
        states; ``Trainer.load_state_dict`` of a trainer of the member's configuration accepts it."""
        tr = self.members[member_id]
        sd = _clone(tr.state_dict())
        sd["torch_rng"], sd["numpy_rng"], sd["python_rng"] = _clone(self._rng[member_id])
        return sd

    def state_dict(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "alive": list(self.alive), "ended": dict(self.ended), "epoch": self.epoch,
                "members": {i: self.member_state_dict(i) for i in self.ids}}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if list(sd.get("ids", [])) != self.ids:
            raise ConfigError(f"pack checkpoint holds members {sd.get('ids')}, this pack has {self.ids}")
        rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        for i in self.ids:
            msd = sd["members"][i]
            self.members[i].load_state_dict(msd)  # copies into the (stacked) tensors in place
            self._rng[i] = (msd["torch_rng"], msd["numpy_rng"], msd["python_rng"])
        torch.set_rng_state(rng[0])  # a member's RNG states are its own; the pack's process keeps its own
        np.random.set_state(rng[1])
        random.setstate(rng[2])
        for i in list(self.alive):
            if i not in sd["alive"]:
                self._end(i, sd["ended"].get(i, "stopped"))
        self.ended = dict(sd["ended"])
        self.epoch = int(sd["epoch"])
        self._restack()


def _use_step_reference(model: nn.Module) -> bool:
    """Switch every cell of ``model`` that runs a fused torch RNN module (nn.LSTM, nn.GRU: no vmap rule) to its
    ``step_reference`` step loop (the same maths, plain autograd). True when any cell was switched."""
    switched = False
    for c in model.modules():
        if (hasattr(c, "step_reference") and any(isinstance(m, nn.RNNBase) for m in c.modules())
                and c.forward != c.step_reference):
            c.forward = c.step_reference
            switched = True
    return switched


def _sum_floats(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.sum() if out.is_floating_point() else out.new_zeros((), dtype=torch.get_default_dtype())
    return sum((_sum_floats(o) for o in out), torch.zeros(()))


def _index_state(state, idx: torch.Tensor):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.index_select(0, idx)
    return type(state)(_index_state(s, idx) for s in state)


def _chain_first(first, rest):
    yield first
    yield from rest
