"""Every default, once: one configuration object per job.

The Python API takes its keyword defaults from these objects and the
commands build their flags from them, so ``numstyle gatys`` and
``gatys.make_objective`` cannot disagree. Change a default here and both
follow (``tests/test_config.py`` checks that the flags do).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class GatysConfig:
    """Gatys et al.: optimise an image's pixels (:mod:`numstyle.gatys`, ``numstyle gatys``)."""

    size: int = 384                       # longer side of the output (and of the style images), px
    iters: int = 300                      # L-BFGS iterations (or Adam steps)
    model: str = "vgg19"  # the paper's network; vgg16 where only its weights are found
    pool: str = "avg"                     # the paper prefers average pooling
    content_layer: str = "relu4_2"
    style_layers: tuple = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    content_weight: float = 1.0           # alpha
    style_weight: float = 1e3             # beta: alpha / beta = 1e-3, as in the paper
    tv_weight: float = 1e-3               # lambda of (TV1)
    optimizer: str = "lbfgs"              # SciPy's L-BFGS-B ('lbfgs-device' on a GPU)
    lr: float = 10.0                      # Adam's step, pixel units
    maxcor: int = 10                      # L-BFGS's kept correction pairs
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """Johnson et al.: train a style network (:mod:`numstyle.train`, ``numstyle train``)."""

    size: int = 256                       # training crop, px
    batch_size: int = 4
    iters: int = 40000
    lr: float = 1e-3
    content_weight: float = 1.0           # lambda_c of (J6)
    style_weight: float = 2e-4            # lambda_s
    tv_weight: float = 1e-5               # lambda_TV
    phase_weight: float = 1e4             # lambda_P of (PH1): the output's period-4 grid
    #                                       (docs/johnson.md, the phase penalty A/B)
    content_layer: str = "relu2_2"
    style_layers: tuple = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    norm: str = "instance"
    width: tuple = (32, 64, 128)          # channels of the three down-sampling convolutions
    #                                       (WIDTHS below names this one and the slim network's)
    n_res: int = 5                        # residual blocks
    upsample: str = "nearest"             # the shipped networks' (issue 20); or 'transposed',
    #                                       the paper's stride-1/2 convolutions
    checkpoint_every: int = 500
    seed: int = 0


@dataclass(frozen=True)
class SRConfig:
    """Super-resolution: train an upscaling network (:mod:`numstyle.sr`, ``numstyle sr-train``)."""

    scale: int = 4
    loss: str = "pixel"                   # 'pixel' (SR3) or 'feature' (J3)
    size: int = 96                        # high-resolution crop, px
    batch_size: int = 16
    iters: int = 4000
    lr: float = 2e-4                      # Adam's: at 1e-3 the pixel loss's x8 stayed at
    #                                       bicubic, and 2e-4 gains more with either loss
    #                                       (the shipped networks', docs/benchmarks.md)
    blur: float = 1.0                     # Gaussian sigma before downsampling
    tv_weight: float = 1e-5               # with the feature loss
    phase_weight: float = 1e3             # lambda_P of (PH3), with the feature loss (pixel: 0)
    block_weight: float = 100.0           # lambda_B of (LR1), with the feature loss (pixel: 0)
    pixel_weight: float = 0.0             # lambda_X of (SR4): the per-pixel loss beside it
    content_layer: str = "relu2_2"        # the feature loss's VGG16 layer
    pool: str = "max"                     # the feature loss's VGG16 pooling: the paper's
    norm: str = "batch"                   # the paper's
    width: int = 64
    n_res: int = 4
    upsample: str = "nearest"             # both losses: no grid (the pixel network's: 19th session)
    checkpoint_every: int = 500
    seed: int = 0


@dataclass(frozen=True)
class SheetConfig:
    """A contact sheet: a photo stylised by every shipped style network (``numstyle sheet``)."""

    size: int = 256                       # longer side of each tile, px
    columns: int = 4                      # tiles per row


@dataclass(frozen=True)
class PreviewConfig:
    """The live page of a Gatys run (:mod:`numstyle.preview`, ``numstyle gatys --preview``)."""

    port: int = 8765                      # --preview with no value; 0: any free port
    every: float = 1.0                    # seconds between images handed to the page, at most
    poll: float = 0.5                     # seconds between the page's requests
    linger: float = 3.0                   # seconds the final picture waits for an open page


WIDTHS = {   # --width by name: the channels of the style network's three down-sampling convolutions
    "full": (32, 64, 128),   # Johnson et al.'s network
    "slim": (16, 32, 64),    # half width, as jcjohnson's instance-norm models: ~1/4 of the work
}

GATYS, TRAIN, SR, PREVIEW = GatysConfig(), TrainConfig(), SRConfig(), PreviewConfig()
SHEET = SheetConfig()
