"""One table of op and loss cases, one parametrised finite-difference test.

Every case runs in float64 with a random, non-symmetric upstream gradient and
states the relative error it should reach. With centred differences and
h = 1e-5 (numstyle.gradcheck, GC1) smooth cases land near 1e-8; cases through
ReLU or max pooling stay that small only because random inputs keep every
value far (>> h) from its kink.
"""
import zlib

import numpy as np
import pytest

from numstyle import gatys, losses, transformer, vgg
from numstyle.gradcheck import check_vjp
from numstyle.ops import activations, conv, norm, pad, pool, upsample, winograd

from conftest import TINY_WIDTH
from numstyle.backend import get_xp

# A wrong backward gives errors of 1e-2 .. 1; these bounds sit far below that.
SMOOTH = 1e-5       # smooth ops: ~1e-8 typically, up to ~3e-7 on entries whose gradient is near 0
KINKED = 1e-5       # through ReLU / max: same, as long as no value sits within h of its kink
NETWORK = 1e-4      # a whole network: round-off compounds through ~20 layers (seen: up to ~6e-6)


def _host(a):
    """Where a case's arrays live: NumPy here; tests/test_gpu.py builds the same cases on CuPy."""
    return a


def _conv(stride, pad, shape=(2, 3, 7, 6), k=3):
    def make(rng, dev=_host):
        x = dev(rng.standard_normal(shape))
        w = dev(rng.standard_normal((4, shape[1], k, k)))
        b = dev(rng.standard_normal(4))
        f = lambda x, w, b: conv.conv2d_forward(x, w, b, stride, pad)[0]  # noqa: E731
        vjp = lambda d, x, w, b: conv.conv2d_backward(d, conv.conv2d_forward(x, w, b, stride, pad)[1])  # noqa: E731
        return f, vjp, [x, w, b]
    return make


def _winograd(shape, m=2, pad_=1):
    def make(rng, dev=_host):
        x = dev(rng.standard_normal(shape))
        w = dev(rng.standard_normal((3, shape[1], 3, 3)))
        b = dev(rng.standard_normal(3))
        fwd = lambda x, w, b: winograd.winograd_conv3x3_forward(x, w, b, winograd.transform_kernel(w, m), pad_)  # noqa: E731
        f = lambda x, w, b: fwd(x, w, b)[0]  # noqa: E731
        vjp = lambda d, x, w, b: winograd.winograd_conv3x3_backward(d, fwd(x, w, b)[1])  # noqa: E731
        return f, vjp, [x, w, b]
    return make


def _conv_transpose(stride, pad_, out_pad, shape=(2, 4, 4, 5)):
    def make(rng, dev=_host):
        x = dev(rng.standard_normal(shape))
        w = dev(rng.standard_normal((shape[1], 3, 3, 3)))
        b = dev(rng.standard_normal(3))
        f = lambda x, w, b: conv.conv_transpose2d_forward(x, w, b, stride, pad_, out_pad)[0]  # noqa: E731
        vjp = lambda d, x, w, b: conv.conv_transpose2d_backward(  # noqa: E731
            d, conv.conv_transpose2d_forward(x, w, b, stride, pad_, out_pad)[1])
        return f, vjp, [x, w, b]
    return make


def _norm(kind, train=True):
    def make(rng, dev=_host):
        x = dev(rng.standard_normal((3, 4, 5, 6)))
        g, b = dev(rng.standard_normal(4)), dev(rng.standard_normal(4))
        running = {"mean": dev(rng.standard_normal(4)), "var": dev(rng.uniform(0.5, 2, 4))}
        fwd = lambda x, g, b: norm.norm_forward(x, g, b, kind, running=dict(running), train=train)  # noqa: E731
        return (lambda x, g, b: fwd(x, g, b)[0]), (lambda d, x, g, b: norm.norm_backward(d, fwd(x, g, b)[1])), [x, g, b]
    return make


def _transformer(spec, norm_kind, shape, train=True):
    def make(rng, dev=_host):
        params = {k: dev(v.astype(np.float64) + 0.1 * rng.standard_normal(v.shape))
                  for k, v in transformer.init_params(spec, seed=0).items()}
        keys = sorted(params)
        state = None if train else {name: {k: dev(v.astype(np.float64) + (k == "var")) for k, v in stats.items()}
                                    for name, stats in transformer.init_state(params, norm_kind).items()}

        def forward(x, vals):
            return transformer.transformer_forward(dict(zip(keys, vals)), x, spec, norm_kind, train=train, state=state)

        def f(x, *vals):
            return forward(x, vals)[0]

        def vjp(d, x, *vals):
            y, caches = forward(x, vals)
            grads, dx = transformer.transformer_backward(d, caches)
            return [dx] + [grads[k] for k in keys]
        return f, vjp, [dev(rng.standard_normal(shape))] + [params[k] for k in keys]
    return make


