"""A stand-in for CuPy where there is no GPU: NumPy underneath, CuPy's rules on top.

numstyle's GPU path is the NumPy code run with ``xp = cupy``. Most of what can
go wrong there is not CUDA: a ``np.`` call that turns a device array into a
host array, a NumPy constant mixed into device arithmetic, a NumPy-only
function, a hidden copy to the host inside the loop. Real CuPy refuses each
of those with a TypeError. This module refuses them the same way, so that the
GPU tests run -- and catch those mistakes -- on every machine, CI included:

- an ``ndarray`` that is *not* a ``numpy.ndarray``; converting it implicitly
  (``np.asarray``, ``np.array``, a NumPy array operand or value) raises as
  CuPy does (``cupy/_core/core.pyx``: ``__array__``, ``__array_ufunc__``);
- NumPy functions called on it dispatch only to the functions CuPy has
  (``__array_function__``), ufuncs only through ``__call__`` (no ``np.add.at``: stricter than
  CuPy 14, which hands ``np.add.at`` to ``cupy.add.at``; numstyle uses neither);
- reductions return 0-d device arrays, not host scalars, as in CuPy;
- ``LOG`` counts device operations -- all of them, and the ``launches``: those
  that write memory (a kernel on a GPU), not views -- and every copy between
  host and device, so tests can bound them.

What it cannot check: CUDA kernels, memory, speed. Those need the real GPU
(``pytest -m gpu``). tests/test_cupy_api.py checks these refusals against real CuPy's (installed,
without a GPU) and everything this module offers against what CuPy has.
"""
import sys
import types

import numpy as np

import fakecupy_kernels

LOG = {"ops": 0, "launches": 0, "to_host": 0, "to_device": 0, "scalar_reads": 0}

# NumPy functions that CuPy also has (the ones numstyle and its tests can reach); any other
# NumPy function called on a device array raises TypeError, as CuPy's __array_function__ does.
FUNCTIONS = frozenset("""
    abs add all allclose amax amin any arange argmax argmin array array_equal asarray
    ascontiguousarray broadcast_to clip concatenate copy count_nonzero cumsum diff divide dot
    einsum empty empty_like exp expand_dims flip full full_like isfinite isnan linspace log log1p
    matmul maximum mean minimum moveaxis multiply negative ones ones_like pad prod ravel repeat
    reshape sign sqrt square squeeze stack std subtract sum swapaxes take take_along_axis tanh
    tensordot tile transpose true_divide var vstack where zeros zeros_like
""".split())


class ndarray(np.lib.mixins.NDArrayOperatorsMixin):
    """A device array: holds a NumPy array, refuses to become one implicitly."""

    __slots__ = ("_a", "__weakref__")                  # CuPy arrays take weak references too

    def __init__(self, a):
        self._a = a

    # -- CuPy's refusals --------------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":       # np.add.at, np.add.reduce: refused (CuPy 14 would run them)
            return NotImplemented
        out = kwargs.pop("out", None)
        if out is not None:
            kwargs["out"] = tuple(_device_operand(o) for o in out)
        result = ufunc(*[_device_operand(x) for x in inputs], **kwargs)
        _count(launch=True)
        return _wrap(result) if out is None else (out[0] if len(out) == 1 else out)

    def __array_function__(self, func, types_, args, kwargs):
        if func.__name__ not in FUNCTIONS or func.__module__ != "numpy":
            return NotImplemented  # NumPy raises TypeError: "no implementation found"
        return _DEVICE_FUNCTIONS[func.__name__](*args, **kwargs)

    # -- indexing ---------------------------------------------------------------------------------
    def __getitem__(self, key):
        result = self._a[_index(key)]
        # a basic slice is a view; fancy indexing gathers
        _count(launch=not _is_view(result, [self._a]))
        return _wrap(result)

    def __setitem__(self, key, value):
        _count(launch=True)
        self._a[_index(key)] = _device_operand(value)

    # -- explicit host reads (each one a synchronisation) -----------------------------------------
    def get(self):
        LOG["to_host"] += 1
        return self._a.copy()

    def item(self):
        LOG["scalar_reads"] += 1
        return self._a.item()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        return f"fakecupy.ndarray({self._a!r})"

    # -- everything else: NumPy's attribute, on device arrays -------------------------------------
    def __getattr__(self, name):
        if name.startswith("__array"):  # __array_interface__, __array_struct__: host memory
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            def method(*args, **kwargs):
                kwargs = {k: _device_operand(v) if isinstance(v, (ndarray, np.ndarray)) else v
                          for k, v in kwargs.items()}
                result = attr(*[_device_operand(a) if isinstance(a, (ndarray, np.ndarray)) else a
                                for a in args], **kwargs)
                _count(launch=name in ("fill", "sort") or not _is_view(result, [self._a]))
                return _wrap(result)
            return method
        return _wrap(attr) if isinstance(attr, np.ndarray) else attr  # .T, .real; shape, dtype, ...


