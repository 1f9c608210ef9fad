r"""Image I/O and VGG preprocessing, in one place.

VGG (Caffe/Keras weights) expects BGR images in 0..255 with the ImageNet mean
subtracted, laid out NCHW:

.. math::  x_{c} = \mathrm{rgb}_{\pi(c)} - \mu_c, \quad \pi = (B, G, R),\;
           \mu = (103.939, 116.779, 123.68)                                      \tag{I1}

Pixel bounds for the optimiser follow: :math:`-\mu_c \le x_c \le 255 - \mu_c`.
"""
import functools
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import ImageError
from .files import atomic_path, check_input
from .image16 import png16, tiff16

MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def load_image(path, size=None, what="image"):
    """Read any image file as float32 RGB in 0..255, shape (H, W, 3).

    Greyscale, palette, RGBA (composited on white), CMYK and 16-bit images are
    converted, not rejected. ``size`` resizes so that the longer side is
    ``size`` pixels (aspect ratio kept, Lanczos). Only regular files are read
    (a FIFO would block forever).
    """
    check_input(path, what, ImageError)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            rgb = to_rgb_array(img)
    except Image.DecompressionBombError as e:                 # Pillow's guard: ~179 megapixels
        raise ImageError(f"{what} is too large to read: {path} ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise unreadable_image(what, path, e) from None
    if size is not None:
        rgb = resize(rgb, longer_side=size)
    return rgb


def unreadable_image(what, path, e):
    """The one-line ImageError for a file Pillow could not read: with Pillow's reason where it
    says one without repeating the path (``image file is truncated``), else the error's kind."""
    text = str(e).splitlines()[0][:100] if str(e) else ""
    known = text and str(path) not in text and not isinstance(e, UnidentifiedImageError)
    return ImageError(f"{what} is not a readable image: {path} "
                      f"({text if known else type(e).__name__})")


def image_size(path, what="image"):
    """``(height, width, frames)`` of an image file from its header, nothing decoded.

    For estimates made before the work (memory): the area, the one that matters, does not
    depend on the EXIF rotation :func:`load_image` applies. Same one-line errors as
    :func:`load_image` for a file that is not an image.
    """
    check_input(path, what, ImageError)
    try:
        with warnings.catch_warnings():  # a large image: load_image warns, if it comes to that
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.size[1], img.size[0], int(getattr(img, "n_frames", 1) or 1)
    except Image.DecompressionBombError as e:
        raise ImageError(f"{what} is too large to read: {path} ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise unreadable_image(what, path, e) from None


def resized_shape(hw, longer_side):
    """``(H, W)`` scaled so that the longer side is ``longer_side`` (as :func:`resize` does)."""
    H, W = hw
    scale = longer_side / max(H, W)
    return max(1, round(H * scale)), max(1, round(W * scale))


def to_rgb_array(img):
    """PIL image in any mode -> float32 (H, W, 3) RGB in 0..255."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):          # 16-bit / 32-bit greyscale
        a = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a * (255.0 / top), 0, 255)
        return np.repeat(a[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return np.asarray(img.convert("RGB"), dtype=np.float32)


def resize(rgb, longer_side=None, shape=None):
    """Resize float RGB (H, W, 3) to a longer side or an exact (H, W), Lanczos."""
    H, W = rgb.shape[:2]
    if shape is None:
        shape = resized_shape((H, W), longer_side)
    if tuple(shape) == (H, W):
        return rgb
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.asarray(img.resize((shape[1], shape[0]), Image.LANCZOS), dtype=np.float32)


def preprocess(rgb):
    """(H, W, 3) RGB 0..255 -> (1, 3, H, W) BGR minus the mean (I1), float32."""
    bgr = rgb[:, :, ::-1] - MEAN_BGR                                # (H, W, 3)   (I1)
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None], dtype=np.float32)   # (1, 3, H, W)


def deprocess(x):
    """Inverse of :func:`preprocess`: (1, 3, H, W) -> uint8 RGB (H, W, 3), clipped."""
    bgr = np.asarray(x, dtype=np.float32)[0].transpose(1, 2, 0) + MEAN_BGR   # (H, W, 3)
    return np.clip(bgr[:, :, ::-1], 0, 255).round().astype(np.uint8)


def rgb_to_vgg(x):
    """A batch (N, 3, H, W) RGB 0..255 -> VGG input: BGR minus the mean (I1), on any device."""
    bgr = x[:, ::-1].copy()                                                          # (N, 3, H, W)
    for c, mean in enumerate(MEAN_BGR):  # scalars: no host -> device copy
        bgr[:, c] -= mean                                                            # (I1)
    return bgr


def vgg_grad_to_rgb(dx):
    """Adjoint of :func:`rgb_to_vgg`: the channel flip, undone (the mean is a constant)."""
    return dx[:, ::-1]                                                               # (I1)


def pixel_bounds(shape):
    """Lower/upper bounds of preprocessed pixels for an NCHW ``shape``, float64."""
    lo = np.broadcast_to((-MEAN_BGR).reshape(1, 3, 1, 1), shape).astype(np.float64)
    return lo, lo + 255.0


def image_format(path):
    """Pillow's format name for ``path``'s extension (none: PNG).

    ImageError for an extension Pillow does not know, or a format it reads but cannot write as
    RGB (.psd, .xpm, .fits, .cur, .msp, .xbm): found before the work, not after it.
    """
    ext = os.path.splitext(path)[1].lower() or ".png"
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ImageError(f"cannot write {path}: unknown image extension {ext!r} (use .png, .jpg, "
                         ".tif, .webp, ...)")
    if not _writes_rgb(fmt):
        raise ImageError(f"cannot write {path}: Pillow reads {ext} images but cannot write them "
                         "(use .png, .jpg, .tif, .webp, ...)")
    return fmt


@functools.lru_cache(maxsize=None)
def _writes_rgb(fmt):
    """Whether Pillow can write an RGB image as ``fmt``: tried on one pixel, in memory."""
    try:
        Image.new("RGB", (1, 1)).save(io.BytesIO(), format=fmt)
    except Exception:  # noqa: BLE001 -- plugins fail in many ways (KeyError, OSError, ...)
        return False
    return True


def save_image(path, rgb, icc_profile=None, text=None):
    """Write RGB atomically: a temporary file in the same folder, then rename.

    ``rgb`` (H, W, 3): uint8, or uint16 for a 16-bit PNG or TIFF (:func:`to_bit_depth`; written
    by :mod:`numstyle.image16`). ``icc_profile``: bytes to embed (the input's, so that its colours
    mean the same), for the formats that hold one (PNG, TIFF, JPEG, WebP). ``text``:
    ``{key: value}`` written as PNG text chunks (other formats: ignored), e.g. the fingerprint a
    batch skips a finished output by (:mod:`numstyle.batch`).
    """
    fmt = image_format(path)
    rgb = np.asarray(rgb)
    text = text if fmt == "PNG" else None
    if rgb.dtype == np.uint16:
        check_bit_depth(path, 16)
        data = png16(rgb, icc_profile, text) if fmt == "PNG" else tiff16(rgb, icc_profile)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(data)
        return path
    extra = {"icc_profile": icc_profile} if icc_profile and fmt in PROFILE_FORMATS else {}
    if text:
        extra["pnginfo"] = png_text(text)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(f, format=fmt, **extra)
    return path


PROFILE_FORMATS = {"PNG", "TIFF", "JPEG", "WEBP"}   # formats Pillow writes an ICC profile into
DEEP_FORMATS = {"PNG", "TIFF"}                      # formats written with 16 bits per sample


def to_bit_depth(rgb, bit_depth=8):
    """Float RGB 0..255 -> uint8, rounded; or for ``bit_depth`` 16, uint16 0..65535 (x 257, so
    that 255 is 65535), rounded: the precision the float result has, kept."""
    rgb = np.clip(rgb, 0, 255)
    if bit_depth == 16:
        return np.rint(rgb * 257.0).astype(np.uint16)
    return np.rint(rgb).astype(np.uint8)


def check_bit_depth(path, bit_depth):
    """ImageError, before the work, if ``path``'s format cannot take ``bit_depth`` (16: PNG and
    TIFF only)."""
    if bit_depth == 16 and image_format(path) not in DEEP_FORMATS:
        raise ImageError(f"cannot write {path} with 16 bits per sample: --bit-depth 16 writes "
                         ".png and .tif/.tiff files")


def icc_profile(path):
    """The RGB ICC colour profile embedded in an image file (bytes), or None; from its header.

    numstyle computes on the file's pixel values as they are (no conversion to sRGB) and gives
    the output the input's profile, so that a viewer shows its colours as the input's. Only a
    profile of an RGB colour space is kept (bytes 16-19 of its header, ``'RGB '``): a CMYK or
    greyscale photo is converted to RGB as it is read, and its profile would not describe the
    output.
    """
    try:
        with warnings.catch_warnings():  # a large image: load_image warns, if it comes to that
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                profile = img.info.get("icc_profile") or b""
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, SyntaxError,
            ValueError):
        return None
    return profile if profile[16:20] == b"RGB " else None


def png_text(text):
    """``{key: value}`` as Pillow's PNG text chunks."""
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, str(value))
    return info
