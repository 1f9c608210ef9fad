"""``numstyle export``: a trained network as an ONNX file, for onnxruntime, browsers and phones;
or one style of a network of several as a plain numstyle model file (``--h5``).

The graph builder is :mod:`numstyle.onnx_export`, which imports the ``onnx`` package (the
``export`` extra, ~1.3 s to import). It is loaded by name when this command runs, so that every
other command starts without it and works without it installed.
"""
import importlib

from .. import models, styles
from ..errors import NumstyleError
from ..files import check_extension, check_outputs
from ..models import shipped_models
from .args import HelpFormatter
from .report import add_json_argument, reported

BUILDER = "numstyle.onnx_export"


def add_parser(sub):
    p = sub.add_parser(
        "export", help="write a trained network as an ONNX file",
        description="Write a style or super-resolution network as ONNX: one input 'input' and one "
        "output 'output', float32 (N, 3, H, W) RGB in 0..255, any height and width. Needs the "
        "export extra (pip install -e '.[export]').", formatter_class=HelpFormatter)
    p.add_argument("model", metavar="MODEL",
                   help="model file, or a shipped model's name "
                   f"({', '.join(shipped_models())})")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--onnx", metavar="OUT.onnx", help="the ONNX file to write")
    out.add_argument("--h5", metavar="OUT.h5",
                     help="write the style (or blend) of --style as a numstyle model file of one "
                          "style instead (no onnx needed): what numstyle stylize --model takes")
    p.add_argument("--half", action="store_true",
                   help="--h5: store the parameters as float16 (any network: a model of one "
                        "style or a super-resolution one is halved as it is)")
    p.add_argument("--style", metavar="I|NAME|I:w,J:w",
                   help="a network of several styles: the style (index or name) or blend to "
                        "export (default: its first); see numstyle models")
    add_json_argument(p, "the file written as one JSON object (out, nodes, opset, scale), then a "
                         "summary,")
    p.set_defaults(run=run_export)
    return p


def builder():
    """:mod:`numstyle.onnx_export`, or a one-line error when the ``onnx`` package is missing."""
    try:
        return importlib.import_module(BUILDER)
    except ModuleNotFoundError as e:
        if e.name != "onnx" and not (e.name or "").startswith("onnx."):
            raise
        raise NumstyleError("ONNX export needs the onnx package: pip install -e '.[export]' "
                            "(or pip install onnx)") from None


@reported
def run_export(args):
    if args.h5:
        return run_export_h5(args)
    if args.half:
        raise NumstyleError("--half is for --h5: an ONNX file holds float32")
    check_extension(args.onnx, "--onnx", ".onnx")
    build = builder()
    path = models.resolve_model_path(args.model)
    check_outputs([args.onnx], [path])
    params, config, state = models.load_model(path)
    model = build.to_onnx(params, config, state, style=args.style)
    build.save_onnx(args.onnx, model)
    scale = build.output_scale(config)
    size = "(N, 3, H, W)" if scale == 1 else f"(N, 3, {scale}H, {scale}W)"
    print(f"wrote {args.onnx}: input 'input' float32 (N, 3, H, W) RGB 0..255 -> output 'output' "
          f"float32 {size} RGB 0..255 ({len(model.graph.node)} nodes, opset {build.OPSET})")
    return [{"out": args.onnx, "model": path, "nodes": len(model.graph.node),
             "opset": build.OPSET, "scale": scale}]


def run_export_h5(args):
    """``--h5``: the plain network of one style or blend (N4), as a model file; with ``--half``
    also any network of one style, or a super-resolution one, as float16."""
    check_extension(args.h5, "--h5", ".h5")
    path = models.resolve_model_path(args.model)
    check_outputs([args.h5], [path])
    params, config, state = models.load_model(path)
    if styles.count(config):
        params, config = styles.plain_network(params, config, args.style)
        what = f"the style {config['style']} of {path}"
    elif args.style:
        raise NumstyleError(f"--style {args.style}: {path} is a network of one style or a "
                            "super-resolution network, with no styles to choose from")
    elif args.half:
        what = f"{path} as float16"
    else:
        raise NumstyleError(f"{path} is already a network of one style (or super-resolution): "
                            "copy the file instead, or add --half to store it as float16")
    models.save_model(args.h5, params, config, state, half=args.half)
    print(f"wrote {args.h5}: {what}")
    return [{"out": args.h5, "model": path, "style": config.get("style")}]
