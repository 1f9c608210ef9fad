"""The one dispatch point: which implementation computes each layer and loss.

A network is built from the reference layers (:mod:`numstyle.layers`,
:mod:`numstyle.transformer_layers`); as it is built, :func:`select` offers
each layer to the fast paths registered for its class in ``FAST``, in order,
and the first whose ``applies(layer, xp)`` holds stands in for it, built from
the layer's own parameters. The objectives take their losses from
:func:`losses`. Nothing is dispatched while a network runs: with
``NUMSTYLE_REFERENCE=1`` (or ``--reference``) every layer stays the one in the
book, and a student stepping through a run steps through exactly that code.
"""
import numpy as np

from . import layers, losses as reference_losses, settings, transformer_layers as tl
from .fast import activations, conv, kernel_check, losses as fast_losses, norm, pad, pool, upsample
from .fast import norm_numba, pool_numba, winograd, winograd_numba

FAST = {   # reference layer -> fast paths, tried in order
    layers.Conv2d: ([winograd_numba.CompiledWinogradConv2d] if winograd_numba.INSTALLED else [])
    + [winograd.WinogradConv2d, conv.BandedConv2d],
    layers.ReLU: [activations.ChunkedReLU],
    layers.AvgPool2d: ([pool_numba.CompiledAvgPool2d] if pool_numba.INSTALLED else [])
    + [pool.StridedAvgPool2d],
    layers.MaxPool2d: ([pool_numba.CompiledMaxPool2d] if pool_numba.INSTALLED else [])
    + [pool.TwoStepMaxPool2d],
    tl.ConvTranspose2d: [conv.BandedConvTranspose2d],
    tl.Norm: ([norm_numba.CompiledNorm] if norm_numba.INSTALLED else []) + [norm.OnePassNorm],
    tl.ConditionalNorm: [norm.OnePassConditionalNorm],
    tl.ReflectionPad2d: [pad.SlicedReflectionPad2d],
    tl.Upsample: [upsample.SlicedUpsample],
    tl.UpsampleConv: [upsample.PhaseResizeConv],
}


FUSED = {   # two neighbouring fast layers -> one fast layer that does both
    (norm.OnePassNorm, activations.ChunkedReLU): norm.NormReLU,
    (norm_numba.CompiledNorm, activations.ChunkedReLU): norm.NormReLU,
}

RECTIFYING = {   # (fast layer, the fast ReLU after it): the layer applies the ReLU itself
    (winograd_numba.CompiledWinogradConv2d, activations.ChunkedReLU),
}


def select(layer, xp=np):
    """``layer`` itself, or the first registered fast path that applies to it on ``xp``.

    Containers (``Sequential``, ``Residual``) are selected layer by layer, then
    neighbours registered in ``FUSED`` are joined.
    """
    if isinstance(layer, layers.Sequential):
        chosen = []
        for inner in (select(inner, xp) for inner in layer.layers):
            pair = (type(chosen[-1]), type(inner)) if chosen else None
            chosen[-1:] = [FUSED[pair](chosen[-1], inner)
                           ] if pair in FUSED else chosen[-1:] + [inner]
        layer.layers = chosen
        return layer
    if isinstance(layer, layers.Residual):
        layer.branch = select(layer.branch, xp)
        return layer
    if settings.get().reference:
        return layer
    kernel_check.ensure(xp)  # a GPU's fused kernels: self-tested once, before any is used
    for fast in FAST.get(type(layer), ()):
        if fast.applies(layer, xp):
            return fast.replacing(layer)
    return layer


def rectify_in_place(chain, taps=()):
    """VGG's chain of named layers: where a pair in ``RECTIFYING`` meets and the first layer's own
    output is not in ``taps``, that layer applies the ReLU (``rectify``) and the ReLU, kept in
    its place under its name, becomes a pass-through (:class:`~numstyle.fast.activations.
    Rectified`): one pass over the activations fewer each way. Returns ``chain``, changed in
    place."""
    for k in range(len(chain) - 1):
        layer, relu = chain[k], chain[k + 1]
        if (type(layer), type(relu)) in RECTIFYING and layer.name not in taps:
            layer.rectify = True
            chain[k + 1] = activations.Rectified.replacing(relu)
    return chain


def losses(xp=np):
    """The module of loss functions for arrays of ``xp``: :mod:`numstyle.losses`, or its fast
    drop-in."""
    if settings.get().reference:
        return reference_losses
    kernel_check.ensure(xp)
    return fast_losses


def implementations(reference):
    """All implementations of a reference layer class: itself first, then its fast paths (tests)."""
    return [reference] + FAST.get(reference, [])
