"""Compile CUDA kernels exactly as CuPy would, with no GPU and no driver.

``cupy.ElementwiseKernel(in_params, out_params, body, name, preamble=...)`` compiles nothing when
it is made. At its first call CuPy

1. works out the C type of each argument (``T``, ``CArray<float, ndim, contiguous, 32-bit
   index>`` for an array, a plain ``int`` for a typed scalar) from the arrays it is given,
2. writes the kernel's source: its ``typedef``\\ s, the preamble, ``extern "C" __global__ void
   name(...)`` with a grid-stride loop (``CUPY_FOR``) around the body, and a reference to each
   non-raw array's element for the body to use (``_kernel.pyx``:
   ``_get_elementwise_kernel_code``),
3. prepends its headers (``#include <cupy/carray.cuh>`` ...) and compiles the whole with NVRTC,
   with the options ``compile_with_cache`` adds (``cupy/_core/core.pyx``,
   ``cupy/cuda/compiler.py``), for the device's architecture.

Step 3 is the one that needs a device: CuPy asks the driver for the architecture and loads the
result. Steps 1 and 2 are plain Python and Cython that touch no device, so here they are CuPy's
own code, called with the argument descriptions (``_ArgInfo``) a call would produce, and step 3 is
NVRTC called directly (``cupy_backends.cuda.libs.nvrtc``, the library CuPy itself loads) for a
named virtual architecture (``compute_80``: A100, ``compute_90``: H100). On a GPU, CuPy 14 asks
NVRTC for the real one (``-arch=sm_90``, a cubin); that is the same front end and the same PTX,
plus the step to machine code.

These are CuPy internals (``cupy._core._kernel``), read for CuPy 14: if a later CuPy moves
them, :func:`kernel_source` fails with a message saying so, rather than compiling something else.

Needs ``cupy-cuda12x`` and ``nvidia-cuda-nvrtc-cu12`` (the ``gpucheck`` extra); :func:`missing`
says why not, for a skip.
"""
import numpy as np

# cupy/_core/_kernel.pxd: ``cdef enum _ArgKind`` -- not visible from Python
ARG_KIND_NDARRAY, ARG_KIND_INDEXER, ARG_KIND_SCALAR = 1, 2, 3

ARCHS = ("compute_80", "compute_90")       # the virtual architectures every kernel is compiled for
DTYPES = (np.float32, np.float64)

# How CuPy sees the arguments of one call; each kernel is compiled for both:
# - "contiguous": the usual call. Every array C-contiguous; CuPy reduces the non-raw ones to 1-D
#   (``reduce_dims``); raw arrays keep their dimensions (4: the images); 32-bit indexing.
# - "strided": non-raw arrays 4-D and not contiguous (a broadcast operand such as norm_forward's
#   (N, C, 1, 1) mean, an output that is a view such as col2im's band of rows), raw arrays not
#   contiguous either, 64-bit indexing (arrays past 2**31 elements), and every non-raw ``T`` input
#   after the first given as a Python number (CuPy passes it as a scalar of type T: gram_loss's s
#   and c, normalize's eps, norm_forward's mu = 0).
VARIANTS = {
    "contiguous": dict(ndim=1, raw_ndim=4, contiguous=True, index_32_bits=True, scalars=False),
    "strided": dict(ndim=4, raw_ndim=4, contiguous=False, index_32_bits=False, scalars=True),
}


def missing():
    """Why kernels cannot be compiled here (a reason for ``pytest.skip``), or None if they can."""
    try:
        import cupy  # noqa: F401
        from cupy._core import _kernel  # noqa: F401
    except Exception as e:                     # ImportError, or a CUDA library that fails to load
        return f"needs CuPy (pip install -e '.[gpucheck]'): {type(e).__name__}: {e}"
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as e:
        return f"needs NVRTC 12 (pip install -e '.[gpucheck]'): {type(e).__name__}: {e}"
    return None


def nvrtc_version():
    """NVRTC's ``(major, minor)``."""
    from cupy_backends.cuda.libs import nvrtc

    return nvrtc.getVersion()


