"""Where data lives: local folders, the user cache, and hash-checked downloads.

Search order (DESIGN.md, "Data and weights"): ``$NUMSTYLE_DATA/<sub>``, the
user cache ``~/.cache/numstyle/<sub>`` (``$XDG_CACHE_HOME`` respected), then --
for weights -- Keras' cache ``~/.keras/models``; only then a download into the
user cache, with a progress bar and a hash check. ``NUMSTYLE_NO_DOWNLOAD=1``
turns downloads off.
"""
import hashlib
import os
import urllib.request

from .errors import NumstyleError

_NEURAL_STYLE = "https://raw.githubusercontent.com/jcjohnson/neural-style/master/examples/inputs/"
SAMPLE_IMAGES = {
    "tubingen.jpg": ("content", "e67d1869f01fd805385c681a80d9ebcf0f70ea4a5fe6127f0606bb1c7f4bf506"),
    "starry_night.jpg": ("style",
                         "0592ab0f7b51b3ce72608a95e53880bd93971e5b48f93a0ce8dfd3cbccf3d098"),
}


def cache_dir():
    """The user cache where downloads go: $XDG_CACHE_HOME/numstyle or ~/.cache/numstyle."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "numstyle")


def search_dirs(sub):
    """Local folders searched for ``sub`` ('weights', 'images/content', ...), in order."""
    dirs = []
    if os.environ.get("NUMSTYLE_DATA"):
        dirs.append(os.path.join(os.environ["NUMSTYLE_DATA"], sub))
    dirs.append(os.path.join(cache_dir(), sub))
    if sub == "weights":
        dirs.append(os.path.join(os.path.expanduser("~"), ".keras", "models"))
    return dirs


def find_local(sub, names):
    """First existing ``dir/name`` over :func:`search_dirs` and ``names``, or None."""
    for d in search_dirs(sub):
        for name in names:
            path = os.path.join(d, name)
            if os.path.isfile(path):
                return path
    return None


def sample_image(name):
    """Path of a sample image (``tubingen.jpg``, ``starry_night.jpg``), downloading it once if
    needed."""
    kind, sha256 = SAMPLE_IMAGES[name]
    sub = f"images/{kind}"
    found = find_local(sub, [name])
    if found:
        return found
    dest = os.path.join(cache_dir(), sub, name)
    fetch(_NEURAL_STYLE + name, dest, sha256=sha256, what=f"sample image {name}",
          looked=search_dirs(sub), hint="give an image of your own")
    return dest


def fetch(url, dest, md5=None, sha256=None, what="file", looked=(), hint=""):
    """Download with a one-line :class:`NumstyleError` that says where we looked and what to do."""
    where = ", ".join(looked)
    data = os.environ.get("NUMSTYLE_DATA")
    # its place under a data folder: weights/..., images/...
    file = os.path.relpath(dest, cache_dir())
    todo = (f"{hint}, or put {file} under NUMSTYLE_DATA ({data})" if data
            else f"{hint}, or set NUMSTYLE_DATA")
    if os.environ.get("NUMSTYLE_NO_DOWNLOAD"):
        raise NumstyleError(
            f"{what} not found (looked in {where}) and downloads are off (NUMSTYLE_NO_DOWNLOAD); "
            f"{todo}"
        )
    try:
        download(url, dest, md5=md5, sha256=sha256)
    except (OSError, ValueError) as e:
        raise NumstyleError(
            f"{what} not found (looked in {where}) and the download failed ({e}); {todo}") from None
    return dest


def download(url, dest, md5=None, sha256=None, timeout=20):
    """Download ``url`` to ``dest`` atomically with a progress bar, checking its md5 or sha256."""
    from tqdm import tqdm

    os.makedirs(os.path.dirname(dest), exist_ok=True)
    h = hashlib.md5() if md5 else hashlib.sha256()
    tmp = dest + ".part"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True,
                      desc=f"downloading {os.path.basename(dest)}") as bar:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        expected = md5 or sha256
        if expected and h.hexdigest() != expected:
            raise ValueError(f"hash mismatch: got {h.hexdigest()}, expected {expected}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest
