"""One table of cases, run on every implementation of every op: one parametrised
finite-difference test.

Each layer case runs on the reference layer and each fast path registered for it
(numstyle.engine.FAST) that computes it (its loop twin in numstyle.naive is held
to the reference layer, forward and backward, in tests/test_naive.py); each loss
case on numstyle.losses, its fast drop-in and its loop twin; each network case
on the reference engine and the fast one. So every fast path is proven against
the same math as the code it replaces.

Every case runs in float64 with a random, non-symmetric upstream gradient and
states the relative error it should reach. With centred differences and
h = 1e-5 (numstyle.gradcheck, GC1) smooth cases land near 1e-8; cases through
ReLU or max pooling stay that small only because random inputs keep every
value far (>> h) from its kink.
"""
import contextlib
import zlib

import numpy as np
import pytest

from numstyle import engine, gatys, layers, losses, naive, settings, transformer, vgg
from numstyle import transformer_layers as tl
from numstyle.backend import get_xp
from numstyle.fast import StandIn, kernel_check, losses as fast_losses, winograd
from numstyle.gradcheck import check_vjp, rel_error
from numstyle.train import PerceptualLoss

from conftest import TINY_WIDTH

# A wrong backward gives errors of 1e-2 .. 1; these bounds sit far below that.
SMOOTH = 1e-5       # smooth ops: ~1e-8 typically, up to ~3e-7 on entries whose gradient is near 0
KINKED = 1e-5       # through ReLU / max: same, as long as no value sits within h of its kink
NETWORK = 1e-4      # a whole network: round-off compounds through ~20 layers (seen: up to ~6e-6)


def _host(a):
    """Where a case's arrays live: NumPy here; tests/test_gpu.py builds the same cases on CuPy."""
    return a


@contextlib.contextmanager
def engine_mode(reference):
    """Run with the reference engine only (True), the fast one (False), or as set (None)."""
    if reference is None:
        yield
        return
    before = settings.get()
    settings.update(reference=reference)
    try:
        yield
    finally:
        settings.update(reference=before.reference)


def as_impl(impl, layer):
    """``layer`` computed by ``impl``: the reference class itself, a fast path as the engine builds
    it (:meth:`StandIn.replacing`), or a loop twin with the same attributes."""
    if type(layer) is impl:
        return layer
    if issubclass(impl, StandIn):
        return impl.replacing(layer)
    twin = object.__new__(impl)
    twin.__dict__.update(vars(layer))
    return twin


def _layer(cls, impl, params, x_shape, trainable=True, **kw):
    """A layer case: ``cls(**params, **kw)`` computed by ``impl``; inputs x and every parameter."""
    names = list(params)

    def make(rng, dev=_host):
        x = dev(rng.standard_normal(x_shape))
        values = [dev(rng.standard_normal(shape) if name != "var" else rng.uniform(0.5, 2, shape))
                  for name, shape in params.items()]
        kernel_check.ensure(get_xp(x))  # a GPU's kernels: self-tested, as the engine does

        def build(vals):
            layer = cls(**dict(zip(names, vals)), **kw)
            layer.trainable = trainable
            return as_impl(impl, layer)

        def f(x, *vals):
            return build(vals or values).forward(x)[0]

        def vjp(d, x, *vals):
            layer = build(vals or values)
            dx, grads = layer.backward(d, layer.forward(x)[1])
            return [dx] + [grads[name] for name in names if vals]
        return f, vjp, [x] + (values if trainable else [])     # constants: only dx is checked
    return make


def _norm(impl, kind, train=True):
    def make(rng, dev=_host):
        x = dev(rng.standard_normal((3, 4, 5, 6)))
        g, b = dev(rng.standard_normal(4)), dev(rng.standard_normal(4))
        running = {"mean": dev(rng.standard_normal(4)), "var": dev(rng.uniform(0.5, 2, 4))}
        kernel_check.ensure(get_xp(x))

        def build(g, b):
            return as_impl(impl, tl.Norm(g, b, kind, running=dict(running), train=train))

        def vjp(d, x, g, b):
            layer = build(g, b)
            dx, grads = layer.backward(d, layer.forward(x)[1])
            return dx, grads["gamma"], grads["beta"]
        return (lambda x, g, b: build(g, b).forward(x)[0]), vjp, [x, g, b]
    return make


