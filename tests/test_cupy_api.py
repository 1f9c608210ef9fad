"""numstyle's CuPy calls against real CuPy, and the stand-in's refusals against CuPy's, with no GPU.

``cupy-cuda12x`` installs and imports without a GPU or a driver; its functions, their signatures
and docstrings can be read, and a few of its checks run before it touches a device. So:

- every ``xp.``/``cupy.``/``cupyx.`` use in ``numstyle/**/*.py`` (found by ``tests/cupy_calls.py``
  with ``ast``, not by a list kept by hand) exists in real CuPy, is callable where it is called,
  and takes the keywords it is given -- a misspelt name, a NumPy-only function or keyword fails
  here instead of on a user's GPU;
- what ``tests/fakecupy.py`` lets through exists in CuPy, and what it refuses CuPy refuses too,
  probed on a real ``cupy.ndarray`` with no elements (made without a device) -- except where the
  stand-in is knowingly stricter, or where CuPy's check comes after its first device call (those
  are probed again by ``pytest -m gpu``).

Skipped, with the reason, without ``cupy-cuda12x`` (``pip install -e '.[gpucheck]'``); the
scanner's own tests run everywhere.
"""
import inspect
import os
import re
import warnings

import numpy as np
import pytest

import cupy_calls
import fakecupy
from numstyle import backend

try:
    import cupy
    import cupyx
    from cupy.cuda import memory
    MISSING = None
except Exception as e:                     # ImportError, or a CUDA library failing to load
    cupy = cupyx = memory = None
    MISSING = f"needs real CuPy (pip install -e '.[gpucheck]'): {type(e).__name__}: {e}"
needs_cupy = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))

# Uses the scan finds that are not to be looked up in CuPy: reached only when ``xp`` is NumPy
# (e.g. inside ``if xp is np:``), which the scan cannot tell. "cupy.<name>": "where, and why".
NOT_IN_CUPY = {}

# Uses whose keywords cannot be checked (CuPy exposes no signature and documents no parameters);
# they must still exist. "cupy.<name>": "why".
UNCHECKED_KEYWORDS = {}


def numstyle_sources():
    """``{path: text}`` of every file of numstyle, wherever its files are."""
    import numstyle

    return cupy_calls.read_package(os.path.dirname(numstyle.__file__))


SOURCES = numstyle_sources()
USES = cupy_calls.scan_sources(SOURCES)


# -- the scan --------------------------------------------------------------------------------------

def test_the_scan_reads_all_of_numstyle():
    """The scan walks every file of the package: each file that writes ``xp.<name>`` has uses found
    in it, and the fused kernels' ``ElementwiseKernel(..., preamble=...)`` is among them."""
    files = {u.file for u in USES}
    assert len(USES) > 100 and len(files) > 10, f"{len(USES)} uses in {sorted(files)}"
    writes_xp = {path for path, text in SOURCES.items() if re.search(r"^[^#]*\bxp\.\w", text, re.M)}
    assert writes_xp and writes_xp <= files, f"no uses found in {sorted(writes_xp - files)}"
    kernels = [u for u in USES if u.name == "cupy.ElementwiseKernel" and u.called]
    assert kernels and "preamble" in kernels[0].keywords, kernels


SNIPPETS = {
    "pkg/a.py": '''
import numpy as np
import cupy as cq
from .b import xp_of

def f(x, xp, params, kw):
    np.zeros(3)                          # NumPy itself: not a use
    x.astype(np.float32, copy=False)     # a method of an array: not seen
    xp.lib.stride_tricks.as_strided(x, shape=(1,), strides=(8,))
    m = get_xp(x)
    m.concatenate([x], axis=0)
    get_xp(x).zeros_like(x)
    xp_of(params).ones(3, dtype=np.float32)
    d = m.asarray
    d(x, dtype=np.float32)
    cq.cuda.Stream.null.synchronize()
    getattr(xp, "ElementwiseKernel")
    xp.pad(x, 1, **kw)
    return xp.float32
''',
    "pkg/b.py": '''
def xp_of(params):
    return get_xp(next(iter(params.values())))

def g(a):
    import cupyx
    cupyx.scatter_add(a, [0], 1.0)
''',
}


