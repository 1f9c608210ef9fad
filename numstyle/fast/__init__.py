"""The fast paths: the appendix to the reference engine.

Each class here is a drop-in for one reference layer (a subclass with the
same constructor and the same ``forward``/``backward``/``__call__`` contract,
proven equal by ``tests/test_gradcheck.py``), and :mod:`numstyle.fast.losses`
is a drop-in for :mod:`numstyle.losses`. Which one stands in for which is
decided in one place, :mod:`numstyle.engine`.

=====================  ==============================================================
module                 what it speeds up
=====================  ==============================================================
``parallel``           bands of rows on every core; BLAS kept on one thread
``memory``             reused work buffers; a heap that keeps freed blocks
``im2col``, ``conv``   banded im2col and GEMM, and the (CV5)/(CV6) shortcuts
``winograd``           Winograd F(2x2, 3x3) (W1)-(W8) for constant 3x3 kernels
``winograd_numba``     its transforms compiled by Numba, one pass each; F(4x4, 3x3) where it
                       pays; in VGG the ReLU after it too (the optional extra ``numstyle[fast]``)
``activations``        ReLU against a block of zeros; in place at inference; ``Rectified``: a
                       ReLU that the convolution before it has applied
``pool``               pooling by strided slices and an int8 winner
``pool_numba``         2x2 pooling compiled, one pass each way (``numstyle[fast]``)
``norm``, ``pad``,     one-pass statistics, in-place inference, reflection padding
``upsample``           by slices; the resize-convolution at the small size (U3)-(U5)
``norm_numba``         inference normalisation compiled, its ReLU joined (``numstyle[fast]``)
``losses``             banded Gram products; fused loss tails on a GPU
``gpu_kernels``,       fused CUDA kernels (one launch where array code takes many),
``gpu_winograd``,      Winograd's transforms as kernels, and their self-test
``kernel_check``
=====================  ==============================================================
"""


class StandIn:
    """Mixin of every fast layer: how the engine builds it in place of a reference layer."""

    @classmethod
    def computes(cls, layer):
        """Whether this fast path computes what ``layer`` does (e.g. Winograd: 3x3 kernels only)."""
        return True

    @classmethod
    def applies(cls, layer, xp):
        """Whether the engine should use this fast path for ``layer`` on the array module ``xp``
        (:meth:`computes`, and where it is measured to pay)."""
        return cls.computes(layer)

    @classmethod
    def replacing(cls, layer):
        """This fast path with ``layer``'s parameters and settings (name, trainable, input_grad)."""
        fast = object.__new__(cls)
        fast.__dict__.update(vars(layer))
        fast.prepare()
        return fast

    def prepare(self):
        """Precompute what the fast path needs from the parameters (e.g. Winograd's kernels)."""
