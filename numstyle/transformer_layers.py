r"""The layers of Johnson et al.'s image transformation networks, in textbook form.

Same contract as :mod:`numstyle.layers`: ``forward(x) -> (y, cache)``,
``backward(dy, cache) -> (dx, grads)``. Fast versions: :mod:`numstyle.fast`;
loops: :mod:`numstyle.naive`.

Notes
-----
**Reflection padding** by ``p`` mirrors the image about its edge pixels without
repeating them; padded index :math:`i \in [-p, H + p)` reads :math:`x_{r(i)}`, and
the backward adds each padded pixel's gradient back to its source:

.. math::  r(i) = |i| \ \text{for}\ i < 0, \qquad
           r(i) = 2(H - 1) - i \ \text{for}\ i \ge H                                    \tag{RP1}
.. math::  dx_j = \sum_{i:\ r(i) = j} dy_i                                              \tag{RP2}

**Normalisation** over the :math:`m` values of a group -- a channel of the batch
(batch norm) or of one image (instance norm, Ulyanov et al.):

.. math::  \mu = \tfrac1m \textstyle\sum x, \quad \sigma^2 = \tfrac1m \sum (x - \mu)^2, \quad
           \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \quad
           y = \gamma \hat x + \beta                                                    \tag{N1}
.. math::  dx = \frac{1}{\sqrt{\sigma^2 + \epsilon}} \Big( d\hat x - \overline{d\hat x}
           - \hat x\, \overline{d\hat x \odot \hat x} \Big), \qquad
           d\hat x = \gamma\, dy                                                        \tag{N2}
.. math::  d\gamma = \textstyle\sum dy \odot \hat x, \qquad d\beta = \sum dy            \tag{N3}

(the bar: the mean over the group). Batch norm at inference uses running
averages of :math:`\mu, \sigma^2` as constants:
:math:`dx = \gamma\, dy / \sqrt{\sigma^2 + \epsilon}`.

**Conditional instance normalisation** (Dumoulin et al. 2017) keeps one
:math:`(\gamma_s, \beta_s)` per style :math:`s`; the styles' weights :math:`w`
(one-hot: one style; a blend otherwise) mix them into one (N1) layer, so the
backward is (N2)-(N3) and each style receives its share:

.. math::  \gamma = \textstyle\sum_s w_s \gamma_s, \qquad \beta = \sum_s w_s \beta_s   \tag{N4}
.. math::  d\gamma_s = w_s\, d\gamma, \qquad d\beta_s = w_s\, d\beta                    \tag{N5}

**Transposed convolution** ("stride 1/s") is the adjoint of the convolution
:math:`K` with the same kernel, so its forward is that convolution's input
gradient (CV2) and its backward is the convolution itself, with the weight
gradient's roles of input and upstream gradient swapped:

.. math::  y = K^\top x, \qquad \langle K u, v \rangle = \langle u, K^\top v \rangle    \tag{T1}
.. math::  dx = K\, dy, \qquad
           dW_{\mathrm{row}} = \sum_n x[n]\, \mathrm{im2col}(dy)[n]^\top                \tag{T2}

**Nearest-neighbour up-sampling** by ``s`` copies each pixel into an s x s block;
its adjoint sums each block:

.. math::  y_{n,c,i,j} = x_{n,c,\lfloor i/s\rfloor,\lfloor j/s\rfloor}                  \tag{U1}
.. math::  dx_{n,c,a,b} = \textstyle\sum_{p,q < s} dy_{n,c,\,sa+p,\,sb+q}               \tag{U2}

**The output** (a scaled tanh) maps any value into 0..255:

.. math::  \hat y = 127.5\, (\tanh(z) + 1), \qquad
           dz = 127.5\, d\hat y\, (1 - \tanh^2 z)                                       \tag{J1}
"""
from .backend import get_xp
from .errors import ImageError
from .layers import Conv2d, Layer, Sequential, conv2d_input_grad, conv2d_weight_grad


class ReflectionPad2d(Layer):
    """Pad H and W by ``p`` mirrored pixels (RP1)-(RP2): (N, C, H, W) -> (N, C, H + 2p, W + 2p);
    needs p < H and p < W."""

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        H, W = x.shape[2:]
        if self.p >= H or self.p >= W:
            raise ImageError(
                f"image too small for the network: reflection padding by {self.p} needs "
                f"more than {self.p} px on each side at this layer, got {W}x{H}")
        p = self.p
        return get_xp(x).pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect"), x.shape   # (RP1)

    def backward(self, dy, cache):
        (N, C, H, W), p = cache, self.p
        d = dy[:, :, :, p:p + W].copy()  # (N, C, H + 2p, W): centre columns
        for i in range(1, p + 1):  # (RP2): each mirrored column back
            d[:, :, :, i] += dy[:, :, :, p - i]  #   left: padded -i reads column i
            d[:, :, :, W - 1 - i] += dy[:, :, :, p + W - 1 + i]  #   right: W-1+i reads W-1-i
        dx = d[:, :, p:p + H].copy()  # (N, C, H, W): centre rows
        for i in range(1, p + 1):  # (RP2): then each mirrored row
            dx[:, :, i] += d[:, :, p - i]
            dx[:, :, H - 1 - i] += d[:, :, p + H - 1 + i]
        return dx, {}


