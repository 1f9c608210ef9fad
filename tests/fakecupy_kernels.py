"""``ElementwiseKernel`` for fakecupy: CuPy's kernel bodies run as C++ on the CPU.

A ``cupy.ElementwiseKernel(in_params, out_params, body, name)`` runs ``body``
(CUDA C) once per output element ``i``. This stand-in wraps the same body in a
C++ loop over ``i``, compiles it with g++ once per body and dtype, and runs it
on the arrays' host memory -- so the bodies numstyle ships
(``numstyle/ops/kernels.py``) are run and tested without a GPU. It keeps to
the part of CuPy's contract those bodies use:

- ``raw T x``: the whole array, indexed by a flat C-order index (passed
  C-contiguous); ``T x``: this element's value (inputs) or a reference to
  it (outputs), broadcast to the iteration shape;
- typed scalars (``int32 H``) passed as Python numbers, and numbers for ``T``
  parameters (cast to T); typed arrays only as ``raw`` (``raw int8 w``);
- outputs always passed by the caller; the iteration runs over their shape;
- ``T`` is the dtype of the first array argument (float32 or float64).

Device-side maths that CUDA has and C++ lacks (``max``, ``min``, ``rsqrt``)
is defined in the preamble, and ``__device__`` defined away, so a kernel's own
``preamble=`` (its device helpers) compiles as plain C++ too. What this cannot check is CUDA itself:
launch configuration, memory, NVRTC's dialect (``nvcc_check`` compiles the bodies
with nvcc for that, where installed).
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np

CXX = shutil.which("g++")
NVCC = shutil.which("nvcc")
CACHE = os.path.join(tempfile.gettempdir(), f"fakecupy-kernels-{os.getuid()}")

_C_TYPES = {"float32": ("float", ctypes.c_float), "float64": ("double", ctypes.c_double),
            "int8": ("signed char", ctypes.c_byte), "int32": ("int", ctypes.c_int),
            "int64": ("long long", ctypes.c_longlong)}
_PREAMBLE = """
#include <cmath>
#include <cstddef>
#define __device__
template <class A> static inline A max(A a, A b) { return a > b ? a : b; }
template <class A> static inline A min(A a, A b) { return a < b ? a : b; }
static inline float rsqrt(float a) { return 1.0f / std::sqrt(a); }
static inline double rsqrt(double a) { return 1.0 / std::sqrt(a); }
"""


def parse(params):
    """'raw T x, int32 H' -> [(raw, type, name), ...]."""
    out = []
    for item in params.split(","):
        words = item.split()
        raw = words[0] == "raw"
        typ, name = words[1:] if raw else words
        out.append((raw, typ, name))
    return out


def signature(in_params, out_params, ctype):
    """C arguments of one kernel and the per-element bindings of its non-raw arrays."""
    args, lets = ["ptrdiff_t _n"], []
    params = [(p, False) for p in parse(in_params)] + [(p, True) for p in parse(out_params)]
    for (raw, typ, name), is_out in params:
        ct = ctype if typ == "T" else _C_TYPES[typ][0]
        if raw:
            args.append(f"{ct}* {name}")
        elif typ != "T":
            args.append(f"{ct} {name}")                    # a typed scalar
        else:
            args.append(f"{ct}* _p_{name}")
            lets.append(f"{ct}& {name} = _p_{name}[i];" if is_out
                        else f"const {ct} {name} = _p_{name}[i];")
    return ", ".join(args), " ".join(lets)


def source(in_params, out_params, body, ctype, preamble=""):
    """The C++ of one kernel:
    ``void run(ptrdiff_t n, <one argument per parameter>)``, a loop over i."""
    args, lets = signature(in_params, out_params, ctype)
    return (f"{_PREAMBLE}\ntypedef {ctype} T;\n{preamble}\n"
            f'extern "C" void run({args}) {{\n'
            f"  for (ptrdiff_t i = 0; i < _n; ++i) {{\n    {lets}\n    {{ {body} }}\n  }}\n}}\n")


def _compile(src):
    os.makedirs(CACHE, exist_ok=True)
    lib = os.path.join(CACHE, hashlib.sha1(src.encode()).hexdigest() + ".so")
    if not os.path.exists(lib):
        cpp = lib[:-3] + ".cpp"
        with open(cpp, "w") as f:
            f.write(src)
        tmp = lib + f".{os.getpid()}"
        subprocess.run([CXX, "-O1", "-shared", "-fPIC", "-o", tmp, cpp], check=True,
                       capture_output=True)
        os.replace(tmp, lib)  # atomic: parallel test runs share the cache
    return ctypes.CDLL(lib).run


class ElementwiseKernel:
    """``cupy.ElementwiseKernel`` run as compiled C++ on fakecupy's host arrays."""

    def __init__(self, in_params, out_params, operation, name="kernel", preamble="", **kwargs):
        self.in_params, self.out_params, self.body, self.name = (in_params, out_params,
                                                                  operation, name)
        self.preamble = preamble
        self.params = parse(in_params) + parse(out_params)
        self.n_in = len(parse(in_params))
        self._libs = {}

    def __call__(self, *args):
        from fakecupy import _count, ndarray
        assert len(args) == len(self.params), \
            f"{self.name}: outputs must be passed ({len(self.params)} arguments)"
        arrays = [a._a for a in args if isinstance(a, ndarray)]
        for a in args:
            assert not isinstance(a, np.ndarray), \
                f"{self.name}: a NumPy array passed to a device kernel"
        dtype = arrays[0].dtype
        ctype = {np.float32: "float", np.float64: "double"}[dtype.type]
        outs = [args[k]._a for k in range(self.n_in, len(args))]
        shape = outs[0].shape
        if ctype not in self._libs:
            self._libs[ctype] = _compile(source(self.in_params, self.out_params, self.body, ctype,
                                                self.preamble))
        c_args, keep, write_back = [ctypes.c_ssize_t(int(np.prod(shape)))], [], []
        for k, ((raw, typ, name), a) in enumerate(zip(self.params, args)):
            if typ != "T" and not raw:
                c_args.append(_C_TYPES[typ][1](a))         # a typed scalar
                continue
            want = dtype if typ == "T" else np.dtype(typ)
            # a number: CuPy casts it to T
            host = a._a if isinstance(a, ndarray) else np.asarray(a, dtype=dtype)
            assert host.dtype == want, f"{self.name}: {name} is {host.dtype}, expected {want}"
            buf = np.ascontiguousarray(host if raw else np.broadcast_to(host, shape))
            if k >= self.n_in and buf is not host:  # a strided output: run on a copy, write it back
                buf = buf.copy()
                write_back.append((host, buf))
            keep.append(buf)
            c_args.append(buf.ctypes.data_as(ctypes.c_void_p))
        self._libs[ctype](*c_args)
        for host, buf in write_back:
            host[...] = buf
        _count(launch=True)
        return args[self.n_in] if len(outs) == 1 else tuple(args[self.n_in:])


