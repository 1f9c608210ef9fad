"""numstyle: neural style transfer from scratch on NumPy (CPU) and CuPy (GPU).

Reading order for a newcomer: ``examples/gatys.py`` -> :mod:`numstyle.cli` ->
:mod:`numstyle.gatys` -> :mod:`numstyle.losses` -> :mod:`numstyle.vgg` ->
:mod:`numstyle.ops.conv` -> :mod:`numstyle.ops.im2col`.
"""
from . import gradcheck  # noqa: F401  (public: numstyle.gradcheck)

__version__ = "0.1.0"