def _conditional_norm(impl, mix):
    """Conditional instance norm (N4)-(N5): three styles' (gamma, beta), mixed by
    constant weights."""
    def make(rng, dev=_host):
        x = dev(rng.standard_normal((2, 4, 5, 6)))
        g, b = dev(rng.standard_normal((3, 4))), dev(rng.standard_normal((3, 4)))
        w = dev(np.array(mix, dtype=np.float64))
        kernel_check.ensure(get_xp(x))

        def build(g, b):
            return as_impl(impl, tl.ConditionalNorm(g, b, w, "instance"))

        def vjp(d, x, g, b):
            layer = build(g, b)
            dx, grads = layer.backward(d, layer.forward(x)[1])
            return dx, grads["gamma"], grads["beta"]
        return (lambda x, g, b: build(g, b).forward(x)[0]), vjp, [x, g, b]
    return make


def _winograd_m4(shape):
    """F(4x4, 3x3): a fast-path kernel the engine does not pick today
    (issue: wide layers), kept checked."""
    def make(rng, dev=_host):
        x = dev(rng.standard_normal(shape))
        w = dev(rng.standard_normal((3, shape[1], 3, 3)))
        b = dev(rng.standard_normal(3))
        fwd = lambda x, w, b: winograd.winograd_conv3x3_forward(  # noqa: E731
            x, w, b, winograd.transform_kernel(w, 4))
        vjp = lambda d, x, w, b: winograd.winograd_conv3x3_backward(  # noqa: E731
            d, fwd(x, w, b)[1])
        return (lambda x, w, b: fwd(x, w, b)[0]), vjp, [x, w, b]
    return make


def _loss(module, name, shape, extra=(), **kw):
    """A scalar (loss, grad) function of ``module`` (numstyle.losses or a drop-in): the VJP of a
    scalar is dout * grad."""
    def make(rng, dev=_host):
        others = [dev(rng.standard_normal(s)) for s in extra]
        fn = lambda x: getattr(module, name)(x, *others, **kw)  # noqa: E731
        kernel_check.ensure(get_xp(others[0] if others else dev(np.zeros(1))))
        return ((lambda x: fn(x)[0]), (lambda d, x: (d * fn(x)[1],)),
                [dev(rng.standard_normal(shape))])
    return make


def _gram(module):
    def make(rng, dev=_host):
        F = dev(rng.standard_normal((2, 4, 3, 5)))
        f = lambda F: module.gram_forward(F)[0]  # noqa: E731
        vjp = lambda d, F: (  # noqa: E731
            module.gram_backward(d, module.gram_forward(F)[1]).reshape(F.shape),)
        # dout is (2, 4, 4) random: non-symmetric, so the (dG + dG^T) F form is tested
        return f, vjp, [F]
    return make


def _tiny_vgg(model, pool_kind, taps, reference):
    def make(rng, dev=_host):
        params = {k: (dev(w.astype(np.float64)), dev(b.astype(np.float64)))
                  for k, (w, b) in vgg.random_params(model, width=TINY_WIDTH, seed=3).items()}
        with engine_mode(reference):
            net = vgg.VGG(params, model, pool_kind, taps)
        x = dev(rng.standard_normal((1, 3, 16, 16)))

        def f(x):
            feats, _ = net.forward(x, taps)
            return get_xp(x).concatenate([feats[n].ravel() for n in taps])

        def vjp(d, x):
            feats, cache = net.forward(x, taps)
            dfeats, i = {}, 0
            for n in taps:
                dfeats[n] = d[i:i + feats[n].size].reshape(feats[n].shape).copy()   # consumed
                i += feats[n].size
            return (net.backward(dfeats, cache),)
        return f, vjp, [x]
    return make


