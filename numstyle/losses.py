r"""Perceptual losses. Each returns ``(loss, grad)`` -- SciPy's ``jac=True`` contract.

``loss`` is a float on NumPy; on CuPy it is the 0-d device array, read once per step
(:func:`numstyle.backend.scalar`). The Gram helpers (:func:`gram_forward`, :func:`gram_backward`)
return their value and its cache, or the gradient, as the layers do.

Notation (Gatys et al.): a layer :math:`l` has :math:`N_l` feature maps of
:math:`M_l = H_l W_l` pixels; :math:`F^l \in \mathbb{R}^{N_l \times M_l}` holds
the generated image's responses, :math:`P^l` the content image's.

Notes
-----
Content loss and its gradient:

.. math::  L_{\mathrm{content}} = \tfrac12 \sum_{ij} (F_{ij} - P_{ij})^2                 \tag{C1}
.. math::  \frac{\partial L_{\mathrm{content}}}{\partial F_{ij}} = F_{ij} - P_{ij}          \tag{C2}

Gram matrix and its backward for *any* upstream :math:`dG` (not only symmetric):

.. math::  G = F F^\top, \qquad G_{ij} = \sum_k F_{ik} F_{jk}                              \tag{S1}
.. math::  dF = (dG + dG^\top)\, F                                                        \tag{S2}

Style loss of one layer (Gatys' normalisation) and its gradient:

.. math::  E_l = \frac{1}{4 N_l^2 M_l^2} \sum_{ij} (G_{ij} - A_{ij})^2                      \tag{S3}
.. math::  \frac{\partial E_l}{\partial G} = \frac{G - A}{2 N_l^2 M_l^2}                   \tag{S4}
.. math::  \frac{\partial E_l}{\partial F} = \frac{1}{N_l^2 M_l^2} (G - A) F
           \;=\; \frac{1}{N_l^2 M_l^2} \big(F^\top (G - A)\big)^\top                       \tag{S5}

(S5) is (S2) applied to the symmetric (S4); the seeds (the project's founding notes,
docs/experiments.md) write it transposed.
Several layers: :math:`L_{\mathrm{style}} = \sum_l w_l E_l`                           (S6).
Style targets :math:`A` from a style image of a different size are rescaled to
the generated image's :math:`M_l`: :math:`A = (M_l / M^s_l)\, F^s F^{s\top}`, and
several style images blend their targets, :math:`A = \sum_k b_k A_k`,
:math:`\sum_k b_k = 1`                                                                 (S7).

Total variation (squared differences of neighbouring pixels):

.. math::  L_{\mathrm{TV}} = \sum_{n,c,i,j} (x_{c,i+1,j} - x_{c,i,j})^2
           + (x_{c,i,j+1} - x_{c,i,j})^2                                                   \tag{TV1}
.. math::  \frac{\partial L_{\mathrm{TV}}}{\partial x}
           = 2(\Delta_v^\top \Delta_v x + \Delta_h^\top \Delta_h x)                        \tag{TV2}

where :math:`\Delta_v x = x_{i+1,j} - x_{i,j}` and its adjoint sends each
difference back with ``+`` to the lower pixel and ``-`` to the upper one.

Phase penalty (a network that down-samples twice by 2 repeats itself every
:math:`p = 4` pixels; its grid is the part of the image that depends on the
pixel's phase :math:`(a, b) = (i \bmod p, j \bmod p)`). With
:math:`m_{nc,ab}` the mean of channel :math:`c` of image :math:`n` over the
pixels of phase :math:`(a, b)` and :math:`\bar m_{nc}` the mean of those
:math:`p^2` means:

.. math::  L_{\mathrm{phase}} = \frac{1}{N C p^2}
           \sum_{n,c,a,b} (m_{nc,ab} - \bar m_{nc})^2                                    \tag{PH1}
.. math::  \frac{\partial L_{\mathrm{phase}}}{\partial x_{nc,ij}}
           = \frac{2 (m_{nc,ab} - \bar m_{nc})}{N C H W},
           \quad (a, b) = (i \bmod p, j \bmod p)                                         \tag{PH2}

(PH1) is the square of the checkerboard measure (Q4) of :mod:`numstyle.metrics`
taken per RGB channel, averaged over the channels and the batch; (PH2) uses
:math:`\sum_{ab} (m_{ab} - \bar m) = 0`, so :math:`\bar m` passes no gradient.
Super-resolution penalises the phase pattern of the error instead,
:math:`L_{\mathrm{phase}}(\hat y - y)` (PH3): a photo has a little of its own.

Block means (a super-resolution network's output against the photo it
enlarges: what the low-resolution input already fixes). With
:math:`\mu_{nc,uv}(x)` the mean of channel :math:`c` of image :math:`n` over
the :math:`s \times s` block :math:`(u, v)`, :math:`h = \lfloor H/s \rfloor`,
:math:`w = \lfloor W/s \rfloor`:

.. math::  L_{\mathrm{block}} = \frac{1}{N C h w}
           \sum_{n,c,u,v} (\mu_{nc,uv}(x) - \mu_{nc,uv}(y))^2                          \tag{LR1}
.. math::  \frac{\partial L_{\mathrm{block}}}{\partial x_{nc,ij}}
           = \frac{2 (\mu_{nc,uv}(x) - \mu_{nc,uv}(y))}{N C H W},
           \quad (u, v) = (\lfloor i/s \rfloor, \lfloor j/s \rfloor)              \tag{LR2}
"""
from .backend import get_xp, scalar


def content_loss(F, P, weight=1.0):
    r"""Content loss (C1) and its gradient (C2), both times ``weight``.

    Parameters
    ----------
    F, P : ndarray, same shape (N, C, H, W)
        Features of the generated image and of the content image.
    weight : float
        :math:`\alpha`, applied here so the gradient needs no extra pass.

    Returns
    -------
    loss : float
    dF : ndarray, shape of F (a new array the caller owns)
    """
    diff = F - P
    loss = (0.5 * weight) * scalar(diff.ravel() @ diff.ravel())   # (C1), times alpha: a dot product
    if weight != 1.0:
        diff *= diff.dtype.type(weight)
    return loss, diff                                   # (C2)


def gram_forward(F):
    r"""Gram matrix (S1) of a batch of feature maps.

    Parameters
    ----------
    F : ndarray, shape (N, C, H, W)

    Returns
    -------
    G : ndarray, shape (N, C, C)
    cache : ndarray, F flattened to (N, C, M)
    """
    N, C = F.shape[:2]
    Fm = F.reshape(N, C, -1)                       # (N, C, M)
    G = Fm @ Fm.transpose(0, 2, 1)                 # (N, C, M) @ (N, M, C) -> (N, C, C)   (S1)
    return G, Fm


def gram_backward(dG, cache):
    r"""Backward of the Gram matrix (S2): ``dF = (dG + dG^T) F``.

    The symmetric shortcut ``2 dG F`` is only right when ``dG`` is symmetric;
    this general form is checked with a non-symmetric ``dG``.

    Returns
    -------
    dF : ndarray, shape (N, C, M)
    """
    Fm = cache
    return (dG + dG.transpose(0, 2, 1)) @ Fm       # (N, C, C) @ (N, C, M) -> (N, C, M)   (S2)


def style_layer_loss(F, A, weight=1.0):
    r"""Gatys' style loss of one layer (S3) and its gradient (S4)-(S5), both times ``weight``.

    Parameters
    ----------
    F : ndarray, shape (1, N_l, H, W)
        Generated image's features.
    A : ndarray, shape (1, N_l, N_l)
        Target Gram matrix, already scaled to this ``M_l = H W`` (S7).
    weight : float
        :math:`\beta w_l`: it scales the small dG, not the large dF.

    Returns
    -------
    loss : float
    dF : ndarray, shape of F
    """
    _, N_l, H, W = F.shape
    G, Fm = gram_forward(F)                                     # (1, N_l, N_l)       (S1)
    loss, dG = style_loss_from_gram(G, A, H * W, weight)        # (S3), (S4)
    dF = gram_backward(dG, Fm)                                  # (1, N_l, M_l)  (S2) -> (S5)
    return loss, dF.reshape(F.shape)                            # (1, N_l, H, W)


def style_loss_from_gram(G, A, M_l, weight=1.0):
    r"""Style loss (S3) of a layer from its Gram matrix, and ``dL/dG`` (S4), both times ``weight``.

    Split from :func:`style_layer_loss` for tiled images, whose Gram matrix is
    summed over tiles (:mod:`numstyle.gatys_tiled`) before the loss is taken.

    Parameters
    ----------
    G, A : ndarray, shape (1, N_l, N_l)
        Generated image's Gram matrix and the target.
    M_l : int
        Pixels of the layer, ``H_l W_l``, of the whole image.

    Returns
    -------
    loss : float
    dG : ndarray, shape (1, N_l, N_l)
    """
    N_l = G.shape[1]
    scale = 1.0 / (4.0 * N_l ** 2 * M_l ** 2)
    diff = G - A
    loss = (weight * scale) * scalar(
        diff.ravel() @ diff.ravel())  # (S3), times beta w_l: a dot product
    dG = (2.0 * scale * weight) * diff                          # (S4), times beta w_l
    return loss, dG


def style_target(G_style, M_style, M_target):
    r"""Gram target of one style image, rescaled to ``M_target`` pixels (S7).

    Parameters
    ----------
    G_style : ndarray, shape (1, N_l, N_l)
        The style image's Gram matrix (S1) at this layer (whole, or summed over tiles (TL3)).
    M_style, M_target : int
        ``H W`` of the style image and of the generated image at this layer.

    Returns
    -------
    A : ndarray, shape (1, N_l, N_l)
    """
    return G_style * (M_target / M_style)                       # (S7)


def tv_loss(x):
    r"""Squared total variation (TV1) and its gradient (TV2).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)

    Returns
    -------
    loss : float
    dx : ndarray, shape of x
    """
    xp = get_xp(x)
    dv = x[:, :, 1:, :] - x[:, :, :-1, :]          # (N, C, H-1, W)  vertical differences
    dh = x[:, :, :, 1:] - x[:, :, :, :-1]          # (N, C, H, W-1)  horizontal differences
    loss = scalar((dv * dv).sum() + (dh * dh).sum())  # (TV1)
    dx = xp.zeros_like(x)
    dx[:, :, 1:, :] += 2 * dv                      # (TV2) adjoint of Δv: + to the lower pixel
    dx[:, :, :-1, :] -= 2 * dv                     #        - to the upper pixel
    dx[:, :, :, 1:] += 2 * dh                      # (TV2) adjoint of Δh
    dx[:, :, :, :-1] -= 2 * dh
    return loss, dx


def phase_loss(x, period=4):
    r"""Phase penalty (PH1) of a batch and its gradient (PH2).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        Only the top-left ``(H // period) period x (W // period) period`` pixels count, as in
        (Q4): the network's grid starts there; the rest gets zero gradient.

    Returns
    -------
    loss : float
    dx : ndarray, shape of x
    """
    xp = get_xp(x)
    dx = xp.zeros_like(x)
    phases = _whole_periods(x, period)                      # (N, C, H/p, p, W/p, p)
    if phases.size == 0:
        return 0.0, dx
    N, C, _, p, _, _ = phases.shape
    H, W = phases.shape[2] * p, phases.shape[4] * p         # whole periods only
    m = phases.mean(axis=(2, 4))                            # (N, C, p, p)  m_{nc,ab}
    dev = m - m.mean(axis=(2, 3), keepdims=True)            # (N, C, p, p)  m - m̄
    loss = scalar((dev * dev).sum()) / (N * C * p * p)      # (PH1)
    g = dev * dev.dtype.type(2.0 / (N * C * H * W))         # (N, C, p, p)  (PH2) per phase
    dx[:, :, :H, :W] = xp.broadcast_to(g[:, :, None, :, None, :],
                                       phases.shape).reshape(N, C, H, W)  # (N, C, H, W)
    return loss, dx


