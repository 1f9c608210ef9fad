r"""Optimisers as pure update functions over a state dict (CS231n ``optim.py``).

``update(w, dw, state) -> (w, state)``: the caller owns the state, so it can be
checkpointed and resumed exactly.

Notes
-----
Adam (Kingma & Ba), step :math:`t = 1, 2, \dots`:

.. math::  m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, g_t                      \tag{A1}
.. math::  v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2                    \tag{A2}
.. math::  \hat m_t = m_t / (1 - \beta_1^t), \quad \hat v_t = v_t / (1 - \beta_2^t)   \tag{A3}
.. math::  w_t = w_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)   \tag{A4}

At the first step :math:`\hat m_1 = g_1` and :math:`\hat v_1 = g_1^2`, so
:math:`w_1 = w_0 - \eta\,\mathrm{sign}(g_1)` (up to :math:`\epsilon`).
"""
from .backend import get_xp


def adam(w, dw, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step (A1)-(A4). ``state`` is ``{}`` at the start; a new dict is returned."""
    xp = get_xp(w)
    t = state.get("t", 0) + 1
    m = state.get("m", xp.zeros_like(w))
    v = state.get("v", xp.zeros_like(w))
    m = beta1 * m + (1 - beta1) * dw                    # (A1)
    v = beta2 * v + (1 - beta2) * (dw * dw)             # (A2)
    m_hat = m / (1 - beta1 ** t)                        # (A3)
    v_hat = v / (1 - beta2 ** t)                        # (A3)
    w = w - lr * m_hat / (xp.sqrt(v_hat) + eps)         # (A4)
    return w, {"t": t, "m": m, "v": v}