def _perceptual(pool_kind, phase_of_error, reference):
    """Johnson's training loss (J6) on a batch, RGB 0..255 in: VGG's preprocessing (I1), the
    feature (J3) and style (J5) losses on shared taps, (TV1) and the phase penalty (PH1)/(PH3)."""
    def make(rng, dev=_host):
        params = {k: (dev(w.astype(np.float64)), dev(b.astype(np.float64)))
                  for k, (w, b) in vgg.random_params("vgg16", width=TINY_WIDTH, seed=7).items()}
        style = dev(rng.uniform(0, 255, (1, 3, 12, 12)))
        photos = dev(rng.uniform(0, 255, (2, 3, 8, 8)))
        with engine_mode(reference):
            loss = PerceptualLoss(params, style, "relu2_2", ["relu1_2", "relu2_2", "relu3_3"],
                                  content_weight=0.7, style_weight=3e-2, tv_weight=1e-2,
                                  pool=pool_kind, phase_weight=5.0, phase_of_error=phase_of_error)
        f = lambda y: loss(y, photos)[0]["total"]  # noqa: E731
        vjp = lambda d, y: (d * loss(y, photos)[1],)  # noqa: E731
        return f, vjp, [dev(rng.uniform(0, 255, (2, 3, 8, 8)))]
    return make


def _gatys_objective(pool_kind, tv, reference):
    def make(rng, dev=_host):
        params = {k: (dev(w.astype(np.float64)), dev(b.astype(np.float64)))
                  for k, (w, b) in vgg.random_params("vgg19", width=TINY_WIDTH, seed=5).items()}
        content = dev(rng.standard_normal((1, 3, 16, 16)))
        styles = [dev(rng.standard_normal((1, 3, 24, 20))),
                  dev(rng.standard_normal((1, 3, 16, 16)))]
        with engine_mode(reference):
            obj = gatys.make_objective(params, "vgg19", content=content, styles=styles,
                                       style_blend=[0.3, 0.7], pool=pool_kind,
                                       content_layer="conv4_2",
                                       style_layers=["relu1_1", "conv2_1", "relu3_1", "pool4",
                                                     "conv5_1"],
                                       style_layer_weights=[1, 2, 3, 4, 5], style_weight=10.0,
                                       tv_weight=tv)
        f = lambda x: obj(x)[0]  # noqa: E731
        vjp = lambda d, x: (d * obj(x)[1],)  # noqa: E731
        return f, vjp, [dev(rng.standard_normal((1, 3, 16, 16)))]
    return make


def _transformer(spec, norm_kind, shape, reference, train=True, styles=0, mix=None):
    def make(rng, dev=_host):
        params = {k: dev(v.astype(np.float64) + 0.1 * rng.standard_normal(v.shape))
                  for k, v in transformer.init_params(spec, seed=0, styles=styles).items()}
        keys = sorted(params)
        state = None if train else {
            name: {k: dev(v.astype(np.float64) + (k == "var")) for k, v in stats.items()}
            for name, stats in transformer.init_state(params, norm_kind).items()}

        def forward(x, vals):
            with engine_mode(reference):  # the network is built, layer by layer, at each call
                return transformer.transformer_forward(
                    dict(zip(keys, vals)), x, spec, norm_kind, train=train, state=state,
                    mix=None if mix is None else dev(np.array(mix)))

        def f(x, *vals):
            return forward(x, vals)[0]

        def vjp(d, x, *vals):
            y, cache = forward(x, vals)
            grads, dx = transformer.transformer_backward(d, cache)
            return [dx] + [grads[k] for k in keys]
        return f, vjp, [dev(rng.standard_normal(shape))] + [params[k] for k in keys]
    return make


# -- the table ------------------------------------------------------------------------------------

