"""Every CUDA kernel numstyle ships compiles as CuPy would compile it, with no GPU.

``tests/cuda_compile.py`` wraps each body with CuPy's own code generator and compiles it with
NVRTC (from the package registry: no driver, no toolkit) for compute_80 and compute_90, in float
and double, for a contiguous and a strided call. The stand-in's g++ (``tests/fakecupy_kernels.py``)
checks what the bodies compute; this checks that CUDA accepts them as CuPy wraps them -- device
maths, types, CuPy's ``CArray`` indexing, its reserved names.

Skipped, with the reason, without ``cupy-cuda12x`` and ``nvidia-cuda-nvrtc-cu12`` (``pip install
-e '.[gpucheck]'``).
"""
import pytest

import cuda_compile

MISSING = cuda_compile.missing()
needs_nvrtc = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def all_kernel_sources():
    """``(PREAMBLE, SOURCES)``: every fused GPU kernel numstyle ships, wherever it lives.

    The one place this file knows where the kernels are. Importing the Winograd module adds its
    kernels to the one ``SOURCES`` dict (as at run time).
    """
    from numstyle.fast import gpu_kernels, gpu_winograd  # noqa: F401

    return gpu_kernels.PREAMBLE, dict(gpu_kernels.SOURCES)


PREAMBLE, SOURCES = all_kernel_sources()


@needs_nvrtc
def test_nvrtc_offers_the_architectures():
    """The NVRTC installed can target the A100's and H100's virtual architectures."""
    from cupy_backends.cuda.libs import nvrtc

    version = cuda_compile.nvrtc_version()
    assert version >= (12, 0), f"NVRTC {version}: expected 12.x"
    offered = set(nvrtc.getSupportedArchs())
    for arch in cuda_compile.ARCHS:
        assert int(arch.split("_")[1]) in offered, f"NVRTC offers {sorted(offered)}, not {arch}"


def test_every_kernel_is_found():
    """The kernels are where all_kernel_sources looks: the fused kernels and Winograd's two."""
    expected = {"im2col", "col2im", "winograd_input", "winograd_output"}
    assert len(SOURCES) >= 16 and expected <= set(SOURCES), sorted(SOURCES)
    assert "struct Pixel" in PREAMBLE


@needs_nvrtc
@pytest.mark.parametrize("key", sorted(SOURCES))
def test_kernel_compiles_with_nvrtc(key):
    """One kernel, wrapped by CuPy's code generator, compiles with NVRTC: compute_80 and compute_90,
    float and double, contiguous and strided arguments (8 compiles)."""
    failures = cuda_compile.compile_failures(PREAMBLE, {key: SOURCES[key]})
    assert not failures, "NVRTC refused a fused kernel:\n\n" + "\n\n".join(failures)


@needs_nvrtc
def test_the_generated_source_is_cupys():
    """The source compiled is CuPy's wrapping: its headers, the typedef of T, CArray arguments,
    the grid-stride loop, the reference to this element of each non-raw array."""
    in_params, out_params, body = SOURCES["relu_backward"]
    src = cuda_compile.kernel_source("numstyle_relu_backward", in_params, out_params, body,
                                     PREAMBLE, "float32", "contiguous")
    for expected in ("#include <cupy/carray.cuh>", "typedef float T;", "struct Pixel",
                     'extern "C" __global__ void numstyle_relu_backward(',
                     "const CArray<float, 1, 1, 1> _raw_dy", "CIndexer<1, 1> _ind",
                     "CUPY_FOR(i, _ind.size())", "const T &dy = _raw_dy[_ind.get()];",
                     "T &dx = _raw_dx[_ind.get()];", body.strip()):
        assert expected in src, f"{expected!r} not in CuPy's source:\n{src}"
    strided = cuda_compile.kernel_source("numstyle_gram_loss", *SOURCES["gram_loss"], PREAMBLE,
                                         "float64", "strided")
    # G an array (4-D, strided, 64-bit index); A, s, c scalars of type T
    expected = ("const CArray<double, 4, 0, 0> _raw_G, const double A, const double s, "
                "const double c")
    assert expected in strided, strided


@needs_nvrtc
def test_a_broken_body_fails_with_nvrtcs_message(monkeypatch):
    """A body that does not compile fails the test above, with NVRTC's own error message."""
    in_params, out_params, _ = SOURCES["avg_pool"]
    broken = {"avg_pool": (in_params, out_params, "y = x[i] * no_such_name;")}
    failures = cuda_compile.compile_failures(PREAMBLE, broken)
    assert len(failures) == 8, failures                      # 2 archs x 2 dtypes x 2 variants
    assert all('identifier "no_such_name" is undefined' in f for f in failures), failures[0]
    assert failures[0].startswith("avg_pool (float32, contiguous, compute_80):"), failures[0]
    monkeypatch.setitem(SOURCES, "avg_pool", broken["avg_pool"])
    with pytest.raises(AssertionError, match='identifier "no_such_name" is undefined'):
        test_kernel_compiles_with_nvrtc("avg_pool")


@needs_nvrtc
def test_nvrtc_refuses_what_gpp_accepts():
    """What the stand-in's g++ cannot catch: ``std::sqrt`` compiles as C++ (fakecupy runs it), but
    CUDA device code under CuPy has no ``std::`` maths; ``throw`` has no place on a device."""
    import fakecupy_kernels

    for body, message in [("y = std::sqrt(x);", 'namespace "std" has no member "sqrt"'),
                          ("if (x < 0) throw 1; y = x;", "exception handling")]:
        if fakecupy_kernels.CXX:                                           # g++: compiles
            fakecupy_kernels._compile(fakecupy_kernels.source("T x", "T y", body, "float"))
        failures = _compile_one(("T x", "T y", body))
        assert len(failures) == 1 and message in failures[0], failures


@needs_nvrtc
def test_cupys_reserved_names_fail_under_cupys_wrapping():
    """A parameter named like CuPy's own (``_ind``, its indexer) fails to compile as CuPy wraps it,
    as test_gpu_kernels.test_kernel_bodies_avoid_cupys_reserved_names says it would."""
    failures = _compile_one(("T x", "T _ind", "_ind = x;"))
    assert len(failures) == 1 and "_ind" in failures[0], failures


def _compile_one(source):
    """compile_failures for one kernel, once: compute_90, float, contiguous."""
    return cuda_compile.compile_failures("", {"probe": source}, archs=("compute_90",),
                                         dtypes=("float32",), variants=("contiguous",))