def _unary(forward, backward, shape=(2, 3, 7, 5)):
    def make(rng, dev=_host):
        f = lambda x: forward(x)[0]  # noqa: E731
        vjp = lambda d, x: (backward(d, forward(x)[1]),)  # noqa: E731
        return f, vjp, [dev(rng.standard_normal(shape))]
    return make


def _resize_conv(shape):
    def make(rng, dev=_host):
        x = dev(rng.standard_normal(shape))
        w = dev(rng.standard_normal((3, shape[1], 3, 3)))
        f = lambda x, w: upsample.resize_conv_forward(x, w)[0]  # noqa: E731
        vjp = lambda d, x, w: upsample.resize_conv_backward(d, upsample.resize_conv_forward(x, w)[1])  # noqa: E731
        return f, vjp, [x, w]
    return make


def _loss(fn, shape, extra=()):
    """A scalar (loss, grad) function: the VJP of a scalar is dout * grad."""
    def make(rng, dev=_host):
        others = [dev(rng.standard_normal(s)) for s in extra]
        f = lambda x: fn(x, *others)[0]  # noqa: E731
        vjp = lambda d, x: (d * fn(x, *others)[1],)  # noqa: E731
        return f, vjp, [dev(rng.standard_normal(shape))]
    return make


def _gram(rng, dev=_host):
    F = dev(rng.standard_normal((2, 4, 3, 5)))
    f = lambda F: losses.gram_forward(F)[0]  # noqa: E731
    vjp = lambda d, F: (losses.gram_backward(d, losses.gram_forward(F)[1]).reshape(F.shape),)  # noqa: E731
    return f, vjp, [F]   # dout is (2, 4, 4) random: non-symmetric, so the (dG + dG^T) F form is tested


def _tiny_vgg(model, pool_kind, layers):
    def make(rng, dev=_host):
        params = {k: (dev(w.astype(np.float64)), dev(b.astype(np.float64)))
                  for k, (w, b) in vgg.random_params(model, width=TINY_WIDTH, seed=3).items()}
        x = dev(rng.standard_normal((1, 3, 16, 16)))

        def f(x):
            feats, _ = vgg.features_forward(params, x, layers, model, pool_kind)
            return get_xp(x).concatenate([feats[n].ravel() for n in layers])

        def vjp(d, x):
            feats, caches = vgg.features_forward(params, x, layers, model, pool_kind)
            dfeats, i = {}, 0
            for n in layers:
                dfeats[n] = d[i:i + feats[n].size].reshape(feats[n].shape)
                i += feats[n].size
            return (vgg.features_backward(dfeats, caches, pool_kind),)
        return f, vjp, [x]
    return make


def _gatys_objective(pool_kind, tv):
    def make(rng, dev=_host):
        params = {k: (dev(w.astype(np.float64)), dev(b.astype(np.float64)))
                  for k, (w, b) in vgg.random_params("vgg19", width=TINY_WIDTH, seed=5).items()}
        content = dev(rng.standard_normal((1, 3, 16, 16)))
        styles = [dev(rng.standard_normal((1, 3, 24, 20))), dev(rng.standard_normal((1, 3, 16, 16)))]
        obj = gatys.make_objective(params, "vgg19", content=content, styles=styles, style_blend=[0.3, 0.7],
                                   pool=pool_kind, content_layer="conv4_2",
                                   style_layers=["relu1_1", "conv2_1", "relu3_1", "pool4", "conv5_1"],
                                   style_layer_weights=[1, 2, 3, 4, 5], style_weight=10.0, tv_weight=tv)
        f = lambda x: obj(x)[0]  # noqa: E731
        vjp = lambda d, x: (d * obj(x)[1],)  # noqa: E731
        return f, vjp, [dev(rng.standard_normal((1, 3, 16, 16)))]
    return make


