r"""Inputs and outputs of ``numstyle stylize`` / ``upscale``: images, animated GIFs, videos and
folders of frames, each read as a list of RGB frames and written back in the same form.

Videos are read and written through ``imageio`` with its ffmpeg plugin, an optional extra
(``pip install 'numstyle[video]'``); a folder of frames needs nothing extra.

A feed-forward network stylises each frame on its own, so small changes of the input (sensor
noise, compression) become visible flicker. ``--deflicker S`` blends each stylised frame towards
the previous one where the input did not change:

.. math::  w = S\, e^{-(\Delta / \tau)^2},
           \qquad \hat y_t \leftarrow w\, \hat y_{t-1} + (1 - w)\, \hat y_t             \tag{VD1}

with :math:`\Delta` the per-pixel mean absolute change of the input frame and :math:`\tau` = 12
grey levels. Flicker is measured as the mean absolute change between consecutive output frames:

.. math::  \mathrm{flicker}
           = \frac{1}{T - 1} \sum_t \mathrm{mean}\, |\hat y_t - \hat y_{t-1}|           \tag{VD2}
"""
import collections
import os
import re

import numpy as np
from PIL import Image, ImageSequence

from ..errors import NumstyleError
from ..files import atomic_path
from ..image import (IMAGE_EXTS, icc_profile, load_image, resize, save_image, to_rgb_array,
                     unreadable_image)

VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}


def read_media(path, size=None):
    """Frames (float RGB) of an image, GIF, video or folder, and ``meta`` to write them back."""
    if os.path.isdir(path):
        frames, names = read_folder(path, size)
        return frames, {"kind": "folder", "names": names}
    if not os.path.isfile(path):
        raise NumstyleError(f"input not found: {path}")
    if is_video(path):
        frames, fps = read_video(path, size)
        return frames, {"kind": "video", "fps": fps}
    if os.path.splitext(path)[1].lower() == ".gif":
        frames, durations = read_gif(path, size)
        return frames, {"kind": "gif", "durations": durations}
    return [load_image(path, size, "input image")], {"kind": "image", "icc": icc_profile(path)}


def write_media(path, frames, meta, text=None):
    """Write uint8 frames (uint16: 16-bit images) in the form ``meta`` describes (see
    :func:`read_media`); an image keeps the input's ICC profile, ``meta['icc']``.

    ``text``: ``{key: value}`` stamped on each PNG written (text chunks) and on a GIF (its
    comment, ``key=value``); a video carries none.
    """
    kind = meta["kind"]
    if kind == "folder":
        return write_folder(path, meta["names"], frames, text)
    if kind == "video":
        return write_video(path, frames, meta["fps"])
    if kind == "gif" and os.path.splitext(path)[1].lower() == ".gif":
        return write_gif(path, frames, meta["durations"], text)
    if len(frames) > 1:                                   # output_path refuses this before the work
        raise NumstyleError(
            f"cannot write {len(frames)} frames to the image {path}: give a .gif name or a folder")
    return save_image(path, frames[0], meta.get("icc"), text)


def output_path(src, out, suffix, many=False):
    """Where the result of ``src`` goes: ``out`` itself when it is a file name (one input), else
    ``<out>/<name>_<suffix>`` in the input's own form (default folder ``out/``).

    Raises NumstyleError, before any work, for a file name that cannot hold the result: several
    inputs or a folder of frames (they need a folder), an animated GIF without ``.gif``, a video
    without a video extension, an image without an image extension.
    """
    kind = input_kind(src)
    if out and os.path.splitext(out)[1] and not os.path.isdir(out):           # a file name
        ext = os.path.splitext(out)[1].lower()
        if many:
            raise NumstyleError(
                f"--out {out}: several inputs need a folder for --out, not a file name")
        if kind == "folder":
            raise NumstyleError(
                f"--out {out}: a folder of frames needs a folder name for --out, not a file name")
        if kind == "video" and ext not in VIDEO_EXTS:
            raise NumstyleError(f"--out {out}: a video input needs a video file name "
                                f"({', '.join(sorted(VIDEO_EXTS))}) or a folder")
        if kind == "gif" and ext != ".gif":
            raise NumstyleError(
                f"--out {out}: an animated GIF input needs a .gif file name or a folder")
        if kind == "image" and ext not in IMAGE_EXTS:
            raise NumstyleError(
                f"--out {out}: an image input needs an image file name (.png, .jpg, ...) "
                "or a folder")
        return out
    name = os.path.basename(os.path.normpath(src))
    if kind == "folder":
        return os.path.join(out or "out", f"{name}_{suffix}")
    stem, ext = os.path.splitext(name)
    ext = ext if kind == "video" else ".gif" if ext.lower() == ".gif" else ".png"
    return os.path.join(out or "out", f"{stem}_{suffix}{ext}")


