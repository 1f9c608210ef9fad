"""Every use of the array module that numstyle's GPU path makes, found in its source with ``ast``.

On the GPU numstyle runs its NumPy code with ``xp = cupy`` (``numstyle/backend.py``), so each
``xp.<name>`` it writes must exist in CuPy and take the keywords it is given. This module lists
those uses -- attribute chains such as ``xp.lib.stride_tricks.as_strided`` and the keyword names
of each call -- by parsing every ``numstyle/**/*.py``; ``tests/test_cupy_api.py`` looks each one up
in real CuPy. Nothing here imports CuPy or numstyle: it reads files, wherever they are.

What counts as the array module (the *roots*):

- the names ``xp``, ``cp``, ``cupy``, ``_cupy`` and ``cupyx`` (a parameter, a module, a global);
- a name imported as ``cupy`` or ``cupyx`` (``import cupy as foo``);
- a call of a *module factory*: ``get_xp``, ``get_array_module``, and every function in the
  scanned files whose ``return`` gives a factory's result (``train.xp_of``), found to a fixed point;
- a name assigned one of the above (``m = get_xp(grad)``, ``xp = cupy``) anywhere in the same file.

A name assigned an attribute of a root (``d = xp.asarray``) is an alias: its calls count as calls
of that attribute. ``getattr(xp, "name")`` and ``hasattr(xp, "name")`` with a constant name count
as ``xp.name``. What it cannot
see: methods of device arrays (``x.astype(..., copy=False)``: their type is not known statically),
keywords passed through ``**kwargs`` (reported as such), and modules reached any other way.
"""
import ast
import inspect
import os
import re
from dataclasses import dataclass

ROOT_NAMES = frozenset({"xp", "cp", "cupy", "_cupy", "cupyx"})
FACTORIES = frozenset({"get_xp", "get_array_module"})


@dataclass(frozen=True)
class Use:
    """One use of the array module: ``root.path`` at ``file:line``, called with ``keywords``.

    ``root`` is ``"cupyx"`` for ``cupyx.*`` and ``"cupy"`` for everything else; ``called`` says
    whether the attribute was called there; ``star_kwargs``, whether ``**kwargs`` were passed too
    (keywords that cannot be read statically).
    """

    root: str
    path: tuple
    file: str
    line: int
    called: bool = False
    keywords: tuple = ()
    star_kwargs: bool = False

    @property
    def name(self):
        """``"cupy.lib.stride_tricks.as_strided"``: the dotted name to look up."""
        return ".".join((self.root,) + self.path)

    def where(self):
        """``"numstyle/ops/kernels.py:240"``."""
        return f"{self.file}:{self.line}"


def _dotted(node):
    """``a.b.c`` -> ``["a", "b", "c"]`` for a chain rooted at a Name; else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts[::-1]
    if isinstance(node, ast.Call):                 # get_xp(x).zeros_like: the call is the root
        return [node] + parts[::-1]
    return None


def _called_name(call):
    """The last name of a call's function: ``backend.get_xp(x)`` -> ``"get_xp"``."""
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _factories(trees):
    """FACTORIES and every function (in any scanned file) whose ``return`` gives a factory's
    result."""
    found = set(FACTORIES)
    changed = True
    while changed:
        changed = False
        for tree in trees.values():
            for fn in ast.walk(tree):
                if not isinstance(fn, ast.FunctionDef) or fn.name in found:
                    continue
                returns = [r.value for r in ast.walk(fn)
                           if isinstance(r, ast.Return) and r.value is not None]
                if returns and all(isinstance(v, ast.Call) and _called_name(v) in found
                                   for v in returns):
                    found.add(fn.name)
                    changed = True
    return found