def test_the_scan_follows_the_module_wherever_it_is_bound():
    """Each rule of tests/cupy_calls.py: a parameter, ``get_xp`` and a function returning it (in
    another file), a name assigned the module, an alias of one of its functions, ``import cupy as``,
    ``getattr``, ``cupyx``, ``**kwargs``; NumPy itself and array methods are not uses."""
    got = {(u.name, u.keywords, u.called, u.star_kwargs, u.line)
           for u in cupy_calls.scan_sources(SNIPPETS)}
    assert got == {
        ("cupy.lib.stride_tricks.as_strided", ("shape", "strides"), True, False, 9),
        ("cupy.concatenate", ("axis",), True, False, 11),
        ("cupy.zeros_like", (), True, False, 12),
        ("cupy.ones", ("dtype",), True, False, 13),
        ("cupy.asarray", (), False, False, 14),               # d = m.asarray
        ("cupy.asarray", ("dtype",), True, False, 15),        # d(x, dtype=...)
        ("cupy.cuda.Stream.null.synchronize", (), True, False, 16),
        ("cupy.ElementwiseKernel", (), False, False, 17),
        ("cupy.pad", (), True, True, 18),
        ("cupy.float32", (), False, False, 19),
        ("cupyx.scatter_add", (), True, False, 7),
    }, sorted(got)


# -- numstyle's calls against real CuPy ------------------------------------------------------------

@needs_cupy
def test_every_cupy_call_numstyle_makes_exists_and_takes_its_keywords():
    """Each ``xp.``/``cupy.``/``cupyx.`` use in numstyle: in real CuPy, callable where called,
    every keyword accepted (by ``inspect.signature``, or where CuPy has none, its docstring)."""
    found = cupy_calls.problems(USES, NOT_IN_CUPY, UNCHECKED_KEYWORDS)
    assert not found, (f"numstyle's GPU path uses what real CuPy {cupy.__version__} lacks:\n"
                       + "\n".join(found))


@needs_cupy
def test_numpy_calls_the_stand_in_hands_to_cupy_take_cupys_keywords():
    """``np.clip(x, lo, hi, out=y)`` on a device array runs ``cupy.clip(..., out=y)``: for each
    function the stand-in dispatches, the keywords numstyle passes through NumPy are CuPy's too
    (the stand-in itself would take any of NumPy's)."""
    calls = cupy_calls.numpy_calls(SOURCES, fakecupy.FUNCTIONS)
    assert len(calls) > 10, calls                      # np.asarray(x, dtype=...) and the like
    found = cupy_calls.problems(calls)
    assert not found, "NumPy calls whose keywords CuPy's twin lacks:\n" + "\n".join(found)
    bad = cupy_calls.numpy_calls({"pkg/c.py": "import numpy as np\nnp.sum(x, where=m)\n"}, {"sum"})
    assert [p.split(" (by")[0] for p in cupy_calls.problems(bad)] == \
        ["pkg/c.py:2: cupy.sum has no keyword where in CuPy"]


@needs_cupy
def test_the_allow_lists_are_current():
    """Each allow-list entry is still used by numstyle; NOT_IN_CUPY holds only what CuPy
    lacks."""
    names = {u.name for u in USES}
    for name in list(NOT_IN_CUPY) + list(UNCHECKED_KEYWORDS):
        assert name in names, f"{name}: no longer used by numstyle; remove it from the allow-list"
    for name in NOT_IN_CUPY:
        use = next(u for u in USES if u.name == name)
        with pytest.raises(AttributeError):
            cupy_calls.resolve(use)


MISTAKES = {"pkg/bad.py": '''
def f(x, xp):
    xp.zeross((2, 3))
    xp.zeros((2, 3), dtypo=xp.float32)
    xp.add(x, x, outt=x)
    xp.histogram_bin_edges(x)
    xp.lib.stride_tricks.as_strided(x, shapes=(1,))
    xp.ElementwiseKernel("T x", "T y", "y = x", "k", preambel="")
    xp.float32(1, 2, 3)
    xp.newaxis()
    import cupyx
    cupyx.scatter_ad(x, [0], 1.0)
'''}


@needs_cupy
def test_a_misspelt_or_numpy_only_call_is_caught():
    """The check above fails on each kind of mistake: a misspelt function, a misspelt keyword (by
    signature, ufunc docstring, class docstring), a NumPy-only function, something not callable."""
    assert hasattr(np, "histogram_bin_edges") and not hasattr(cupy, "histogram_bin_edges")
    found = cupy_calls.problems(cupy_calls.scan_sources(MISTAKES))
    expected = ["pkg/bad.py:3: cupy.zeross: not in CuPy",
                "pkg/bad.py:4: cupy.zeros has no keyword dtypo in CuPy (by its signature",
                "pkg/bad.py:5: cupy.add has no keyword outt in CuPy (by its docstring",
                "pkg/bad.py:6: cupy.histogram_bin_edges: not in CuPy",
                "pkg/bad.py:7: cupy.lib.stride_tricks.as_strided has no keyword shapes",
                "pkg/bad.py:8: cupy.ElementwiseKernel has no keyword preambel in CuPy (by its "
                "docstring",
                "pkg/bad.py:10: cupy.newaxis is called, but is not callable in CuPy",
                "pkg/bad.py:12: cupyx.scatter_ad: not in CuPy"]
    assert len(found) == len(expected), "\n".join(found)
    for line, want in zip(found, expected):
        assert line.startswith(want), f"{line!r} should start with {want!r}"