def nvcc_check(sources, preamble=""):
    """Compile kernel bodies as CUDA (as CuPy's ElementwiseKernel would wrap them) with nvcc.

    ``sources``: {name: (in_params, out_params, body)}; ``preamble``: code before them all (CuPy's
    ``preamble=``). Raises CalledProcessError with nvcc's messages on a compile error. A check of
    the dialect (device maths, types), not of the results.
    """
    units = ["#include <cstddef>", preamble]
    for name, (in_params, out_params, body) in sources.items():
        for ctype in ("float", "double"):
            args, lets = signature(in_params, out_params, ctype)
            units.append(f"namespace {name}_{ctype} {{ typedef {ctype} T;\n"
                         f"__global__ void k({args}) {{\n"
                         f"  for (ptrdiff_t i = (ptrdiff_t)blockIdx.x * blockDim.x + threadIdx.x;"
                         f" i < _n; i += (ptrdiff_t)blockDim.x * gridDim.x)"
                         f" {{ {lets} {{ {body} }} }}\n}} }}")
    with tempfile.TemporaryDirectory() as d:
        cu = os.path.join(d, "kernels.cu")
        with open(cu, "w") as f:
            f.write("\n".join(units))
        subprocess.run([NVCC, "-c", "-o", os.path.join(d, "kernels.o"), cu], check=True,
                       capture_output=True, text=True)
