"""``numstyle sheet``: one photo stylised by every shipped style network, labelled, on one page."""
import os

from tqdm import tqdm

from .. import models, styles
from ..backend import check_device, to_device
from ..config import SHEET
from ..errors import NumstyleError
from ..files import check_outputs
from ..image import (icc_profile, image_format, image_size, load_image, resized_shape, save_image,
                     to_bit_depth)
from ..sheet import contact_sheet
from ..stylize import stylize_array
from .args import HelpFormatter, add_common_arguments, file_out, positive_int
from .batches import check_finite_output
from .johnson import check_input_size, check_stylize_memory
from .report import add_json_argument, reported


def add_parser(sub):
    d = SHEET
    p = sub.add_parser(
        "sheet", help="a photo stylised by every shipped style network, labelled",
        description="Stylise one photo with every shipped style network and write the results "
        "side by side, the photo first, each labelled with its network's name.",
        formatter_class=HelpFormatter)
    p.add_argument("photo", metavar="PHOTO", help="the photo")
    p.add_argument("--out", metavar="SHEET.png",
                   help="the sheet, or a folder to write <photo>_sheet.png into "
                        "(default: out/<photo>_sheet.png)")
    p.add_argument("--size", type=positive_int, default=d.size,
                   help="longer side of each tile, px")
    p.add_argument("--columns", type=positive_int, default=d.columns, help="tiles per row")
    add_common_arguments(p)
    add_json_argument(p, "the sheet as one JSON object (out, styles), then a summary,")
    p.set_defaults(run=run_sheet)
    return p


def each_style(params, config, shown=()):
    """``[(label suffix, params)]``: a network of one style as it is; a network of several styles
    (conditional norm, (N4)) as the plain network of each of its styles, but those whose style
    image (sha256) is in ``shown``: a network of one style shipped beside it draws that one."""
    names = styles.names(config)
    if not styles.count(config):
        return [("", params)]
    return [(f":{name}", styles.apply_mix(params, config, styles.one_hot(i, len(names)))[0])
            for i, (name, entry) in enumerate(zip(names, config["styles"]))
            if entry.get("sha256") not in shown]


@reported
def run_sheet(args):
    check_device(args.device)
    names = models.shipped_models("style")
    if not names:
        raise NumstyleError(f"no shipped style networks in {models.BUILTIN_DIR}")
    stem = os.path.splitext(os.path.basename(args.photo))[0]
    out = file_out(args.out, os.path.join("out", f"{stem}_sheet.png"))
    image_format(out)
    h, w, _ = image_size(args.photo, "photo")              # a readable image, before the work
    paths = [models.resolve_model_path(name, "style") for name in names]
    check_outputs([out], [args.photo] + paths)
    loaded = [models.load_model(path, expect="style") for path in paths]
    hw = resized_shape((h, w), args.size)
    for _, config, _ in loaded:      # each network takes the photo; the tiles are kept
        spec = models.spec_from_config(config)
        check_input_size(args.photo, [hw], spec)
        check_stylize_memory(args, args.photo, [hw] * (len(loaded) + 1), spec, 1, tiles=False)
    photo = load_image(args.photo, args.size, "photo")     # upright (EXIF), RGB
    tiles, labels = [to_bit_depth(photo)], [stem]
    shown = {config.get("style_sha256") for _, config, _ in loaded if not styles.count(config)}
    for name, path, (params, config, state) in tqdm(list(zip(names, paths, loaded)),
                                                   desc="sheet", unit="network",
                                                   disable=args.no_progress):
        state = {k: {s: to_device(v, args.device) for s, v in st.items()}
                 for k, st in state.items()}
        for suffix, plain in each_style(params, config, shown):
            plain = {k: to_device(v, args.device) for k, v in plain.items()}
            styled = stylize_array(plain, config, state, photo, args.device)
            check_finite_output(styled, path, args.photo)
            tiles.append(to_bit_depth(styled))
            labels.append(name + suffix)
    sheet, _ = contact_sheet(tiles, labels, args.columns)
    save_image(out, sheet, icc_profile(args.photo))
    print(f"wrote {out}: {args.photo} and {len(labels) - 1} styles ({', '.join(labels[1:])})")
    return [{"out": out, "photo": args.photo, "styles": labels[1:]}]