# -- the stand-in against real CuPy ----------------------------------------------------------------

def _stand_ins(obj, prefix):
    """``(dotted name, object)`` for each public thing the stand-in offers as CuPy's, recursively
    into its namespaces (``cuda.runtime``, ``lib.stride_tricks``)."""
    skip = {"np", "sys", "types", "fakecupy_kernels", "install", "LOG", "FUNCTIONS", "cupyx"}
    for name, value in sorted(vars(obj).items()):
        if name.startswith("_") and name != "__version__" or (prefix == "cupy" and name in skip):
            continue
        if isinstance(value, type(os)) or type(value).__name__ == "SimpleNamespace":
            yield from _stand_ins(value, f"{prefix}.{name}")
        yield f"{prefix}.{name}", value


@needs_cupy
def test_fakecupy_offers_only_what_cupy_has():
    """Every function the stand-in dispatches to (``FUNCTIONS``) and every attribute it offers as
    CuPy's is in real CuPy; the keywords its own functions take, CuPy's take too."""
    missing = sorted(f"cupy.{n}" for n in fakecupy.FUNCTIONS if not hasattr(cupy, n))
    offered = dict(_stand_ins(fakecupy, "cupy"))
    if "cupyx" in vars(fakecupy):                                   # its cupyx, if it has one
        offered.update(_stand_ins(vars(fakecupy)["cupyx"], "cupyx"))
    for name, fake in offered.items():
        root, *path = name.split(".")
        use = cupy_calls.Use(root, tuple(path), "tests/fakecupy.py", 0)
        try:
            real = cupy_calls.resolve(use)
        except AttributeError:
            missing.append(name)
            continue
        if inspect.isfunction(fake) and fake.__name__ != "<lambda>":   # the stand-in's own
            optional = [p.name for p in inspect.signature(fake).parameters.values()
                        if p.default is not p.empty]                   # those passed by keyword
            names, how = cupy_calls.accepted_keywords(real)
            extra = [k for k in optional if names is not None and k not in names]
            assert not extra, f"{name}: the stand-in takes {extra}, real CuPy not (by its {how})"
    assert not missing, f"the stand-in offers what real CuPy {cupy.__version__} lacks: {missing}"
    assert len(offered) > 20, sorted(offered)


def _device_free_arrays(module):
    """``(a, idx)``: a float32 and an int64 device array of ``module`` with no elements. Real
    CuPy's are made on no memory, without a device (a null pointer, device 0)."""
    if module is fakecupy:
        return fakecupy.ndarray(np.zeros(0, np.float32)), fakecupy.ndarray(np.zeros(0, np.int64))
    null = memory.MemoryPointer(memory.UnownedMemory(0, 0, None, 0), 0)
    return (cupy.ndarray((0,), dtype=np.float32, memptr=null),
            cupy.ndarray((0,), dtype=np.int64, memptr=null))


# What the stand-in refuses (or accepts) against what CuPy does, on a device array ``a`` and an
# index array ``idx``: name -> probe(a, idx).
PROBES = {
    "np.asarray(a)": lambda a, idx: np.asarray(a),                       # implicit copy to the host
    "np.array(a)": lambda a, idx: np.array(a),
    "np.ascontiguousarray(a)": lambda a, idx: np.ascontiguousarray(a),   # NumPy's: no dispatch
    "np.float32(a)": lambda a, idx: np.float32(a),
    "np.lib.stride_tricks.as_strided(a)":
        lambda a, idx: np.lib.stride_tricks.as_strided(a, (0,), (4,)),
    "a.__array_interface__": lambda a, idx: a.__array_interface__,       # host memory
    "a.__array_struct__": lambda a, idx: a.__array_struct__,
    "np.histogram_bin_edges(a)": lambda a, idx: np.histogram_bin_edges(a),   # NumPy-only functions
    "np.unstack(a)": lambda a, idx: np.unstack(a),
    "np.polyint(a)": lambda a, idx: np.polyint(a),
    "a[0:0] = host array": lambda a, idx: a.__setitem__(slice(0, 0), np.zeros(0, np.float32)),
    "a + host array": lambda a, idx: a + np.zeros(0, np.float32),        # NumPy operands
    "np.multiply(a, host array)": lambda a, idx: np.multiply(a, np.zeros(0, np.float32)),
    "np.add.at(a, idx, a)": lambda a, idx: np.add.at(a, idx, a),         # ufunc methods
    "np.add.reduce(a)": lambda a, idx: np.add.reduce(a),
    "np.add.accumulate(a)": lambda a, idx: np.add.accumulate(a),
    "np.add.outer(a, a)": lambda a, idx: np.add.outer(a, a),
    "np.sum(a)": lambda a, idx: np.sum(a),                               # what both accept
    "np.einsum('i->', a)": lambda a, idx: np.einsum("i->", a),
    "np.concatenate([a, a])": lambda a, idx: np.concatenate([a, a]),
    "np.isfinite(a)": lambda a, idx: np.isfinite(a),
    "a[idx] (a gather)": lambda a, idx: a[idx],
}

