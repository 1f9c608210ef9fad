"""The docs stay true: equation tags match between code and docs, and doc snippets run."""
import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = re.compile(r"\((?:GC|CC|K|CV|W|RP|R|P|C|SR|S|TV|TL|T|VD|V|G|I|A|J|L|N|Q|U)\d+\)")


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
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        text = open(path, encoding="utf-8").read()
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
            yield pytest.param(block, id=f"{os.path.basename(path)}-{i}")


@pytest.mark.parametrize("code", list(_snippets()))
def test_doc_snippet_runs(code, tmp_path):
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"snippet failed:\n{code}\n--- stderr ---\n{r.stderr[-2000:]}"
