"""Every default once: the commands' flags and the Python API take theirs from
numstyle/config.py."""
import inspect

import pytest

from numstyle import gatys, train
from numstyle.cli import build_parser
from numstyle.commands.sr import feature_defaults
from numstyle.errors import NumstyleError
from numstyle.config import GATYS, SR, TRAIN


def _defaults(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {a.dest: a.default for a in sub._actions if a.option_strings}


def _same(a, b):
    return list(a) == list(b) if isinstance(a, (list, tuple)) else a == b


@pytest.mark.parametrize("command,config,skip", [
    # resolved from the weights / device
    ("gatys", GATYS, {"model", "optimizer", "maxcor", "iters"}),
    ("train", TRAIN, set()),
    ("sr-train", SR, {"phase_weight", "block_weight", "pixel_weight", "upsample", "lr", "pool"}),
])
def test_every_flag_default_is_the_configs(command, config, skip):
    flags = _defaults(command)
    checked = 0
    for field in config.__dataclass_fields__:
        if field in skip or field not in flags:
            continue
        assert _same(flags[field], getattr(config, field)), \
            f"{command} --{field}: {flags[field]} vs config"
        checked += 1
    assert checked >= 8, f"only {checked} of {command}'s flags come from the config"


@pytest.mark.parametrize("loss,phase,block,upsample,lr", [
    ("feature", SR.phase_weight, SR.block_weight, SR.upsample, SR.lr),
    ("pixel", 0.0, 0.0, SR.upsample, SR.lr),
])
def test_sr_train_takes_its_loss_terms_and_upsampling_from_the_loss(loss, phase, block, upsample,
                                                                   lr):
    """sr-train: the feature loss's recipe (issue 20) unless given; the pixel loss has neither
    term, and asking for one with it is an error. Both train at the same learning rate."""
    args = build_parser().parse_args(["sr-train", "--data", "d", "--out", "o.h5", "--loss", loss])
    feature_defaults(args)
    assert (args.phase_weight, args.block_weight, args.upsample, args.lr) == (phase, block,
                                                                              upsample, lr)
    args = build_parser().parse_args(["sr-train", "--data", "d", "--out", "o.h5", "--loss", loss,
                                      "--phase-weight", "5", "--upsample", "transposed",
                                      "--lr", "3e-4"])
    if loss == "pixel":
        with pytest.raises(NumstyleError, match="--phase-weight is a term of the feature loss"):
            feature_defaults(args)
    else:
        feature_defaults(args)
        assert (args.phase_weight, args.upsample, args.lr) == (5.0, "transposed", 3e-4)
    other = "avg" if SR.pool == "max" else "max"
    args = build_parser().parse_args(["sr-train", "--data", "d", "--out", "o.h5", "--loss", loss,
                                      "--pool", other])
    if loss == "pixel":
        with pytest.raises(NumstyleError, match="--pool is the feature loss's"):
            feature_defaults(args)
    else:
        feature_defaults(args)
        assert args.pool == other


def test_the_api_takes_the_same_defaults():
    """gatys.make_objective and train.PerceptualLoss once disagreed with their commands (vgg16 and
    TV 0; style 5 and TV 1e-6): now both read config.py."""
    objective = inspect.signature(gatys.make_objective).parameters
    for name in ("model", "pool", "content_layer", "content_weight", "style_weight", "tv_weight"):
        assert objective[name].default == getattr(GATYS, name), name
    assert tuple(objective["style_layers"].default) == GATYS.style_layers
    assert inspect.signature(gatys.optimize).parameters["iters"].default == GATYS.iters
    loss = inspect.signature(train.PerceptualLoss).parameters
    for name in ("content_layer", "content_weight", "style_weight", "tv_weight"):
        assert loss[name].default == getattr(TRAIN, name), name