# The stand-in refuses these; CuPy 14 does not: NumPy's ufunc methods on a device array dispatch
# to CuPy's (``cupy.add.at`` ...). Kept refused: numstyle's device code uses ``cupyx.scatter_add``
# (backend.scatter_add), which every CuPy since v4 has; ``np.add.at`` works only since v12.
STRICTER = {"np.add.at(a, idx, a)": "at", "np.add.reduce(a)": "reduce",
            "np.add.accumulate(a)": "accumulate", "np.add.outer(a, a)": "outer"}

# CuPy refuses these only after its first device call (it asks for the current device before it
# looks at the operands), so without a device they cannot be told from an accepted call;
# test_the_refusals_that_need_a_device checks them on a GPU.
NEEDS_DEVICE = {"a + host array", "np.multiply(a, host array)"}


def _outcome(probe, a, idx):
    """"refused (TypeError)" or "accepted": raising a CUDA error counts as accepted -- CuPy got past
    its checks to the device."""
    cuda_errors = ()
    if cupy is not None:
        from cupy_backends.cuda.api import driver, runtime
        cuda_errors = (runtime.CUDARuntimeError, driver.CUDADriverError)
    try:
        with warnings.catch_warnings():                 # CuPy's __array__ predates NumPy 2's copy=
            warnings.simplefilter("ignore", DeprecationWarning)
            probe(a, idx)
    except cuda_errors:
        return "accepted"
    except Exception as e:
        return f"refused ({type(e).__name__})"
    return "accepted"


@needs_cupy
@pytest.mark.parametrize("name", sorted(PROBES))
def test_fakecupy_refuses_what_cupy_refuses(name):
    """The stand-in and real CuPy (a device-free array) agree on each probe: both refuse, or both
    accept; STRICTER and NEEDS_DEVICE are the known exceptions, each checked for what it claims."""
    real = _outcome(PROBES[name], *_device_free_arrays(cupy))
    fake = _outcome(PROBES[name], *_device_free_arrays(fakecupy))
    if name in STRICTER:
        assert fake.startswith("refused") and real == "accepted", (name, real, fake)
        method = STRICTER[name]
        assert hasattr(cupy.add, method), f"CuPy {cupy.__version__} has no ufunc.{method}"
    elif name in NEEDS_DEVICE:
        assert fake.startswith("refused") and real == "accepted", (name, real, fake)
    else:
        assert real.startswith("refused") == fake.startswith("refused"), \
            f"{name}: real CuPy {real}, the stand-in {fake}"


def test_the_numpy_only_probes_are_numpy_only():
    """The probes' NumPy-only functions are NumPy's and (where CuPy is installed) not CuPy's."""
    for name in ("histogram_bin_edges", "unstack", "polyint"):
        assert hasattr(np, name)
        assert cupy is None or not hasattr(cupy, name), f"CuPy has {name}: pick another for PROBES"


@pytest.mark.gpu
@pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize("name", sorted(NEEDS_DEVICE | set(STRICTER)))
def test_the_refusals_that_need_a_device(name):
    """On a GPU: CuPy refuses NumPy operands, as the stand-in does; and it runs NumPy's ufunc
    methods, where the stand-in is stricter."""
    a, idx = cupy.zeros(3, np.float32), cupy.zeros(0, np.int64)
    try:
        PROBES[name](a, idx)
        real = "accepted"
    except Exception as e:
        real = f"refused ({type(e).__name__}: {e})"
    assert real.startswith("refused") == (name in NEEDS_DEVICE), f"{name}: real CuPy {real}"