def _whole_periods(x, p):
    """The top-left whole ``p`` x ``p`` periods of ``x`` (N, C, H, W): (N, C, H/p, p, W/p, p)."""
    N, C, H, W = x.shape
    whole = x[:, :, :H // p * p, :W // p * p]                   # (N, C, H/p p, W/p p)
    return whole.reshape(N, C, H // p, p, W // p, p)            # (N, C, H/p, p, W/p, p)


def block_mean_loss(x, y, size=4):
    r"""Squared difference of ``size`` x ``size`` block means (LR1) and its gradient (LR2).

    Parameters
    ----------
    x, y : ndarray, shape (N, C, H, W)
        The output and its target; only the top-left whole blocks count (the rest gets zero
        gradient).

    Returns
    -------
    loss : float
    dx : ndarray, shape of x
    """
    xp = get_xp(x)
    dx = xp.zeros_like(x)
    xb = _whole_periods(x, size)                            # (N, C, h, s, w, s)
    if xb.size == 0:
        return 0.0, dx
    blocks = xb.shape
    N, C, H, W = blocks[0], blocks[1], blocks[2] * size, blocks[4] * size   # whole blocks only
    d = xb.mean(axis=(3, 5)) - _whole_periods(y, size).mean(axis=(3, 5))  # (N, C, h, w)
    loss = scalar((d * d).sum()) / d.size                   # (LR1)
    g = d * d.dtype.type(2.0 / (N * C * H * W))             # (N, C, h, w)  (LR2) per block
    dx[:, :, :H, :W] = xp.broadcast_to(g[:, :, :, None, :, None],
                                       blocks).reshape(N, C, H, W)  # (N, C, H, W)
    return loss, dx


# --- Johnson et al.'s perceptual losses (batch of N images, averaged over the batch) --------------
#
# .. math::  \ell_{\mathrm{feat}} = \frac{1}{C H W} \|\phi(\hat y) - \phi(y)\|_2^2            (J3)
# .. math::  G^\phi(x) = \frac{\psi \psi^\top}{C H W},
#            \quad \psi = \phi(x) \text{ as } (C, HW)                                         (J4)
# .. math::  \ell_{\mathrm{style}} = \|G^\phi(\hat y) - G^\phi(y_s)\|_F^2                     (J5)
#
# With N = C and M = HW, (J4) is Gatys' Gram (S1) divided by N M, so (J5) is 4 E_l of (S3).


def feature_loss(F, P, weight=1.0):
    r"""Johnson's feature reconstruction loss (J3), averaged over the batch, and its gradient.

    Parameters
    ----------
    F, P : ndarray, shape (N, C, H, W)
        Features of the outputs and of the content targets.

    Returns
    -------
    loss : float
    dF : ndarray, shape of F: ``2 weight (F - P) / (N C H W)``
    """
    N, C, H, W = F.shape
    diff = F - P
    loss = weight * scalar(diff.ravel() @ diff.ravel()) / (N * C * H * W)  # (J3), batch mean
    diff *= diff.dtype.type(2.0 * weight / (N * C * H * W))   # d(J3)/dF = 2 w (F - P) / NCHW
    return loss, diff


def gram_normalized(F):
    r"""Johnson's Gram matrix (J4) per image: (N, C, H, W) -> (N, C, C), and the cache for its
    backward."""
    N, C, H, W = F.shape
    G, Fm = gram_forward(F)                                                    # (S1)
    return G * (1.0 / (C * H * W)), Fm                                         # (J4)


def style_loss_johnson(F, Gs, weight=1.0):
    r"""Johnson's style reconstruction loss (J5) of one layer, averaged over the batch.

    Parameters
    ----------
    F : ndarray, shape (N, C, H, W)
    Gs : ndarray, shape (1, C, C) or (N, C, C)
        Target Gram matrix (J4) of the style image.

    Returns
    -------
    loss : float
    dF : ndarray, shape of F
    """
    N, C, H, W = F.shape
    G, Fm = gram_normalized(F)                                                 # (J4)
    diff = G - Gs                                                              # (N, C, C)
    loss = weight * scalar((diff * diff).sum()) / N  # (J5), mean over the batch
    dG = diff * (2.0 * weight / (N * C * H * W))  # d(J5)/dG, through the 1/(CHW) of (J4)
    dF = gram_backward(dG, Fm)                                  # (N, C, H W)          (S2)
    return loss, dF.reshape(F.shape)                            # (N, C, H, W)