def _count(launch):
    """One device operation; ``launch`` when it runs a kernel (writes memory), not for a view."""
    LOG["ops"] += 1
    LOG["launches"] += bool(launch)


def _device_operand(x):
    """An operand of a device operation: device arrays and scalars pass, host arrays
    raise (as in CuPy)."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}: a NumPy array in a device operation")
    if isinstance(x, (list, tuple)):
        return type(x)(_device_operand(v) for v in x)
    return x  # Python and NumPy scalars, None, dtypes, strings


def _is_view(result, sources):
    """Whether ``result`` reuses a source's memory (a view: no kernel) rather than new memory."""
    return isinstance(result, np.ndarray) and any(
        isinstance(a, np.ndarray) and np.may_share_memory(result, a) for a in sources)


def _index(key):
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return key._a if isinstance(key, ndarray) else key


def _wrap(x):
    if isinstance(x, np.ndarray):
        return ndarray(x)
    if isinstance(x, np.generic):                      # CuPy's reductions give 0-d device arrays
        return ndarray(np.asarray(x))
    if isinstance(x, (list, tuple)):
        return type(x)(_wrap(v) for v in x)
    return x


def _function(name):
    numpy_function = getattr(np, name)

    def device_function(*args, **kwargs):
        kwargs = {k: _device_operand(v) for k, v in kwargs.items()}
        args = [_device_operand(a) for a in args]
        result = numpy_function(*args, **kwargs)
        # out=: a kernel writing in place
        writes = kwargs.get("out") is not None or not _is_view(result, args)
        _count(launch=name not in ("empty", "empty_like") and writes)
        return _wrap(result)

    device_function.__name__ = name
    return device_function


_DEVICE_FUNCTIONS = {name: _function(name) for name in FUNCTIONS}


def __getattr__(name):
    """``fakecupy.zeros``, ``fakecupy.matmul``, ...: the device functions (module attributes, so
    that names such as ``any`` and ``sum`` stay Python's builtins inside this file)."""
    try:
        return _DEVICE_FUNCTIONS[name]
    except KeyError:
        raise AttributeError(f"module 'fakecupy' has no attribute {name!r} "
                             "(not in CuPy, or not needed yet)")


def _as_strided(x, shape=None, strides=None):
    _count(launch=False)
    return ndarray(np.lib.stride_tricks.as_strided(x._a, shape=shape, strides=strides))


lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=_as_strided))


def asarray(x, dtype=None):
    """Host -> device (counted), or a device array as it is."""
    if isinstance(x, ndarray):
        return x if dtype is None else x.astype(dtype, copy=False)
    LOG["to_device"] += 1
    return ndarray(np.array(x, dtype=dtype))


array = asarray


def asnumpy(x):
    """Device -> host (counted)."""
    return x.get() if isinstance(x, ndarray) else np.asarray(x)


def get_array_module(*arrays):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in arrays) else np


float32, float64, float16, int64, int32, int8, uint8, bool_ = (
    np.float32, np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_)
newaxis = None


class _Stream:
    def synchronize(self):
        pass


__version__ = "0 (fakecupy: NumPy with CuPy's rules)"
cuda = types.SimpleNamespace(
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1,
                                  getDeviceProperties=lambda i: {"name": b"fakecupy",
                                                                 "totalGlobalMem": 1 << 34}),
    Device=lambda i=0: types.SimpleNamespace(id=i),
    Stream=types.SimpleNamespace(null=_Stream()))


if fakecupy_kernels.CXX:                   # CuPy's kernels as C++ on the CPU (needs g++)
    ElementwiseKernel = fakecupy_kernels.ElementwiseKernel


def install(monkeypatch=None):
    """Make numstyle's backend see this module as CuPy; returns the module.

    With pytest's ``monkeypatch``, for one test; without, for the rest of the
    process (a script such as benchmarks/device_ops.py).
    """
    from numstyle import backend

    this = sys.modules[__name__]
    if monkeypatch is None:
        backend._cupy = this
    else:
        monkeypatch.setattr(backend, "_cupy", this)
    for key in LOG:
        LOG[key] = 0
    return this