def kernel_source(name, in_params, out_params, body, preamble, dtype, variant="contiguous"):
    """The CUDA C++ that CuPy compiles for ``ElementwiseKernel(in_params, out_params, body,
    name, preamble=preamble)`` called on arrays of ``dtype`` as ``VARIANTS[variant]`` describes:
    CuPy's headers, then CuPy's generated kernel.

    Parameters
    ----------
    name : str
        The kernel's name (``numstyle_<key>`` as numstyle names its kernels).
    in_params, out_params, body, preamble : str
        As given to ``cupy.ElementwiseKernel``.
    dtype : numpy dtype
        The type ``T`` stands for.
    variant : str
        A key of :data:`VARIANTS`.

    Returns
    -------
    str
        The translation unit, ready for NVRTC.
    """
    import cupy
    from cupy._core import _carray, _kernel, _scalar

    v = VARIANTS[variant]
    kernel = cupy.ElementwiseKernel(in_params, out_params, body, name, preamble=preamble)
    t = np.dtype(dtype).type
    # The arguments of one call: raw params and ``T`` params are arrays, typed params (int32 H)
    # scalars; with ``scalars``, the non-raw T inputs after the first array are numbers.
    in_arrays, seen = [], False                     # seen: a non-raw array input so far
    for p in kernel.in_params:
        array = p.raw or p.dtype is None
        if array and not p.raw:
            array, seen = not (v["scalars"] and seen), True
        in_arrays.append(array)
    in_types = tuple((p.dtype or t) if a else None for p, a in zip(kernel.in_params, in_arrays))
    out_types = tuple(p.dtype or t for p in kernel.out_params)
    try:
        in_types, out_types, type_map = kernel._decide_params_type(in_types, out_types)
        infos = []
        params = kernel.in_params + kernel.out_params
        arrays = in_arrays + [True] * len(out_types)
        for p, array, typ in zip(params, arrays, in_types + out_types):
            if array:
                ndim = v["raw_ndim"] if p.raw else v["ndim"]
                infos.append(_kernel._ArgInfo(ARG_KIND_NDARRAY, cupy.ndarray, typ, ndim,
                                              v["contiguous"], v["index_32_bits"]))
            else:
                infos.append(_kernel._ArgInfo(ARG_KIND_SCALAR, _scalar.CScalar, typ, 0, True, True))
        infos.append(_kernel._ArgInfo(ARG_KIND_INDEXER, _carray.Indexer, None, v["ndim"], True,
                                      v["index_32_bits"]))
        code = _kernel._get_elementwise_kernel_code(tuple(infos), type_map, kernel.params,
                                                    kernel.operation, kernel.name, kernel.preamble)
    except (AttributeError, TypeError, ValueError) as e:
        raise RuntimeError(f"CuPy {cupy.__version__}'s kernel code generator is not the one "
                           f"tests/cuda_compile.py was written for (CuPy 14): "
                           f"{type(e).__name__}: {e}")
    return cupy_headers() + code


def cupy_headers():
    """The ``#include`` lines CuPy puts before every kernel (``core.pyx``'s ``_cupy_header``)."""
    from cupy._core import core

    headers = getattr(core, "_cupy_header_list", None) or getattr(core, "cupy_header_list", None)
    if not headers:
        raise RuntimeError("CuPy's list of kernel headers (core._cupy_header_list) moved")
    return "".join(f"#include <{h}>\n" for h in headers)


def compile_options(arch):
    """NVRTC's options as CuPy's ``compile_with_cache`` assembles them, for ``arch``.

    CuPy's include paths and C++ standard (``assemble_cupy_compiler_options``; where it finds no
    CUDA toolkit headers, the same without them -- numstyle's kernels include none), then what
    ``cupy/cuda/compiler.py`` adds: ``-ftz=true``, the architecture,
    ``--device-as-default-execution-space``.
    """
    from cupy._core import core

    try:
        options = core.assemble_cupy_compiler_options(())
    except RuntimeError:                               # "Failed to auto-detect CUDA root directory"
        options = core._get_cccl_include_options() + (
            "--std=c++17", f"-I{core._get_header_dir_path()}")
    return options + ("-ftz=true", f"-arch={arch}", "--device-as-default-execution-space")


class CompileError(Exception):
    """NVRTC refused a kernel; the message is NVRTC's log."""


def compile_source(source, arch, filename="kernel.cu"):
    """Compile ``source`` with NVRTC for ``arch`` (``compute_90``); return the PTX.

    Raises
    ------
    CompileError
        With NVRTC's log (``kernel.cu(25): error: identifier "q" is undefined`` ...).
    """
    from cupy_backends.cuda.libs import nvrtc

    prog = nvrtc.createProgram(source, filename, (), ())
    try:
        try:
            nvrtc.compileProgram(prog, compile_options(arch))
        except nvrtc.NVRTCError as e:
            raise CompileError(nvrtc.getProgramLog(prog).strip() or str(e)) from None
        return nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)


def compile_failures(preamble, sources, archs=ARCHS, dtypes=DTYPES, variants=tuple(VARIANTS)):
    """Compile every kernel of ``sources`` as CuPy would, each architecture, dtype and variant.

    Parameters
    ----------
    preamble : str
        Code before each kernel (``preamble=``).
    sources : dict
        ``{key: (in_params, out_params, body)}``; kernel ``key`` is named ``numstyle_<key>``.

    Returns
    -------
    list of str
        One entry per failed compile: which kernel, dtype, variant and architecture, then NVRTC's
        log. Empty when all compile.
    """
    failures = []
    for key, (in_params, out_params, body) in sources.items():
        for dtype in dtypes:
            for variant in variants:
                src = kernel_source(f"numstyle_{key}", in_params, out_params, body, preamble,
                                    dtype, variant)
                for arch in archs:
                    try:
                        compile_source(src, arch, f"numstyle_{key}.cu")
                    except CompileError as e:
                        failures.append(f"{key} ({np.dtype(dtype).name}, {variant}, {arch}):\n{e}")
    return failures
