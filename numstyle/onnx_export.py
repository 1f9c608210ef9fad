r"""A trained network as an ONNX graph, built from the network's own layer list.

The graph has one input and one output, as PyTorch's ``fast_neural_style`` example exports:

- ``input``: float32 (N, 3, H, W), RGB in 0..255, any N, H and W (dynamic axes);
- ``output``: float32 (N, 3, H', W'), RGB in 0..255; ``H' = H`` for a style network,
  ``scale * H`` for super-resolution.

:func:`to_onnx` builds the network as :func:`numstyle.transformer.build` does for stylising
(inference, the reference engine's layers: the fast paths are the same functions computed
otherwise), then writes each layer as ONNX nodes with one function per layer class
(``EXPORTERS``); containers (``Sequential``, ``Residual``) recurse. Around the layers: the input
scaling :func:`numstyle.transformer.to_input`, the crop to the output size for sizes that are
not multiples of 4, and for super-resolution the bicubic skip (SR2) -- ONNX's cubic ``Resize``
with Pillow's kernel (a = -1/2), half-pixel centres and the kernel renormalised at the borders,
which is how Pillow enlarges. The output is clipped to 0..255, as ``stylize`` and ``upscale``
clip before writing.

This module imports ``onnx`` (the ``export`` extra); only ``numstyle export`` imports it.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import settings, styles
from .errors import NumstyleError
from .files import atomic_path
from .layers import Conv2d, ReLU, Residual, Sequential
from .models import spec_from_config
from .transformer import build
from .transformer_layers import (ConvTranspose2d, Norm, ReflectionPad2d, ScaledTanh, Upsample,
                                 UpsampleConv)

OPSET = 17            # ONNX operator set: onnxruntime 1.14 and later, PyTorch's default export
INPUT, OUTPUT = "input", "output"


class Graph:
    """The nodes and constants of the graph being built, with a fresh name for each value.

    """

    def __init__(self):
        self.nodes, self.initializers, self.names = [], [], set()

    def fresh(self, hint):
        """A value name not used yet: ``hint``, ``hint_2``, ..."""
        name, n = hint, 1
        while name in self.names:
            n += 1
            name = f"{hint}_{n}"
        self.names.add(name)
        return name

    def constant(self, hint, array, dtype=np.float32):
        """A constant tensor (an initializer); returns its name."""
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def node(self, op, inputs, hint, **attributes):
        """One node of ``op`` on ``inputs`` (value names; '' for an omitted optional input);
        returns the name of its output."""
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attributes))
        return out


def label(layer, kind):
    """The layer's parameter name (``r1.1``) followed by ``kind``, for readable node names."""
    return f"{layer.name}.{kind}" if layer.name else kind


def export_conv(g, layer, x):
    """:class:`~numstyle.layers.Conv2d` (CV1): ONNX ``Conv``, zero padding ``pad``."""
    inputs = [x, g.constant(label(layer, "w"), layer.w)]
    if layer.b is not None:
        inputs.append(g.constant(label(layer, "b"), layer.b))
    kh, kw = layer.w.shape[2:]
    return g.node("Conv", inputs, label(layer, "conv"), kernel_shape=[kh, kw],
                  strides=[layer.stride] * 2, pads=[layer.pad] * 4)


def export_relu(g, layer, x):
    """:class:`~numstyle.layers.ReLU` (R1)."""
    return g.node("Relu", [x], "relu")


def export_pad(g, layer, x):
    """:class:`~numstyle.transformer_layers.ReflectionPad2d` (RP1): ONNX ``Pad`` in reflect mode
    (mirrors about the edge pixel, as NumPy's ``reflect``)."""
    p = layer.p
    pads = g.constant("pads", [0, 0, p, p, 0, 0, p, p], np.int64)      # begins, then ends
    return g.node("Pad", [x, pads], "pad", mode="reflect")


def export_norm(g, layer, x):
    """:class:`~numstyle.transformer_layers.Norm` (N1): ``InstanceNormalization``, or batch norm's
    running statistics as ``BatchNormalization`` (inference).

    A network of several styles arrives here as the plain network of one style or blend
    (:func:`to_onnx`), so its norms are these.
    """
    gamma = g.constant(label(layer, "gamma"), layer.gamma)
    beta = g.constant(label(layer, "beta"), layer.beta)
    if layer.kind == "instance":
        return g.node("InstanceNormalization", [x, gamma, beta], label(layer, "norm"),
                      epsilon=layer.eps)
    if not layer.frozen() or layer.running is None:
        raise NumstyleError(f"batch norm layer {layer.name} has no running statistics to export")
    mean = g.constant(label(layer, "mean"), layer.running["mean"])
    var = g.constant(label(layer, "var"), layer.running["var"])
    return g.node("BatchNormalization", [x, gamma, beta, mean, var], label(layer, "norm"),
                  epsilon=layer.eps)


def export_conv_transpose(g, layer, x):
    """:class:`~numstyle.transformer_layers.ConvTranspose2d` (T1): ONNX ``ConvTranspose``, whose
    weight (C_in, C_out, k, k) is laid out as the convolution it transposes, as numstyle's."""
    kh, kw = layer.w.shape[2:]
    return g.node("ConvTranspose", [x, g.constant(label(layer, "w"), layer.w)],
                  label(layer, "convT"), kernel_shape=[kh, kw], strides=[layer.stride] * 2,
                  pads=[layer.pad] * 4, output_padding=[layer.output_padding] * 2)


