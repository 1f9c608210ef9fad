import numpy as np

from numstyle.optim import adam


def test_adam_first_step_is_lr_times_sign_of_gradient(rng):
    w = rng.standard_normal(10)
    g = rng.choice([-1.0, 1.0], 10) * np.logspace(-2, 3, 10)   # magnitudes do not matter at step 1 (A3)
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