class _FileScan:
    """The uses in one parsed file (see the module's docstring for the rules)."""

    def __init__(self, tree, path, factories):
        self.tree, self.path, self.factories = tree, path, factories
        self.modules = {n: ("cupyx" if n == "cupyx" else "cupy") for n in ROOT_NAMES}
        self.aliases = {}                           # name -> (root, path) for d = xp.asarray
        self._bind_names()

    def _is_module(self, node):
        if isinstance(node, ast.Name):
            return node.id in self.modules
        return isinstance(node, ast.Call) and _called_name(node) in self.factories

    def _root_of(self, node):
        return self.modules[node.id] if isinstance(node, ast.Name) else "cupy"

    def _bind_names(self):
        """Names bound to the module or to one of its attributes, anywhere in the file."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in ("cupy", "cupyx"):
                        self.modules[a.asname or a.name] = a.name
        changed = True
        while changed:                                       # xp = get_xp(x); m = xp; d = m.asarray
            changed = False
            for node in ast.walk(self.tree):
                if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                        and isinstance(node.targets[0], ast.Name)):
                    continue
                name, value = node.targets[0].id, node.value
                if name in self.modules or name in self.aliases:
                    continue
                if self._is_module(value):
                    self.modules[name] = self._root_of(value)
                    changed = True
                elif isinstance(value, ast.Attribute):
                    chain = _dotted(value)
                    if chain and self._is_module_part(chain[0]):
                        self.aliases[name] = (self._root_of(chain[0]), tuple(chain[1:]))
                        changed = True

    def _is_module_part(self, head):
        if isinstance(head, str):
            return head in self.modules
        return _called_name(head) in self.factories

    def _head_root(self, head):
        return self.modules[head] if isinstance(head, str) else "cupy"

    def uses(self):
        """Every use in the file, in source order."""
        out, inner = [], set()
        calls = {id(n.func): n for n in ast.walk(self.tree) if isinstance(n, ast.Call)}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute) and id(node) not in inner:
                chain = _dotted(node)
                value = node.value
                while isinstance(value, ast.Attribute):              # only the outermost attribute
                    inner.add(id(value))
                    value = value.value
                if chain is None or not self._is_module_part(chain[0]):
                    continue
                call = calls.get(id(node))
                out.append(self._use(self._head_root(chain[0]), tuple(chain[1:]), node, call))
            elif isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id in self.aliases:     # d(x) with d = xp.asarray
                    root, path = self.aliases[f.id]
                    out.append(self._use(root, path, node, node))
                elif (isinstance(f, ast.Name) and f.id in ("getattr", "hasattr")
                      and len(node.args) >= 2 and self._is_module(node.args[0])
                      and isinstance(node.args[1], ast.Constant)
                      and isinstance(node.args[1].value, str)):
                    root, name = self._root_of(node.args[0]), node.args[1].value
                    out.append(self._use(root, (name,), node, None))
        return sorted(out, key=lambda u: (u.line, u.path))

    def _use(self, root, path, node, call):
        keywords = tuple(k.arg for k in call.keywords if k.arg is not None) if call else ()
        star = bool(call) and any(k.arg is None for k in call.keywords)
        return Use(root, path, self.path, node.lineno, call is not None, keywords, star)


def numpy_calls(sources, names):
    """``np.<name>(..., keyword=...)`` calls in ``{path: source text}`` for ``name`` in ``names``.

    Given a device array, NumPy hands such a call to CuPy's function of the same name, keywords and
    all (``__array_function__``), so where ``names`` are the functions the stand-in dispatches
    (``fakecupy.FUNCTIONS``) the keywords must be CuPy's too. Returned as uses of ``cupy.<name>``
    (only calls with keywords: the names themselves are checked against CuPy as ``FUNCTIONS``).
    """
    out = []
    for path, text in sources.items():
        tree = ast.parse(text, filename=path)
        numpy = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names if a.name == "numpy"}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in numpy
                    and node.func.attr in names and node.keywords):
                out.append(Use("cupy", (node.func.attr,), path, node.lineno, True,
                               tuple(k.arg for k in node.keywords if k.arg is not None),
                               any(k.arg is None for k in node.keywords)))
    return sorted(out, key=lambda u: (u.file, u.line))


def read_package(package_dir):
    """``{path: source text}`` for every ``*.py`` under ``package_dir``; paths are relative to
    its parent (``numstyle/x.py``)."""
    base, files = package_files(package_dir)
    sources = {}
    for rel in files:
        with open(os.path.join(base, rel), encoding="utf-8") as f:
            sources[rel] = f.read()
    return sources


def package_files(package_dir):
    """Every ``*.py`` under ``package_dir``, sorted, as paths relative to its parent."""
    base = os.path.dirname(os.path.abspath(package_dir))
    found = []
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__pycache__")))
        found += [os.path.relpath(os.path.join(dirpath, f), base)
                  for f in filenames if f.endswith(".py")]
    return base, sorted(found)


def scan_sources(sources):
    """The uses in ``{path: source text}``: every file parsed, module factories found across
    all of them."""
    trees = {path: ast.parse(text, filename=path) for path, text in sources.items()}
    factories = _factories(trees)
    out = []
    for path, tree in trees.items():
        out += _FileScan(tree, path, factories).uses()
    return out


def scan_package(package_dir):
    """The uses in every ``*.py`` under ``package_dir`` (numstyle/), with paths like
    ``numstyle/x.py``."""
    return scan_sources(read_package(package_dir))


# -- checking the uses against real CuPy (imported only here) --------------------------------------

_SIGNATURE_LINE = re.compile(r"^\s*[\w.]+\((.*)\)\s*(->.*)?$")
_ARGS_HEADER = re.compile(r"^(\s*)(?:Args|Arguments|Parameters):?\s*$")


def _doc_parameters(doc):
    """Parameter names a docstring documents: a first-line signature (``einsum(subscripts,
    *operands, dtype=None, optimize=False)``, as Cython writes one) and a Google-style ``Args:``
    section (``out (cupy.ndarray): ...``). Returns ``(names, takes_any_keyword)``, or None."""
    if not doc:
        return None
    lines = doc.expandtabs().splitlines()
    names, signature_kwarg, section = set(), None, None
    m = _SIGNATURE_LINE.match(lines[0])
    if m:
        try:
            args = ast.parse(f"def f({m.group(1)}): pass").body[0].args
        except SyntaxError:
            args = None
        if args is not None:
            names |= {a.arg for a in args.args + args.kwonlyargs if a.arg != "self"}
            signature_kwarg = args.kwarg is not None
    for k, line in enumerate(lines):
        header = _ARGS_HEADER.match(line)
        if not header:
            continue
        section, indent = False, None                         # section: it documents **kwargs
        for entry in lines[k + 1:]:
            if not entry.strip():
                continue
            depth = len(entry) - len(entry.lstrip())
            if depth <= len(header.group(1)):
                break                                        # the section ended
            indent = depth if indent is None else indent
            item = re.match(r"(\*{0,2})(\w+)\s*(\(.*\))?\s*:", entry.strip())
            if depth == indent and item:
                section |= item.group(1) == "**"
                names.add(item.group(2))
        break
    if section is None and signature_kwarg is None:
        return None
    return names, section if section is not None else signature_kwarg   # the Args section decides


def accepted_keywords(obj):
    """The keyword names ``obj`` accepts, and how that was found.

    Returns ``(names, how)``: ``how`` is ``"signature"`` (``inspect.signature``), ``"docstring"``
    (where CuPy exposes no signature, or takes ``**kwargs``: the parameters its docstring lists;
    for a ufunc, ``ufunc.__call__``'s) or ``"any"`` (it takes any keyword); ``names`` is None when
    neither says (``how == "unknown"``).
    """
    import cupy

    names, var_keyword = set(), True
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names = {p.name for p in sig.parameters.values() if p.kind in kinds}
        var_keyword = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
        if not var_keyword:
            return names, "signature"
    doc = type(obj).__call__.__doc__ if isinstance(obj, cupy.ufunc) else inspect.getdoc(obj)
    documented = _doc_parameters(doc)
    if documented is not None:
        more, any_keyword = documented
        return (None, "any") if any_keyword else (names | more, "docstring")
    if sig is not None:
        return None, "any"
    return None, "unknown"


def resolve(use):
    """The object ``use`` names in real CuPy (``cupy.lib.stride_tricks.as_strided``).

    Raises
    ------
    AttributeError
        Naming the first part CuPy lacks.
    """
    import importlib

    obj, done = importlib.import_module(use.root), use.root
    for part in use.path:
        if not hasattr(obj, part):
            raise AttributeError(f"{done} has no attribute {part!r}")
        obj, done = getattr(obj, part), f"{done}.{part}"
    return obj


def problems(uses, not_in_cupy=(), unchecked_keywords=()):
    """What real CuPy says to each use: one line per problem, empty when all is well.

    Parameters
    ----------
    uses : list of Use
    not_in_cupy : collection of str
        Dotted names not to look up (reached only with NumPy; an allow-list).
    unchecked_keywords : collection of str
        Dotted names whose keywords cannot be checked (CuPy documents none); existence still is.
    """
    out = []
    for u in uses:
        if u.name in not_in_cupy:
            continue
        try:
            obj = resolve(u)
        except AttributeError as e:
            out.append(f"{u.where()}: {u.name}: not in CuPy ({e})")
            continue
        if u.called and not callable(obj):
            out.append(f"{u.where()}: {u.name} is called, but is not callable in CuPy")
        if u.star_kwargs and u.name not in unchecked_keywords:
            out.append(f"{u.where()}: {u.name}(**...): keywords that cannot be read statically")
        if not u.keywords or u.name in unchecked_keywords:
            continue
        names, how = accepted_keywords(obj)
        if how == "unknown":
            out.append(f"{u.where()}: {u.name}: CuPy says nothing of the keywords "
                       f"{list(u.keywords)}")
        elif names is not None:
            bad = [k for k in u.keywords if k not in names]
            if bad:
                out.append(f"{u.where()}: {u.name} has no keyword {', '.join(bad)} in CuPy "
                           f"(by its {how}: {', '.join(sorted(names))})")
    return out
