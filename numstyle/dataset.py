"""Training images: any folder, searched recursively; batches made in a background thread.

Batch ``i`` is a pure function of ``(seed, i)``: which files, which crops.
So a resumed run sees exactly the batches it would have seen, and a thread
can prepare batches ahead while the network trains.
"""
import os
import queue
import sys
import threading

import numpy as np

from .errors import ImageError, NumstyleError
from .image import IMAGE_EXTS, load_image, resize

FLAT_STD = 0.5  # grey levels: an image whose channels each vary less than this is one flat colour


def list_images(folder):
    """Every regular file with an image extension under ``folder``, sorted (deterministic).

    Linked sub-folders are followed, each folder walked once (a link back up is a loop, not more
    images); a FIFO or device named like an image is not a training image (reading it would
    block forever).
    """
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.exists(folder) else "not found"
        raise NumstyleError(f"training data folder {what}: {folder}")
    paths, walked = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        try:
            st = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in walked:  # reached again through a link
            dirs[:] = []
            continue
        walked.add((st.st_dev, st.st_ino))
        paths += [
            os.path.join(root, f) for f in files if os.path.splitext(f)[1].lower() in IMAGE_EXTS
            and os.path.isfile(os.path.join(root, f))
        ]
    if not paths:
        raise NumstyleError(
            f"no images found under {folder} (looked for {', '.join(sorted(IMAGE_EXTS))})")
    return sorted(paths)


def random_crop(rgb, size, rng):
    """Resize so the shorter side is ``size``, then crop a random ``size`` x ``size`` square."""
    H, W = rgb.shape[:2]
    scale = size / min(H, W)
    rgb = resize(rgb, shape=(max(size, round(H * scale)), max(size, round(W * scale))))
    H, W = rgb.shape[:2]
    top = int(rng.integers(0, H - size + 1))
    left = int(rng.integers(0, W - size + 1))
    return rgb[top:top + size, left:left + size]


def _nchw(batch):
    """(B, H, W, 3) -> contiguous float32 (B, 3, H, W)."""
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)


class Batches:
    """``batches[i]`` -> float32 (batch_size, 3, size, size) RGB 0..255, prefetched in a thread
    (a tuple of such arrays when ``transform`` returns tuples).

    Unreadable files, and images of one flat colour (a constant crop has zero
    variance: each instance norm would scale its gradient by 1/sqrt(eps) ~ 316,
    and a few layers of that overflow float32), are skipped with one warning
    each and replaced by the next usable file (deterministically, so resuming
    stays exact). ``paths``: the folder's images when already listed (:func:`list_images`).
    """

    def __init__(self, folder, size, batch_size, seed=0, transform=None, prefetch=3, warn=None,
                 paths=None):
        self.paths = list_images(folder) if paths is None else list(paths)
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.transform = transform or (lambda rgb, rng: random_crop(rgb, size, rng))
        self.bad = set()
        self.warn = warn or (lambda msg: print(msg, file=sys.stderr))
        self.prefetch = prefetch
        self._queue, self._thread, self._next = None, None, None

    def make(self, i):
        """Build batch ``i`` (no thread): a pure function of (seed, i) and the folder."""
        rng = np.random.default_rng([self.seed, i])
        picks = rng.integers(0, len(self.paths), self.batch_size)
        items = [self.transform(self._load(int(k)), rng) for k in picks]
        if isinstance(items[0], tuple):  # e.g. (HR, LR, bicubic-up) for super-resolution
            return tuple(_nchw(np.stack(parts)) for parts in zip(*items))
        return _nchw(np.stack(items))

    def _load(self, k):
        for step in range(len(self.paths)):
            path = self.paths[(k + step) % len(self.paths)]
            if path in self.bad:
                continue
            try:
                rgb = load_image(path, what="training image")
                if float(rgb.std(
                        axis=(0,
                              1)).max()) < FLAT_STD:  # per channel: instance norm would divide by 0
                    raise ImageError(
                        f"training image is one flat colour, nothing to learn from: {path}")
                return rgb
            except ImageError as e:
                self.bad.add(path)
                self.warn(f"numstyle: warning: skipped: {e}")
        raise NumstyleError(f"none of the {len(self.paths)} training images could be used")

    def __getitem__(self, i):
        """Batch ``i``; batches are expected in increasing order and prepared ahead in a thread."""
        if self._thread is None or i != self._next:
            self._start(i)
        self._next = i + 1
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def _start(self, first):
        self.close()
        self._queue = queue.Queue(maxsize=self.prefetch)
        self._stop = threading.Event()

        def work(stop=self._stop, q=self._queue):
            i = first
            while not stop.is_set():
                try:
                    item = self.make(i)
                except BaseException as e:                 # handed to the consumer, raised there
                    item = e
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                i += 1

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def close(self):
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
