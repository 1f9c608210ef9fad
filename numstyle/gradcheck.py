r"""Finite-difference gradient checking, public for tests and teaching.

One checker for everything: given a function ``f(*inputs) -> out`` and a
hand-written vector-Jacobian product (VJP) ``dout -> d inputs``, compare the
analytic VJP with centred differences of the scalar ``<f(x), dout>`` for a
random, non-symmetric upstream gradient ``dout``.

Notes
-----
Centred difference, error :math:`O(h^2)` in the step and :math:`O(\epsilon/h)`
in round-off (:math:`\epsilon \approx 10^{-16}` in float64):

.. math::  \frac{\partial s}{\partial x_i} \approx \frac{s(x + h e_i) - s(x - h e_i)}{2h}  \tag{GC1}

With :math:`h = 10^{-5}` both terms are around :math:`10^{-10}` of the values,
so on smooth float64 functions ``rel_error`` lands near 1e-8 or below; values
near 1e-2 or above mean a wrong gradient (or a kink: ReLU at 0, max-pool ties).

.. math::  \mathrm{rel\_error}(a, b)
           = \max_i \frac{|a_i - b_i|}{\max(|a_i| + |b_i|, \delta)}                        \tag{GC2}
"""
import numpy as np


def rel_error(a, b, floor=1e-8):
    """Largest elementwise relative error (GC2) between two arrays.

    ``floor`` keeps entries where both values are ~0 from dividing by zero.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))


def numerical_grad(f, x, h=1e-5):
    """Centred-difference gradient (GC1) of a scalar function ``f(x)``.

    ``x`` is perturbed in place and restored; it should be float64.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = float(f(x))
        x[i] = old - h
        fm = float(f(x))
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)  # (GC1)
        it.iternext()
    return grad


def numerical_vjp(f, x, dout, h=1e-5):
    """Numerical vector-Jacobian product: the gradient of ``sum(f(x) * dout)``."""
    return numerical_grad(lambda v: np.sum(f(v) * dout), x, h)


def check_vjp(f, vjp, inputs, seed=0, h=1e-5, dout=None):
    """Compare an analytic VJP with finite differences, input by input.

    Parameters
    ----------
    f : callable
        ``f(*inputs) -> out`` (an array, or a scalar loss).
    vjp : callable
        ``vjp(dout, *inputs) -> tuple of gradients``, one per input (``None``
        for inputs that are not checked).
    inputs : list of float64 ndarrays
    seed : int
        Seeds the random upstream gradient ``dout`` (normal, non-symmetric).
    dout : ndarray, optional
        Upstream gradient to use instead of a random one.

    Returns
    -------
    errors : list of float
        ``rel_error`` per input (``None`` where ``vjp`` gave ``None``).
    """
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    out = np.asarray(f(*inputs))
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(out.shape)
    analytic = vjp(dout, *inputs)
    errors = []
    for k, g in enumerate(analytic):
        if g is None:
            errors.append(None)
            continue

        def f_k(v, k=k):
            args = list(inputs)
            args[k] = v
            return f(*args)

        num = numerical_vjp(f_k, inputs[k], dout, h)
        errors.append(rel_error(g, num))
    return errors