LAYER_CASES = [
    # (name, reference class, parameter shapes, input shape, tolerance, constructor keywords)
    ("conv stride1 pad1", layers.Conv2d, {"w": (4, 3, 3, 3), "b": (4,)}, (2, 3, 7, 6), SMOOTH,
     dict(stride=1, pad=1)),
    ("conv stride2 pad1", layers.Conv2d, {"w": (4, 3, 3, 3), "b": (4,)}, (2, 3, 7, 6), SMOOTH,
     dict(stride=2, pad=1)),
    ("conv stride1 pad0 5x5", layers.Conv2d, {"w": (4, 2, 5, 5), "b": (4,)}, (1, 2, 8, 9), SMOOTH,
     dict(pad=0)),
    ("conv stride2 pad0", layers.Conv2d, {"w": (4, 3, 3, 3), "b": (4,)}, (2, 3, 7, 6), SMOOTH,
     dict(stride=2)),
    ("conv 9x9 few outputs", layers.Conv2d, {"w": (4, 9, 9, 9), "b": (4,)}, (2, 9, 6, 7), SMOOTH,
     dict(pad=4)),
    ("conv 3x3 even size", layers.Conv2d, {"w": (3, 3, 3, 3), "b": (3,)}, (2, 3, 6, 8), SMOOTH,
     dict(pad=1)),
    ("conv 3x3 odd size", layers.Conv2d, {"w": (3, 2, 3, 3), "b": (3,)}, (1, 2, 5, 7), SMOOTH,
     dict(pad=1)),
    ("conv 3x3 valid (pad 0) odd size", layers.Conv2d, {"w": (3, 3, 3, 3), "b": (3,)}, (2, 3, 7, 8),
     SMOOTH, dict(pad=0)),
    ("relu", layers.ReLU, {}, (2, 3, 7, 5), KINKED, {}),
    ("avg pool 2x2 (odd size)", layers.AvgPool2d, {}, (2, 3, 7, 5), SMOOTH, {}),
    ("max pool 2x2 (odd size)", layers.MaxPool2d, {}, (2, 3, 7, 5), KINKED, {}),
    ("transposed conv stride 1/2", tl.ConvTranspose2d, {"w": (4, 3, 3, 3)}, (2, 4, 4, 5), SMOOTH,
     dict(stride=2, pad=1, output_padding=1)),
    ("transposed conv stride 1", tl.ConvTranspose2d, {"w": (4, 3, 3, 3)}, (2, 4, 4, 5), SMOOTH,
     dict(stride=1, pad=1, output_padding=0)),
    ("reflection pad 1", tl.ReflectionPad2d, {}, (2, 3, 7, 5), SMOOTH, dict(p=1)),
    ("reflection pad 4", tl.ReflectionPad2d, {}, (1, 2, 6, 5), SMOOTH, dict(p=4)),
    ("nearest up-sampling x2", tl.Upsample, {}, (2, 3, 7, 5), SMOOTH, {}),
    ("nearest up-sampling x3", tl.Upsample, {}, (1, 2, 3, 4), SMOOTH, dict(s=3)),
    ("resize-convolution (U1), (RP1), (CV1)", tl.UpsampleConv, {"w": (3, 3, 3, 3)}, (2, 3, 4, 5),
     SMOOTH, {}),
    ("resize-convolution, one row", tl.UpsampleConv, {"w": (3, 2, 3, 3)}, (1, 2, 1, 3), SMOOTH, {}),
    ("scaled tanh (J1)", tl.ScaledTanh, {}, (2, 3, 7, 5), SMOOTH, {}),
    ("crop", tl.Crop, {}, (2, 3, 7, 5), SMOOTH, dict(H=5, W=4)),
]
CONSTANT_WEIGHTS = [   # as VGG's: no weight gradient, so the fast paths for constant kernels apply
    ("conv 3x3 constant weights", layers.Conv2d, {"w": (3, 4, 3, 3), "b": (3,)}, (1, 4, 7, 6),
     SMOOTH, dict(pad=1)),
]
NORM_CASES = [("instance norm", "instance", True), ("batch norm (batch statistics)", "batch", True),
              ("batch norm (running averages)", "batch", False)]