CASES = [
    # (name, builder, tolerance)
    ("conv stride1 pad1", _conv(1, 1), SMOOTH),
    ("conv stride2 pad1", _conv(2, 1), SMOOTH),
    ("conv stride1 pad0 5x5", _conv(1, 0, (1, 2, 8, 9), k=5), SMOOTH),
    ("conv stride2 pad0", _conv(2, 0), SMOOTH),
    ("conv 9x9 few outputs", _conv(1, 4, (2, 9, 6, 7), k=9), SMOOTH),
    ("winograd conv even size", _winograd((2, 3, 6, 8)), SMOOTH),
    ("winograd conv odd size", _winograd((1, 2, 5, 7)), SMOOTH),
    ("winograd F(4x4) conv ragged size", _winograd((1, 2, 6, 9), m=4), SMOOTH),
    ("winograd valid conv (pad 0) odd size", _winograd((2, 3, 7, 8), pad_=0), SMOOTH),
    ("relu", _unary(activations.relu_forward, activations.relu_backward), KINKED),
    ("avg pool 2x2 (odd size)", _unary(pool.avg_pool_forward, pool.avg_pool_backward), SMOOTH),
    ("max pool 2x2 (odd size)", _unary(pool.max_pool_forward, pool.max_pool_backward), KINKED),
    ("transposed conv stride 1/2", _conv_transpose(2, 1, 1), SMOOTH),
    ("transposed conv stride 1", _conv_transpose(1, 1, 0), SMOOTH),
    ("instance norm", _norm("instance"), SMOOTH),
    ("batch norm (batch statistics)", _norm("batch"), SMOOTH),
    ("batch norm (running averages)", _norm("batch", train=False), SMOOTH),
    ("reflection pad 1", _unary(lambda x: pad.reflect_pad_forward(x, 1), pad.reflect_pad_backward), SMOOTH),
    ("reflection pad 4", _unary(lambda x: pad.reflect_pad_forward(x, 4), pad.reflect_pad_backward, (1, 2, 6, 5)), SMOOTH),
    ("nearest up-sampling x2", _unary(upsample.upsample_nearest_forward, upsample.upsample_nearest_backward), SMOOTH),
    ("nearest up-sampling x3", _unary(lambda x: upsample.upsample_nearest_forward(x, 3), upsample.upsample_nearest_backward, (1, 2, 3, 4)), SMOOTH),
    ("resize-convolution (U3)-(U5)", _resize_conv((2, 3, 4, 5)), SMOOTH),
    ("resize-convolution, one row", _resize_conv((1, 2, 1, 3)), SMOOTH),
    ("tanh", _unary(activations.tanh_forward, activations.tanh_backward), SMOOTH),
    ("gram matrix", _gram, SMOOTH),
    ("content loss", _loss(losses.content_loss, (1, 3, 4, 5), extra=[(1, 3, 4, 5)]), SMOOTH),
    ("style layer loss", _loss(losses.style_layer_loss, (1, 4, 3, 5), extra=[(1, 4, 4)]), SMOOTH),
    ("total variation", _loss(losses.tv_loss, (2, 3, 5, 4)), SMOOTH),
    ("johnson feature loss", _loss(lambda F, P: losses.feature_loss(F, P, 0.7), (2, 3, 4, 5), extra=[(2, 3, 4, 5)]), SMOOTH),
    ("johnson style loss", _loss(lambda F, G: losses.style_loss_johnson(F, G, 3.0), (2, 3, 4, 5), extra=[(1, 3, 3)]), SMOOTH),
    ("vgg16 features avg", _tiny_vgg("vgg16", "avg", ["relu1_2", "conv3_1", "pool3", "conv5_1"]), NETWORK),
    ("vgg19 features max", _tiny_vgg("vgg19", "max", ["conv1_1", "relu2_2", "relu4_4", "conv5_1"]), NETWORK),
    ("gatys objective avg", _gatys_objective("avg", 1e-2), NETWORK),
    ("gatys objective max", _gatys_objective("max", 0.0), NETWORK),
    ("style transformer (instance norm, odd size)", _transformer(transformer.style_spec((2, 3, 4), 2), "instance", (2, 3, 11, 9)), NETWORK),
    ("style transformer (batch norm)", _transformer(transformer.style_spec((2, 3, 4), 1), "batch", (2, 3, 8, 8)), NETWORK),
    # Nearest up-sampling with a norm in training mode after it would give the last residual block's beta a
    # gradient of exactly 0 (a per-channel constant stays constant through (U1) and the reflection-padded
    # conv, and the norm subtracts it), which centred differences only see as round-off: rel_error ~1.
    # Running averages make every parameter count.
    ("style transformer, nearest up-sampling (odd size)", _transformer(transformer.style_spec((2, 3, 4), 1, "nearest"), "batch", (2, 3, 9, 10), train=False), NETWORK),
    ("super-resolution x4 network", _transformer(transformer.sr_spec(4, 3, 1), "instance", (2, 3, 6, 5)), NETWORK),
    ("super-resolution x2 network, nearest up-sampling", _transformer(transformer.sr_spec(2, 3, 1, "nearest"), "batch", (2, 3, 5, 6), train=False), NETWORK),
]


@pytest.mark.parametrize("name,make,tol", CASES, ids=[c[0] for c in CASES])
def test_gradient(name, make, tol):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    f, vjp, inputs = make(rng)
    errors = check_vjp(f, vjp, inputs, seed=1)
    for k, err in enumerate(errors):
        assert err is not None and err < tol, (
            f"{name}: input {k} rel_error {err:.2e} exceeds {tol:.0e} -- the analytic backward "
            f"disagrees with centred differences")
