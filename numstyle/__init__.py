"""numstyle: neural style transfer from scratch on NumPy (CPU) and CuPy (GPU).

Two layers. The reference engine is the book: ``examples/gatys.py`` ->
:mod:`numstyle.gatys` -> :mod:`numstyle.vgg` -> :mod:`numstyle.layers` (the
convolution and its backward) and :mod:`numstyle.losses`. The fast paths are
its appendix, :mod:`numstyle.fast`, each a drop-in for one reference layer,
chosen in :mod:`numstyle.engine`. ``docs/reading-order.md`` is the map.
"""
from . import gradcheck  # noqa: F401  (public: numstyle.gradcheck)

__version__ = "0.1.0"
