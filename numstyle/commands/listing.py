"""``numstyle models``: every network ``--model NAME`` can find, shipped and the user's."""
import json
import os

from .. import models, styles
from ..errors import ModelError, warn
from .args import HelpFormatter


def add_parser(sub):
    p = sub.add_parser(
        "models", help="list the networks --model NAME finds (shipped and yours)",
        description="List every model file in the folders --model NAME searches, in order: "
        "the shipped weights/, $NUMSTYLE_DATA/models, ~/.cache/numstyle/models. A name found "
        "twice is the first one's (the later is marked shadowed).",
        formatter_class=HelpFormatter)
    p.add_argument("--json", action="store_true",
                   help="print one JSON list of objects (name, kind, styles, scale, path, ...), "
                   "the only thing on stdout")
    p.set_defaults(run=run_models, command="models")


def find_models(warn=None):
    """``[{'name', 'kind', 'styles', 'scale', 'width', 'upsample', 'norm', 'path', 'folder',
    'shadowed'}, ...]`` for every model file in :func:`numstyle.models.model_dirs`; files that
    are not readable model files are skipped, each with ``warn(line)``."""
    found, seen = [], set()
    for rank, folder in enumerate(models.model_dirs()):
        if not os.path.isdir(folder):
            continue
        for file in sorted(os.listdir(folder)):
            path = os.path.join(folder, file)
            if not file.endswith(".h5") or file.endswith(".ckpt.h5") or not os.path.isfile(path):
                continue
            try:
                _, config, _ = models.load_model(path)
            except ModelError as e:
                if warn:
                    warn(f"skipped {path}: {e}")
                continue
            name = file[:-3]
            found.append({
                "name": name, "kind": config.get("kind"), "styles": styles.names(config),
                "scale": config.get("scale") if config.get("kind") == "sr" else None,
                "width": config.get("width"), "n_res": config.get("n_res"),
                "upsample": config.get("upsample", models.CONFIG_DEFAULTS["upsample"]),
                "norm": config.get("norm"), "path": path,
                "folder": "shipped" if rank == 0 else "user", "shadowed": name in seen})
            seen.add(name)
    return found


def run_models(args):
    found = find_models(warn)
    if args.json:
        print(json.dumps(found))
        return 0
    if not found:
        print("no models found in " + ", ".join(models.model_dirs()))
        return 0
    for m in found:
        what = (f"x{m['scale']} super-resolution" if m["kind"] == "sr" else
                "style: " + (", ".join(f"{i}:{s}" for i, s in enumerate(m["styles"]))
                             if len(m["styles"]) > 1 else (m["styles"] or ["?"])[0]))
        width = ",".join(map(str, m["width"])) if isinstance(m["width"], list) else m["width"]
        shadowed = " (shadowed by the one above)" if m["shadowed"] else ""
        print(f"{m['name']:<20} {what}; width {width}, {m['upsample']}, {m['folder']}: "
              f"{m['path']}{shadowed}")
    return 0