def output_paths(inputs, out, suffix):
    """:func:`output_path` of every input, checked before any work, made distinct: a second
    input named like an earlier one (``a/x.jpg``, ``b/x.jpg``) gets ``x_<suffix>_2.png``, so
    that no result overwrites another."""
    def key(path):
        return os.path.normcase(os.path.abspath(path))

    paths, taken = [], set()
    for src in inputs:
        path = first = output_path(src, out, suffix, many=len(inputs) > 1)
        base, ext = (first, "") if os.path.isdir(src) else os.path.splitext(first)
        n = 1
        while key(path) in taken:
            n += 1
            path = f"{base}_{n}{ext}"
        paths.append(path)
        taken.add(key(path))
    return paths


def has_frames(path):
    """Whether ``path`` is frames in order -- a folder, a video or an animated GIF -- not one
    image."""
    return input_kind(path) != "image"


def input_kind(path):
    """'folder', 'video', 'gif' (an animated GIF) or 'image' (a still GIF too): the form of the
    result."""
    if os.path.isdir(path):
        return "folder"
    if is_video(path):
        return "video"
    if os.path.splitext(path)[1].lower() == ".gif":
        if not os.path.isfile(path):  # a FIFO would block Image.open: read_media says so
            return "image"
        try:
            with Image.open(path) as im:
                return "gif" if getattr(im, "is_animated", False) else "image"
        except OSError:  # not an image at all, whatever its name: read_media says so
            return "image"
    return "image"


def read_gif(path, size=None):
    """All frames of a GIF as RGB float arrays, and their durations (ms)."""
    try:
        with Image.open(path) as im:
            frames, durations = [], []
            for frame in ImageSequence.Iterator(im):
                rgb = to_rgb_array(frame.convert("RGBA"))
                frames.append(resize(rgb, longer_side=size) if size else rgb)
                durations.append(frame.info.get("duration", 100))
    except OSError as e:
        raise unreadable_image("input image", path, e) from None
    return frames, durations


def write_gif(path, frames, durations=None, text=None):
    """Write an animated GIF atomically; ``text`` ``{key: value}`` as its comment."""
    images = [Image.fromarray(f) for f in frames]
    comment = {"comment": "\n".join(f"{k}={v}" for k, v in text.items())} if text else {}
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=durations or 100, loop=0, **comment)
    return path


def is_video(path):
    return os.path.splitext(path)[1].lower() in VIDEO_EXTS


def _imageio():
    try:
        import imageio.v3 as iio
        return iio
    except ImportError:
        raise NumstyleError("video files need imageio with ffmpeg: pip install 'numstyle[video]' "
                            "(or give a folder of frames)") from None


def read_video(path, size=None):
    """All frames of a video as float RGB arrays, and its frame rate."""
    iio = _imageio()
    try:
        fps = float(iio.immeta(path).get("fps") or 25.0)
        frames = [np.asarray(f, dtype=np.float32) for f in iio.imiter(path)]
    except Exception as e:  # imageio raises many kinds for bad files
        raise NumstyleError(f"cannot read video {path}: {str(e).splitlines()[0][:120]}") from None
    if not frames:
        raise NumstyleError(f"video {path} has no frames")
    frames = [f[..., :3] if f.ndim == 3 else np.repeat(f[..., None], 3, axis=2) for f in frames]
    return ([resize(f, longer_side=size) for f in frames] if size else frames), fps


def write_video(path, frames, fps):
    """Write uint8 frames as a video, atomically (a temporary file, then rename)."""
    iio = _imageio()
    # sizes must be even for yuv420p: pad by edge replication if needed
    frames = [
        np.pad(f, ((0, f.shape[0] % 2), (0, f.shape[1] % 2), (0, 0)), mode="edge") for f in frames
    ]
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), fps=fps, extension=os.path.splitext(path)[1],
                    macro_block_size=1)  # no resizing to 16 px blocks
    return path


