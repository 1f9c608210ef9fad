import numpy as np

from numstyle import lbfgs
from numstyle.optim import adam


def test_adam_first_step_is_lr_times_sign_of_gradient(rng):
    w = rng.standard_normal(10)
    # magnitudes do not matter at step 1 (A3)
    g = rng.choice([-1.0, 1.0], 10) * np.logspace(-2, 3, 10)
    w1, state = adam(w, g, {}, lr=1e-3)
    # the step is lr * |g| / (|g| + eps): off from lr by at most lr * eps / min|g| = 1e-9
    np.testing.assert_allclose(w1, w - 1e-3 * np.sign(g), rtol=0, atol=2e-9)
    assert state["t"] == 1


def test_adam_is_pure_and_minimises_a_quadratic(rng):
    target = rng.standard_normal(5)
    w, state = np.zeros(5), {}
    for _ in range(2000):
        before = dict(state)
        w_new, state_new = adam(w, 2 * (w - target), state, lr=1e-2)
        assert state == before, "adam must not mutate its input state"
        w, state = w_new, state_new
    np.testing.assert_allclose(w, target, atol=1e-3)


def test_lbfgs_finds_the_projected_minimum_of_a_boxed_quadratic(rng):
    """f = 1/2 sum a (x - c)^2 in a box: the minimiser is clip(c), some coordinates
    held at a bound (L3)."""
    a, c = rng.uniform(0.1, 10, 50), rng.uniform(-3, 3, 50)
    lo, hi = np.full(50, -1.5), np.full(50, 2.0)
    assert ((c < lo) | (c > hi)).sum() >= 5, "the case must hold some coordinates at the bounds"

    def f(x):
        return 0.5 * float(np.sum(a * (x - c) ** 2)), a * (x - c)

    x = lbfgs.minimize(f, np.zeros(50), 100, lo, hi)
    np.testing.assert_allclose(x, np.clip(c, lo, hi), atol=1e-6,
                               err_msg="not the projected minimiser")


def test_lbfgs_minimises_rosenbrock_and_every_step_descends():
    """The classic curved valley, unbounded in effect: (1, 1), and each accepted
    iterate lowers f (L4)."""
    def f(x):
        u, v = x
        return (float((1 - u) ** 2 + 100 * (v - u * u) ** 2),
                np.array([-2 * (1 - u) - 400 * u * (v - u * u), 200 * (v - u * u)]))
    accepted = []
    x = lbfgs.minimize(f, np.array([-1.2, 1.0]), 200, np.full(2, -1e9), np.full(2, 1e9),
                       callback=lambda x: accepted.append(f(x)[0]))
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-5)
    assert all(b <= a for a, b in zip(accepted, accepted[1:])), "an accepted step raised the loss"


def test_compact_direction_matches_the_two_loop_recursion(rng):
    """(L5) against its loop-based twin (L2), float64, as pairs fill, wrap round the slots and one
    fails the curvature condition. Both compute the same -H g; the difference is
    rounding, ~1e-15 relative."""
    n, memory = 40, 4
    A = rng.standard_normal((n, n))
    A = A @ A.T + n * np.eye(n)                           # an SPD Hessian: y = A s gives s.y > 0
    x = rng.standard_normal(n)
    pairs, kept = lbfgs.Pairs(x, memory), []
    for trial in range(9):
        s = rng.standard_normal(n)
        y = -s if trial == 5 else A @ s                   # trial 5: s.y < 0, must not be kept
        pairs.add(x + s, x, y, np.zeros(n))
        if trial != 5:
            kept = (kept + [(s, y)])[-memory:]
        assert len(pairs) == len(kept), \
            f"trial {trial}: {len(pairs)} pairs kept, expected {len(kept)}"
        g = rng.standard_normal(n)
        want = lbfgs.two_loop(g, kept)
        err = np.abs(pairs.direction(g) - want).max() / np.abs(want).max()
        assert err < 1e-12, f"trial {trial}: compact form off the two-loop recursion by {err:.1e}"
