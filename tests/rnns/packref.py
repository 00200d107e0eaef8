"""A trial pack's vmapped fast path against K single fast calls and the reference, shared by the pack tests.

The pack runs K copies of a module (a cell or a whole SequenceModel) with their weights stacked on a leading member
dimension: ``torch.func.vmap`` over ``torch.func.functional_call`` inside ``rnns.base.packed()``, gradients by the
ordinary autograd engine outside the vmap (as ``search.pack`` does). Each member gets its own input and initial
state; outputs and states are weighted by fixed random tensors so every output carries a gradient.
"""
from __future__ import annotations

import copy

import torch
from torch.func import functional_call, stack_module_state, vmap

from rnns.base import packed


def _flat(state):
    if state is None:
        return []
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for s in state for t in _flat(s)]


def _loss(y, state, gen_seed=321):
    gen = torch.Generator().manual_seed(gen_seed)
    total = 0
    for t in [y, *_flat(state)]:
        t = torch.view_as_real(t) if t.is_complex() else t  # the LRU's state is complex
        w = torch.randn(t.shape, dtype=t.dtype, generator=gen)
        total = total + (t * w).sum()
    return total


def run_pack(modules, xs, h0s, randomness="error", seed=None):
    """(ys, states, grads) of the K modules run as one vmapped pack; grads: [x, *h0 parts, *stacked params]
    with a leading member dimension. ``h0s`` is None or a list (one per member) of states."""
    params, buffers = stack_module_state(modules)
    base = copy.deepcopy(modules[0]).to("meta")
    X = xs.clone().requires_grad_()
    K = len(modules)
    H0 = None
    if h0s is not None:
        H0 = _stack_states(h0s)
        for t in _flat(H0):
            t.requires_grad_()

    def one(p, b, x, h0):
        return functional_call(base, (p, b), (x, h0))

    if seed is not None:
        torch.manual_seed(seed)
    with packed():
        in_dims = (0, 0, 0, 0 if H0 is not None else None)
        y, state = vmap(one, in_dims=in_dims, randomness=randomness)(params, buffers, X, H0)
    # the loss of every member, with its own weighting: summed over members
    total = sum(_loss(_index(y, k), _index(state, k), 321 + k) for k in range(K))
    inputs = [X, *_flat(H0)] + [p for p in params.values() if p.requires_grad]
    run_pack.last_graph = graph_names(total)
    grads = torch.autograd.grad(total, inputs, allow_unused=True)
    return y, state, grads, [n for n, p in params.items() if p.requires_grad]


def graph_names(t: torch.Tensor) -> set[str]:
    """Names of every autograd node behind ``t``."""
    seen, names, todo = set(), set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        todo.extend(f for f, _ in fn.next_functions)
    return names


def run_singles(modules, xs, h0s, monkeypatch, reference: bool, seed=None):
    """The same K members one by one (fast path, or the reference with RNNSWEEP_REFERENCE_CELLS=1); gradients
    stacked on a leading member dimension as :func:`run_pack` returns them."""
    monkeypatch.setenv("RNNSWEEP_REFERENCE_CELLS", "1" if reference else "0")
    ys, states, grads = [], [], []
    for k, m in enumerate(modules):
        x = xs[k].clone().requires_grad_()
        h0 = None
        if h0s is not None:
            h0 = copy.deepcopy(h0s[k])
            for t in _flat(h0):
                t.requires_grad_()
        if seed is not None:
            # each member draws the masks the pack draws once for all (randomness="same"): inside packed(), so
            # that the same (out-of-place) draw is used, see rnns.gated_fast.candidate_masks
            torch.manual_seed(seed)
            with packed():
                y, state = m(x, h0)
        else:
            y, state = m(x, h0)
        total = _loss(y, state, 321 + k)
        ps = [p for p in m.parameters() if p.requires_grad]
        grads.append(torch.autograd.grad(total, [x, *_flat(h0), *ps], allow_unused=True))
        ys.append(y)
        states.append(state)
    monkeypatch.setenv("RNNSWEEP_REFERENCE_CELLS", "0")
    stacked = []
    for parts in zip(*grads):
        if any(g is None for g in parts):
            stacked.append(None if all(g is None for g in parts) else
                           torch.stack([torch.zeros(()) if g is None else g for g in parts]))
        else:
            stacked.append(torch.stack(parts))
    return torch.stack(ys), _stack_states(states), stacked


def _stack_states(states):
    first = states[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(states)
    return type(first)(_stack_states([s[i] for s in states]) for i in range(len(first)))


def _index(state, k):
    if isinstance(state, torch.Tensor):
        return state[k]
    return type(state)(_index(s, k) for s in state)


def check_pack(modules, xs, h0s, monkeypatch, tol, randomness="error", seed=None, reference=True, kernel=None):
    """vmap pack == K single fast calls (and == the K references): outputs, final states, gradients w.r.t. the
    inputs, the initial states and every parameter. ``kernel``: the member-batched autograd Function the pack must
    have run (its backward node in the graph), so that a silent fallback to the reference loop fails the test."""
    y, state, grads, names = run_pack(modules, xs, h0s, randomness, seed)
    if kernel is not None:
        assert f"{kernel}Backward" in run_pack.last_graph, (kernel, sorted(run_pack.last_graph))
    assert torch.isfinite(y).all(), "the test's inputs make the cell diverge: make them smaller"
    labels = ["x"] + [f"h0[{i}]" for i in range(len(_flat(h0s[0]) if h0s is not None else []))] + names
    for ref in ([False, True] if reference else [False]):
        ys, states, sgrads = run_singles(modules, xs, h0s, monkeypatch, ref, seed)
        tag = "reference" if ref else "single fast"
        torch.testing.assert_close(y, ys, rtol=tol, atol=tol, msg=f"outputs vs {tag}")
        for i, (a, b) in enumerate(zip(_flat(state), _flat(states))):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=f"state {i} vs {tag}")
        assert len(grads) == len(sgrads) == len(labels)
        for n, a, b in zip(labels, grads, sgrads):
            assert (a is None) == (b is None), (n, tag)
            if a is not None:
                torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=f"d/d {n} vs {tag}")