LOSS_CASES = [
    # (name, function, input shape, other inputs' shapes, keywords)
    ("content loss", "content_loss", (1, 3, 4, 5), [(1, 3, 4, 5)], {}),
    ("style layer loss (S3)-(S5)", "style_layer_loss", (1, 4, 3, 5), [(1, 4, 4)], {}),
    ("total variation", "tv_loss", (2, 3, 5, 4), [], {}),
    ("phase penalty (PH1), (PH2)", "phase_loss", (2, 3, 8, 4), [], {}),
    ("phase penalty, period 2", "phase_loss", (1, 2, 4, 6), [], dict(period=2)),
    ("phase penalty, ragged sides", "phase_loss", (1, 2, 9, 6), [], {}),
    ("block means (LR1), (LR2)", "block_mean_loss", (2, 3, 8, 4), [(2, 3, 8, 4)], {}),
    ("block means, size 2, ragged sides", "block_mean_loss", (1, 2, 5, 7), [(1, 2, 5, 7)],
     dict(size=2)),
    ("johnson feature loss", "feature_loss", (2, 3, 4, 5), [(2, 3, 4, 5)], dict(weight=0.7)),
    ("johnson style loss", "style_loss_johnson", (2, 3, 4, 5), [(1, 3, 3)], dict(weight=3.0)),
]
LOSS_MODULES = {"reference": losses, "fast": fast_losses, "loops": naive}


def _name(impl):
    return impl.__name__.rpartition(".")[2]


def _computes(impl, cls, params, kw):
    if not issubclass(impl, StandIn):
        return True
    probe = cls(**{k: np.zeros(s) for k, s in params.items()}, **kw)
    return impl.computes(probe)


CASES = []   # (name, make, tolerance): test_gpu.py runs the same table on CuPy, but for
NUMPY_ONLY = {impl.__name__ for impls in engine.FAST.values() for impl in impls  # compiled paths
              if getattr(impl, "numpy_only", False)}
for name, cls, params, shape, tol, kw in LAYER_CASES + CONSTANT_WEIGHTS:
    for impl in engine.implementations(cls):  # the reference and every fast path that computes it
        if _computes(impl, cls, params, kw):
            trainable = (name, cls, params, shape, tol, kw) not in CONSTANT_WEIGHTS
            CASES.append((f"{name} [{_name(impl)}]",
                          _layer(cls, impl, params, shape, trainable, **kw), tol))
for name, kind, train in NORM_CASES:
    for impl in engine.implementations(tl.Norm):
        CASES.append((f"{name} [{_name(impl)}]", _norm(impl, kind, train), SMOOTH))
for name, mix in [("conditional instance norm, one style", [0.0, 1.0, 0.0]),
                  ("conditional instance norm, a blend", [0.3, 0.0, 0.7])]:
    for impl in engine.implementations(tl.ConditionalNorm):
        CASES.append((f"{name} [{_name(impl)}]", _conditional_norm(impl, mix), SMOOTH))
CASES.append(("winograd F(4x4) conv ragged size [fast.winograd]", _winograd_m4((1, 2, 6, 9)),
              SMOOTH))
for label, module in LOSS_MODULES.items():
    CASES.append((f"gram matrix [{label}]", _gram(module), SMOOTH))
    for name, fn, shape, extra, kw in LOSS_CASES:
        CASES.append((f"{name} [{label}]", _loss(module, fn, shape, extra, **kw), SMOOTH))


def _networks(reference):
    label = "reference" if reference else "fast"
    return [
        (f"vgg16 features avg [{label}]",
         _tiny_vgg("vgg16", "avg", ["relu1_2", "conv3_1", "pool3", "conv5_1"], reference), NETWORK),
        (f"vgg19 features max [{label}]",
         _tiny_vgg("vgg19", "max", ["conv1_1", "relu2_2", "relu4_4", "conv5_1"], reference),
         NETWORK),
        (f"gatys objective avg [{label}]", _gatys_objective("avg", 1e-2, reference), NETWORK),
        (f"gatys objective max [{label}]", _gatys_objective("max", 0.0, reference), NETWORK),
        (f"johnson perceptual loss (J6), max pool [{label}]", _perceptual("max", False, reference),
         NETWORK),
        (f"johnson perceptual loss (J6), avg pool, phase of the error [{label}]",
         _perceptual("avg", True, reference), NETWORK),
        (f"style transformer (instance norm, odd size) [{label}]",
         _transformer(transformer.style_spec((2, 3, 4), 2), "instance", (2, 3, 11, 9), reference),
         NETWORK),
        (f"style transformer (batch norm) [{label}]",
         _transformer(transformer.style_spec((2, 3, 4), 1), "batch", (2, 3, 8, 8), reference),
         NETWORK),
        # Nearest up-sampling with a norm in training mode after it would give every residual
        # block's second beta a gradient of exactly 0 (a per-channel constant goes down the skips,
        # stays constant through each later branch's reflection-padded conv, (U1) and u1's conv,
        # and the norms after them subtract it), which centred differences only see as round-off:
        # rel_error ~1. Running averages make every parameter count.
        (f"style transformer, nearest up-sampling (odd size) [{label}]",
         _transformer(transformer.style_spec((2, 3, 4), 1, "nearest"), "batch", (2, 3, 9, 10),
                      reference, train=False), NETWORK),
        (f"conditional style transformer, 2 styles blended (odd size) [{label}]",
         _transformer(transformer.style_spec((2, 3, 4), 1), "instance", (2, 3, 11, 9), reference,
                      styles=2, mix=[0.25, 0.75]), NETWORK),
        (f"super-resolution x4 network [{label}]",
         _transformer(transformer.sr_spec(4, 3, 1), "instance", (2, 3, 6, 5), reference), NETWORK),
        (f"super-resolution x2 network, nearest up-sampling [{label}]",
         _transformer(transformer.sr_spec(2, 3, 1, "nearest"), "batch", (2, 3, 5, 6), reference,
                      train=False),
         NETWORK),
    ]