def frame_names(folder):
    """The frames of a folder: its regular files with an image extension, hidden ones (``.name``,
    macOS's ``._name``) left out, in natural order (``9.png``, ``10.png``)."""
    names = [f for f in os.listdir(folder) if not f.startswith(".")
             and os.path.splitext(f)[1].lower() in IMAGE_EXTS
             and os.path.isfile(os.path.join(folder, f))]
    return sorted(names, key=natural_key)


def natural_key(name):
    """Sort key: the runs of digits compared as numbers (``frame9`` before ``frame10``), then the
    name itself (``01.png`` before ``1.png``)."""
    parts = re.split(r"(\d+)", name)        # text at even places, digit runs at odd ones
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], name


def frame_files(folder, names):
    """Where the result of each frame of ``names`` goes in the output ``folder``: ``<stem>.png``;
    frames whose stems are the same (``x.jpg``, ``x.png``) keep their extension, ``x_jpg.png``.
    Names that would still meet: NumstyleError."""
    stems = [os.path.splitext(n)[0] for n in names]
    shared = {s for s, k in collections.Counter(stems).items() if k > 1}
    files = [s + "_" + n[len(s) + 1:] if s in shared else s for s, n in zip(stems, names)]
    clash = [f for f, k in collections.Counter(files).items() if k > 1]
    if clash:
        raise NumstyleError(f"two frames would both be written as {clash[0]}.png in {folder}: "
                            "rename one of them")
    return [os.path.join(folder, f + ".png") for f in files]


def written_files(src, dst):
    """The files that writing ``src``'s result to ``dst`` creates or replaces: ``dst``, or for a
    folder of frames, each frame's file in the folder ``dst`` (for the output guard)."""
    if os.path.isdir(src):
        return frame_files(dst, frame_names(src))
    return [dst]


def read_folder(folder, size=None):
    """The images of a folder, sorted by name: (frames, names)."""
    names = frame_names(folder)
    if not names:
        raise NumstyleError(f"no image frames in folder {folder}")
    return [load_image(os.path.join(folder, n), size, "frame") for n in names], names


def write_folder(folder, names, frames, text=None):
    os.makedirs(folder, exist_ok=True)
    for path, frame in zip(frame_files(folder, names), frames):
        save_image(path, frame, text=text)
    return folder


def deflicker(prev_in, prev_out, cur_in, cur_out, strength, tau=12.0):
    """(VD1): blend ``cur_out`` towards ``prev_out`` where the input did not change."""
    return deflicker_blend(input_change(prev_in, cur_in), prev_out, cur_out, strength, tau)


def input_change(prev_in, cur_in):
    """(VD1)'s :math:`\\Delta`: the per-pixel mean absolute change of the input, (H, W, 1).

    Computed where the frames are (a batch's worker), so that the chain of (VD1), which needs
    the previous *output*, runs on the client in frame order across chunks of frames. None when
    the two frames differ in size (a folder of frames may mix sizes): a cut, nothing blended."""
    if np.shape(prev_in) != np.shape(cur_in):
        return None
    return np.abs(np.asarray(cur_in, np.float32) - np.asarray(prev_in, np.float32)).mean(
        axis=2, keepdims=True)


def deflicker_blend(change, prev_out, cur_out, strength, tau=12.0):
    """(VD1) given the input's change :func:`input_change` (None, a cut: ``cur_out`` as it is)."""
    if change is None:
        return cur_out
    w = strength * np.exp(-(change / tau) ** 2)                                       # (VD1)
    return w * prev_out + (1.0 - w) * cur_out


def flicker(frames):
    """(VD2): mean absolute change between consecutive frames (0..255 scale, 16-bit frames too);
    consecutive frames of different sizes (a cut) are not compared."""
    frames = [np.asarray(f, np.float32) / (257.0 if np.asarray(f).dtype == np.uint16 else 1.0)
              for f in frames]
    pairs = [(a, b) for a, b in zip(frames, frames[1:]) if a.shape == b.shape]
    if not pairs:
        return 0.0
    return float(np.mean([np.abs(b - a).mean() for a, b in pairs]))                  # (VD2)
