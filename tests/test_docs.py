"""The docs stay true: equation tags match between code and docs, and doc snippets run."""
import glob
import os
import re
import subprocess
import sys

import pytest

from conftest import real_vgg16_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = re.compile(r"\((?:GC|CC|CF|K|CV|W|RP|R|P|C|SR|S|TV|TL|T|VD|V|G|I|A|J|L|N|Q|U)\d+\)")


def _tags(paths):
    found = {}
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for t in TAG.findall(f.read()):
                found.setdefault(t, p)
    return found


def test_every_code_tag_is_derived_in_docs_and_back():
    code = _tags(glob.glob(os.path.join(ROOT, "numstyle", "**", "*.py"), recursive=True))
    docs = _tags(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    missing = sorted(set(code) - set(docs))
    unused = sorted(set(docs) - set(code))
    assert not missing, f"tags used in the code but not derived in docs/: {missing}"
    assert not unused, f"tags in docs/ that no code uses: {unused}"


def _snippets():
    for path in [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs",
                                                                                   "*.md"))):
        text = open(path, encoding="utf-8").read()
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
            yield pytest.param(block, id=f"{os.path.basename(path)}-{i}")


@pytest.mark.parametrize("code", list(_snippets()))
def test_doc_snippet_runs(code, tmp_path):
    env = dict(os.environ)
    if "resolve_vgg" in code:  # the README's API: the real weights and the bundled images
        vgg = real_vgg16_path()
        if vgg is None:
            pytest.skip("needs the VGG16 weights (NUMSTYLE_DATA)")
        env["NUMSTYLE_DATA"] = os.path.dirname(os.path.dirname(vgg))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, f"snippet failed:\n{code}\n--- stderr ---\n{r.stderr[-2000:]}"


def _defined_names():
    """Every function, class, method, attribute and module-level name the package defines."""
    import ast

    names = set()
    for path in glob.glob(os.path.join(ROOT, "numstyle", "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        names.update(rel.split("."))
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return names


def _flags():
    from numstyle.cli import build_parser

    flags = set()
    parser = build_parser()
    for action in parser._subparsers._group_actions[0].choices.values():
        for a in action._actions:
            flags.update(s for s in a.option_strings if s.startswith("--"))
    return flags


def test_reading_order_names_only_what_exists():
    """docs/reading-order.md: every file it links, every module, function, class and attribute it
    names in backticks, and every flag, exists -- the map cannot drift from the code."""
    text = open(os.path.join(ROOT, "docs", "reading-order.md"), encoding="utf-8").read()
    for link in re.findall(r"\]\(\.\./([^)#]+)\)", text):
        assert os.path.exists(os.path.join(ROOT, link)), \
            f"reading-order.md links {link}, which does not exist"
    names, flags = _defined_names(), _flags()
    missing = []
    for token in re.findall(r"`([^`\n]+)`", text):
        if token.startswith("--"):
            missing += [token] if token.split("=")[0] not in flags else []
        elif (re.fullmatch(r"[A-Za-z_][\w.]*(\(\))?", token)
              and not re.fullmatch(r"(conv|relu|pool)\d(_\d)?", token)):
            parts = token.rstrip("()").split(".")
            if parts[0] in ("np", "xp", "numstyle", "self"):
                parts = parts[1:]
            missing += [token] if any(p not in names and p != "py" for p in parts) else []
    assert not missing, f"reading-order.md names what the code does not have: {missing}"


def test_every_relative_link_in_the_docs_names_a_file_that_exists():
    # a renamed module leaves links like [numstyle/gatys_cli.py](../numstyle/gatys_cli.py) behind
    broken = []
    for path in [os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "*.md")):
        text = open(path, encoding="utf-8").read()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            target = target.split("#")[0]
            if not re.fullmatch(r"[\w./-]+\.\w+", target) or re.match(r"[a-z]+:", target):
                continue                # an anchor, http:, or LaTeX such as ](g_0+g_2)
            if not os.path.exists(os.path.join(os.path.dirname(path), target)):
                broken.append(f"{os.path.relpath(path, ROOT)}: {target}")
    assert not broken, broken


def test_source_lines_are_at_most_100_characters():
    # habit 11 of the project: lines <= 100 characters, in the library, its tests, examples,
    # benchmarks and CI scripts alike
    long = []
    for folder in ("numstyle", "tests", "examples", "benchmarks", ".ci"):
        for path in glob.glob(os.path.join(ROOT, folder, "**", "*"), recursive=True):
            if not path.endswith((".py", ".sh")) and os.path.basename(path) != "run":
                continue
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                if len(line.rstrip("\n")) > 100:
                    long.append(f"{os.path.relpath(path, ROOT)}:{n}")
    assert not long, f"lines over 100 characters: {long}"