def export_upsample(g, layer, x):
    """:class:`~numstyle.transformer_layers.Upsample` (U1): nearest-neighbour ``Resize``, source
    pixel ``floor(i / s)``."""
    scales = g.constant("scales", [1, 1, layer.s, layer.s])
    return g.node("Resize", [x, "", scales], "upsample", mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")


def export_upsample_conv(g, layer, x):
    """:class:`~numstyle.transformer_layers.UpsampleConv`: its own chain (U1), (RP1), (CV1)."""
    chain = layer.chain()
    chain.layers[-1].name = layer.name
    return export_layer(g, chain, x)


def export_scaled_tanh(g, layer, x):
    """:class:`~numstyle.transformer_layers.ScaledTanh` (J1): 127.5 (tanh(z) + 1)."""
    t = g.node("Tanh", [x], "tanh")
    t = g.node("Add", [t, g.constant("one", 1.0)], "tanh_plus_1")
    return g.node("Mul", [t, g.constant("half_range", 127.5)], "rgb")


def export_sequential(g, layer, x):
    """:class:`~numstyle.layers.Sequential`: its layers in order."""
    for inner in layer.layers:
        x = export_layer(g, inner, x)
    return x


def export_residual(g, layer, x):
    """:class:`~numstyle.layers.Residual` (J2): x + branch(x)."""
    return g.node("Add", [x, export_layer(g, layer.branch, x)], "residual")


EXPORTERS = {   # reference layer class -> the function that writes it as ONNX nodes
    Conv2d: export_conv,
    ReLU: export_relu,
    ReflectionPad2d: export_pad,
    Norm: export_norm,
    ConvTranspose2d: export_conv_transpose,
    Upsample: export_upsample,
    UpsampleConv: export_upsample_conv,
    ScaledTanh: export_scaled_tanh,
    Sequential: export_sequential,
    Residual: export_residual,
}


def export_layer(g, layer, x):
    """Write ``layer`` on the value ``x``; returns the output's name."""
    exporter = EXPORTERS.get(type(layer))
    if exporter is None:
        raise NumstyleError(f"cannot export the layer {type(layer).__name__} to ONNX: no "
                            "exporter is registered for it (numstyle.onnx_export.EXPORTERS)")
    return exporter(g, layer, x)


def reference_network(params, config, state=None):
    """The network of ``config`` for inference, built from the reference layers only."""
    before = settings.get().reference
    settings.update(reference=True)
    try:
        return build(params, spec_from_config(config), config["norm"], train=False,
                     state=state or {}, trainable=False)
    finally:
        settings.update(reference=before)


def output_scale(config):
    """How many times larger than the input the output is: the model's scale, 1 for style."""
    return int(config.get("scale", 1)) if config["kind"] == "sr" else 1


def to_onnx(params, config, state=None, style=None):
    """The model (``params, config, state`` as :func:`numstyle.models.load_model` returns them)
    as an ``onnx.ModelProto``, checked by ``onnx.checker``.

    ``style``: for a network of several styles (conditional instance norm, (N4)), which one to
    export -- an index, a name or a blend ``I:w,J:w`` as ``stylize --style`` takes it, default the
    first -- made a plain network by :func:`numstyle.styles.plain_network`; the networks of one
    style take None, and refuse another value.
    """
    params, config = styles.plain_network(params, config, style)
    g = Graph()
    g.names.update([INPUT, OUTPUT])
    params = {k: np.asarray(v, np.float32) for k, v in params.items()}
    net = reference_network(params, config, state)
    x = g.node("Mul", [INPUT, g.constant("in_scale", 1.0 / 127.5)], "in_scaled")   # to_input
    x = g.node("Sub", [x, g.constant("one", 1.0)], "in_centred")
    y = export_layer(g, net, x)
    scale = output_scale(config)
    shape = g.node("Shape", [INPUT], "input_shape")                  # crop: sizes not / 4
    hw = g.node("Slice", [shape, g.constant("two", [2], np.int64),
                          g.constant("four", [4], np.int64)], "input_hw")
    ends = g.node("Mul", [hw, g.constant("out_scale", [scale, scale], np.int64)], "output_hw")
    y = g.node("Slice", [y, g.constant("zeros", [0, 0], np.int64), ends,
                         g.constant("hw_axes", [2, 3], np.int64)], "cropped")
    if config["kind"] == "sr" and config.get("skip", True):          # (SR2): + bicubic - 127.5
        up = g.node("Resize", [INPUT, "", g.constant("sr_scales", [1, 1, scale, scale])],
                    "bicubic", mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1,
                    coordinate_transformation_mode="half_pixel")
        y = g.node("Sub", [y, g.constant("half_range", 127.5)], "residual_rgb")
        y = g.node("Add", [y, up], "sr_rgb")
    g.nodes.append(helper.make_node("Clip", [y, g.constant("lo", 0.0), g.constant("hi", 255.0)],
                                    [OUTPUT], name=OUTPUT))
    dims = ["N", 3, "H", "W"]
    out_dims = ["N", 3, "H_out", "W_out"] if scale > 1 else dims
    graph = helper.make_graph(
        g.nodes, f"numstyle_{config['kind']}", [helper.make_tensor_value_info(
            INPUT, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, out_dims)], g.initializers)
    model = helper.make_model(graph, producer_name="numstyle",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8                               # what onnxruntime 1.14 and later read
    model.doc_string = ("RGB 0..255 (N, 3, H, W) in, RGB 0..255 out: "
                        f"a numstyle {config['kind']} network")
    onnx.checker.check_model(model, full_check=True)
    return model


def save_onnx(path, model):
    """Write the model atomically (a temporary file beside ``path``, then a rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    return path
