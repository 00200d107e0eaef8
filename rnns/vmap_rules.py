"""Shared pieces of the vmap rules that let the explicit-BPTT fast paths run inside a trial pack.

A trial pack (``search.pack``) runs K member models as one model: ``torch.func.vmap`` over
``torch.func.functional_call`` with every weight stacked on a leading member dimension, and the ordinary autograd
engine (``loss.backward()`` outside the vmap) for the gradients. A custom ``torch.autograd.Function`` enters such a
vmap only through its ``vmap`` staticmethod: it receives the plain tensors with the member dimension somewhere
(``in_dims``), moves it to the front (:func:`members_first`), calls a member-batched Function (a TorchScript loop over
time whose step is one ``baddbmm`` with the (K, H, H) recurrent weights on the (K, B, H) states, and whose backward is
again explicit) and returns its outputs with their member dimension. The member-batched Functions are called below
every functorch transform, so the autograd engine records them as ordinary nodes.

Only that one arrangement is supported: a vmap over members, outermost, with ordinary autograd. A second transform
around it (a nested vmap, or ``torch.func.grad`` / ``jacrev`` outside the vmap) would hand the batched Function
wrapped tensors it cannot run; :func:`members_first` refuses that with a clear error instead of a wrong answer.
"""
from __future__ import annotations

import torch


def members_first(info, in_dims, args, what: str) -> tuple[list, int]:
    """(args with the member dimension first, K): tensors batched at ``in_dims[i]`` are moved to dim 0, tensors that
    are not batched (in_dims None) are expanded to K along a new dim 0; other arguments pass unchanged."""
    from torch._C import _functorch

    K = info.batch_size
    out = []
    for a, d in zip(args, in_dims):
        if isinstance(a, torch.Tensor):
            if _functorch.is_functorch_wrapped_tensor(a) or _functorch.maybe_current_level() is not None:
                raise RuntimeError(
                    f"{what}: its vmap rule supports one vmap over trial-pack members with ordinary autograd "
                    "outside it; it was called under a second functorch transform (nested vmap, or grad/jacrev "
                    "around the vmap). Run the members under a single vmap, or use RNNSWEEP_REFERENCE_CELLS=1")
            a = a.movedim(d, 0) if d is not None else a.unsqueeze(0).expand(K, *a.shape)
        out.append(a)
    return out, K


def refuse_transformed_backward(grads, what: str) -> None:
    """Raise a clear error when a fast path's backward is reached under a functorch transform (``vmap`` over
    ``torch.func.grad``: the transform calls the single-sequence backward with batched tensors, which its scripted
    loops cannot take)."""
    from torch._C import _functorch

    if any(isinstance(g, torch.Tensor) and _functorch.is_functorch_wrapped_tensor(g) for g in grads):
        raise RuntimeError(
            f"{what}: its backward ran under a functorch transform (vmap over torch.func.grad / jacrev?); the "
            "explicit-BPTT fast paths support one vmap over trial-pack members with ordinary autograd outside it "
            "(loss.backward()). Use that, or RNNSWEEP_REFERENCE_CELLS=1")


def plain_twin(fn_cls: type) -> type:
    """An old-style (``forward(ctx, ...)``) autograd Function running ``fn_cls``'s forward, setup_context and
    backward, for calls outside any functorch transform.

    ``Function.apply`` of a setup_context-style Function binds its arguments through ``inspect.signature`` on every
    call (to fill defaults for functorch): ElmanBPTT's apply at T = 1 measured 42 us against 18 us old-style and
    19 us through the twin (one thread), a cost per call that is a few percent of a short sequence's forward. :func:`apply` picks the twin unless a transform (the pack's vmap) is active."""

    def forward(ctx, *args):
        out = fn_cls.forward(*args)
        fn_cls.setup_context(ctx, args, out)
        return out

    def backward(ctx, *grads):
        return fn_cls.backward(ctx, *grads)

    # built with type() so that autograd's metaclass names the backward node after it (e.g. ElmanBPTTPlainBackward)
    return type(fn_cls.__name__ + "Plain", (torch.autograd.Function,),
                {"forward": staticmethod(forward), "backward": staticmethod(backward), "__module__": fn_cls.__module__,
                 "__doc__": f"Old-style twin of {fn_cls.__name__} (rnns.vmap_rules.plain_twin)."})


def apply(fn_cls: type, plain_cls: type, *args):
    """``fn_cls.apply(*args)`` under a functorch transform (its vmap rule runs), else ``plain_cls.apply(*args)``."""
    if torch._C._are_functorch_transforms_active():
        return fn_cls.apply(*args)
    return plain_cls.apply(*args)