# Whole networks: finite differences on the reference engine (the book); the fast engine is held to
# it by test_fast_networks_equal_the_reference (one evaluation each, to round-off).
REFERENCE_NETWORKS, FAST_NETWORKS = _networks(True), _networks(False)
GRADIENT_CASES = CASES + REFERENCE_NETWORKS
CASES = GRADIENT_CASES + FAST_NETWORKS


@pytest.mark.parametrize("name,make,tol", GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
def test_gradient(name, make, tol):
    # the same data for every implementation
    rng = np.random.default_rng(zlib.crc32(name.rpartition(" [")[0].encode()))
    f, vjp, inputs = make(rng)
    errors = check_vjp(f, vjp, inputs, seed=1)
    for k, err in enumerate(errors):
        assert err is not None and err < tol, (
            f"{name}: input {k} rel_error {err:.2e} exceeds {tol:.0e} -- the analytic backward "
            f"disagrees with centred differences")


def test_every_registered_fast_path_is_in_the_table():
    """A fast path added to the engine is checked here without anyone listing it."""
    checked = {c[0].rpartition("[")[2].rstrip("]") for c in CASES}
    for reference, fast_paths in engine.FAST.items():
        for impl in fast_paths:
            assert impl.__name__ in checked, \
                f"{impl.__name__} (for {reference.__name__}) has no case"
        assert reference.__name__ in checked, f"{reference.__name__} has no case"


def outputs(make, seed, dev=_host):
    """Forward output and VJP of one case for a fixed upstream gradient, on the host."""
    from numstyle.backend import to_host

    rng = np.random.default_rng(seed)
    f, vjp, inputs = make(rng, dev)
    y = f(*inputs)
    dout = dev(np.random.default_rng(seed + 1).standard_normal(getattr(y, "shape", ())))
    return to_host(y), [None if g is None else to_host(g) for g in vjp(dout, *inputs)]


@pytest.mark.parametrize("reference,fast", list(zip(REFERENCE_NETWORKS, FAST_NETWORKS)),
                         ids=[c[0].rpartition(" [")[0] for c in FAST_NETWORKS])
def test_fast_networks_equal_the_reference(reference, fast):
    """Each network with every registered fast path in it gives the reference engine's output and
    gradients (float64: the same math, summed in another order -- Winograd's transforms, bands)."""
    seed = zlib.crc32(fast[0].encode())
    (y_ref, g_ref), (y_fast, g_fast) = outputs(reference[1], seed), outputs(fast[1], seed)
    assert rel_error(y_fast, y_ref, floor=1e-6) < 1e-9, \
        f"{fast[0]}: forward differs from the reference"
    for k, (a, b) in enumerate(zip(g_fast, g_ref)):
        assert rel_error(a, b, floor=1e-6) < 1e-9, \
            f"{fast[0]}: gradient {k} differs from the reference"