class Norm(Layer):
    """Instance or batch normalisation (N1)-(N3), learnt scale ``gamma`` and shift ``beta`` (C,).

    Parameters
    ----------
    gamma, beta : ndarray, shape (C,)
        Scale and shift after the normalisation (N1).
    kind : {'instance', 'batch'}
        The statistics of each image's channel (instance) or of each channel over the batch.
    running : dict, optional
        Batch norm: ``{'mean': (C,), 'var': (C,)}``, updated in place when
        ``train``, used as constants otherwise. Instance norm of one image:
        receives this image's statistics (tiled stylising reuses them).
    train : bool
        Batch norm: the batch's statistics (True) or the running ones.
    eps : float
        Added to the variance under the square root (N1).
    momentum : float
        Batch norm's running averages: ``r <- (1 - momentum) r + momentum * batch's``.

    ``forward``: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, gamma, beta, kind="instance", running=None, train=True, eps=1e-5,
                 momentum=0.1):
        self.gamma, self.beta, self.kind, self.running = gamma, beta, kind, running
        self.train, self.eps, self.momentum = train, eps, momentum
        self.axes = (0, 2, 3) if kind == "batch" else (2, 3)                # the axes of one group

    def frozen(self):
        """True when the statistics are constants: batch norm at inference."""
        return self.kind == "batch" and not self.train

    def forward(self, x):
        C = x.shape[1]
        if self.frozen():
            mu = self.running["mean"].reshape(1, C, 1, 1)                   # (1, C, 1, 1)
            var = self.running["var"].reshape(1, C, 1, 1)                   # (1, C, 1, 1)
        else:
            mu = x.mean(axis=self.axes, keepdims=True)  # (1|N, C, 1, 1)      (N1)
            var = ((x - mu)**2).mean(axis=self.axes, keepdims=True)  # biased: 1/m         (N1)
            self.record(mu, var, x.size // var.size)
        inv_std = 1.0 / get_xp(x).sqrt(var + self.eps)                      # (1|N, C, 1, 1)
        xhat = (x - mu) * inv_std                                           # (N1)
        gamma, beta = self.gamma.reshape(1, C, 1, 1), self.beta.reshape(1, C, 1, 1)  # (1, C, 1, 1)
        y = gamma * xhat + beta                                             # (N1)
        return y, (xhat, inv_std)

    def record(self, mu, var, m):
        """Keep the statistics: batch norm's running averages, instance norm's of one image."""
        if self.running is None:
            return
        C = mu.shape[1]
        if self.kind == "batch":
            r, k = self.running, self.momentum
            r["mean"] = (1 - k) * r["mean"] + k * mu.reshape(C)
            r["var"] = (1 - k) * r["var"] + k * var.reshape(C) * (m / max(m - 1, 1))   # unbiased
        elif mu.shape[0] == 1:
            self.running["mean"], self.running["var"] = mu.reshape(C), var.reshape(C)

    def backward(self, dy, cache):
        xhat, inv_std = cache
        C = dy.shape[1]
        grads = {}
        if self.trainable:
            grads = {"gamma": (dy * xhat).sum(axis=(0, 2, 3)),             # (N3): (C,)
                     "beta": dy.sum(axis=(0, 2, 3))}                        # (N3): (C,)
        dxhat = dy * self.gamma.reshape(1, C, 1, 1)  # gamma (1, C, 1, 1)    (N2)
        if self.frozen():                                                   # constant statistics
            return dxhat * inv_std, grads
        mean_d = dxhat.mean(axis=self.axes, keepdims=True)  # (N2): the two group means
        mean_dx = (dxhat * xhat).mean(axis=self.axes, keepdims=True)
        return inv_std * (dxhat - mean_d - xhat * mean_dx), grads           # (N2)


class ConditionalNorm(Layer):
    """Conditional instance normalisation (N4)-(N5): a :class:`Norm` whose ``gamma``, ``beta`` are
    the mix of one pair per style.

    Parameters
    ----------
    gamma, beta : ndarray, shape (S, C)
        One scale and shift per style.
    mix : ndarray, shape (S,)
        The styles' weights: one-hot picks a style (training), others blend them.
    kind, running, train, eps, momentum
        As :class:`Norm`'s.

    The layer composes: ``self.norm`` is a :class:`Norm` over the mixed (C,) pair (N4), its
    forward and backward are that Norm's (N1)-(N3), and (N5) spreads its (N3) over the styles.
    """

    def __init__(self, gamma, beta, mix, kind="instance", running=None, train=True, eps=1e-5,
                 momentum=0.1):
        self.gamma, self.beta, self.mix = gamma, beta, mix
        self.norm = Norm(mix @ gamma, mix @ beta, kind, running, train, eps, momentum)   # (N4)

    def forward(self, x):
        return self.norm.forward(x)                                         # (N1)

    def backward(self, dy, cache):
        dx, grads = self.norm.backward(dy, cache)                           # (N2), (N3)
        if not self.trainable:
            return dx, {}
        w = self.mix[:, None]                                               # (S, 1)
        return dx, {"gamma": w * grads["gamma"][None],                      # (N5): (S, C)
                    "beta": w * grads["beta"][None]}

    def __call__(self, x):
        return self.norm(x)


class ConvTranspose2d(Layer):
    """Transposed convolution (T1)-(T2): (N, F, H, W) -> (N, C, Ho, Wo).

    ``w`` (F, C, k, k) is laid out as the convolution it transposes;
    ``Ho = (H - 1) stride - 2 pad + k + output_padding``: with k = 3, stride 2,
    pad 1, output_padding 1 the image doubles in size.
    """

    def __init__(self, w, stride=2, pad=1, output_padding=1):
        if not 0 <= output_padding < max(stride, 1):
            raise ValueError(f"output_padding must be in [0, stride), got {output_padding}")
        self.w, self.stride, self.pad, self.output_padding = w, stride, pad, output_padding

    def output_shape(self, x_shape):
        N, _, H, W = x_shape
        F, C, kh, kw = self.w.shape
        s, p, o = self.stride, self.pad, self.output_padding
        return N, C, (H - 1) * s - 2 * p + kh + o, (W - 1) * s - 2 * p + kw + o

    def forward(self, x):
        y_shape = self.output_shape(x.shape)                                # (N, C, Ho, Wo)
        y = conv2d_input_grad(x, self.w, y_shape, self.stride, self.pad)     # K^T x  (T1), (CV2)
        return y, x

    def backward(self, dy, cache):
        x = cache
        dx = None
        if self.input_grad:
            conv = Conv2d(self.w, None, self.stride, self.pad)
            dx = conv.forward(dy)[0]                                        # K dy  (T2), (CV1)
        if not self.trainable:
            return dx, {}
        # (CV3) with the roles of input and output swapped: dy is the convolution's input here
        dw = conv2d_weight_grad(x, dy, self.w.shape, self.stride, self.pad)   # (T2), (CV3)
        return dx, {"w": dw}


class Upsample(Layer):
    """Nearest-neighbour up-sampling by an integer factor ``s`` (U1)-(U2): (N, C, H, W) ->
    (N, C, s H, s W)."""

    def __init__(self, s=2):
        self.s = s

    def forward(self, x):
        xp, s = get_xp(x), self.s
        return xp.repeat(xp.repeat(x, s, axis=2), s, axis=3), x.shape  # (N, C, sH, sW)      (U1)

    def backward(self, dy, cache):
        N, C, H, W = cache
        blocks = dy.reshape(N, C, H, self.s, W, self.s)                     # (N, C, H, s, W, s)
        return blocks.sum(axis=(3, 5)), {}  # (N, C, H, W): block sums       (U2)


class UpsampleConv(Layer):
    """The resize-convolution: up-sample x2 (U1), reflection-pad by 1 (RP1), 3x3 convolution (CV1);
    ``w`` (F, C, 3, 3) as :class:`~numstyle.layers.Conv2d`'s: (N, C, H, W) -> (N, F, 2H, 2W).

    What PyTorch's ``fast_neural_style`` example does instead of a transposed
    convolution (no period-2 checkerboard). Here it is the three layers
    chained; :mod:`numstyle.fast.upsample` computes the same at the small size.
    """

    def __init__(self, w):
        self.w = w

    def chain(self):
        conv = Conv2d(self.w)
        conv.trainable, conv.name = self.trainable, None
        return Sequential([Upsample(2), ReflectionPad2d(1), conv])

    def forward(self, x):
        chain = self.chain()
        y, cache = chain.forward(x)
        return y, (chain, cache)

    def backward(self, dy, cache):
        chain, caches = cache
        return chain.backward(dy, caches)                                   # grads: {'w': dw}


class ScaledTanh(Layer):
    """The network's output (J1), (R2): 127.5 (tanh(z) + 1), in 0..255; any shape, kept."""

    def forward(self, x):
        t = get_xp(x).tanh(x)
        return 127.5 * (t + 1.0), t                                         # (J1)

    def backward(self, dy, cache):
        t = cache
        return 127.5 * dy * (1 - t * t), {}                                 # (J1), (R2)


class Crop(Layer):
    """Keep the top-left (H, W) of the image: (N, C, H', W') -> (N, C, H, W); the backward, its
    adjoint, gives the cropped pixels a zero gradient."""

    def __init__(self, H, W):
        self.H, self.W = H, W

    def forward(self, x):
        return x[:, :, :self.H, :self.W], x.shape

    def backward(self, dy, cache):
        dx = get_xp(dy).zeros(cache, dtype=dy.dtype)                       # (N, C, H', W')
        dx[:, :, :self.H, :self.W] = dy  # the adjoint of a crop: zeros around the kept part
        return dx, {}
