"""Labelled figure grids (PNG) for the examples and experiments."""
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..image import resize


def grid(images, labels=None, cols=None, cell=None, pad=6, label_height=18, title=None):
    """Tile RGB images (H, W, 3) into one labelled uint8 image.

    Parameters
    ----------
    images : list of arrays (float 0..255 or uint8), any sizes (each is fitted into ``cell``)
    labels : list of str, optional, one per image
    cols : int, default: all in one row
    cell : (h, w), default: the largest image
    """
    cols = cols or len(images)
    rows = (len(images) + cols - 1) // cols
    cell = cell or (max(im.shape[0] for im in images), max(im.shape[1] for im in images))
    title_h = label_height + pad if title else 0
    H = title_h + rows * (cell[0] + label_height + pad) + pad
    W = cols * (cell[1] + pad) + pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if title:
        draw.text((pad, pad // 2), title, fill=(0, 0, 0), font=font)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        tile = Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8))
        tile.thumbnail((cell[1], cell[0]), Image.LANCZOS)
        x = pad + c * (cell[1] + pad) + (cell[1] - tile.width) // 2
        y = title_h + pad + r * (cell[0] + label_height + pad)
        canvas.paste(tile, (x, y + (cell[0] - tile.height) // 2))
        if labels:
            draw.text((pad + c * (cell[1] + pad), y + cell[0] + 2), str(labels[k]), fill=(0, 0, 0),
                      font=font)
    return np.asarray(canvas)


_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def plot(series, title, xlabel, ylabel, log_y=False, size=(640, 400)):
    """Line plot of ``{label: ys}`` (x = 1, 2, ...) or ``{label: (xs, ys)}`` as an image.

    A uint8 RGB (H, W, 3) image, drawn with Pillow only: axes, a few ticks, one coloured line
    per series and a legend. With ``log_y`` the y axis is logarithmic (values <= 0 are left out).
    """
    curves = {}
    for label, s in series.items():
        xs, ys = s if isinstance(s, tuple) else (range(1, len(s) + 1), s)
        pts = [(float(x), float(y)) for x, y in zip(xs, ys)
               if np.isfinite(y) and (y > 0 or not log_y)]
        curves[label] = [(x, np.log10(y) if log_y else y) for x, y in pts]
    allpts = [p for pts in curves.values() for p in pts] or [(0.0, 0.0), (1.0, 1.0)]
    x0, x1 = min(p[0] for p in allpts), max(p[0] for p in allpts)
    y0, y1 = min(p[1] for p in allpts), max(p[1] for p in allpts)
    if log_y:
        y0, y1 = np.floor(y0), np.ceil(y1)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    W, H = size
    left, right, top, bottom = 70, 20, 30, 45
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()

    def to_px(x, y):
        return (left + (x - x0) / (x1 - x0) * (W - left - right),
                H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom))

    for x in _nice_ticks(x0, x1):                                      # ticks: round numbers on x
        px, _ = to_px(x, y0)
        draw.line([px, H - bottom, px, H - bottom + 4], fill=(0, 0, 0))
        text = f"{x:.4g}"
        draw.text((px - 3 * len(text), H - bottom + 6), text, fill=(0, 0, 0), font=font)
    yticks = np.arange(y0, y1 + 0.5) if log_y and y1 - y0 <= 12 else np.linspace(y0, y1, 6)
    for y in yticks:
        _, py = to_px(x0, y)
        draw.line([left - 4, py, left, py], fill=(0, 0, 0))
        draw.line([left + 1, py, W - right - 1, py], fill=(230, 230, 230))
        draw.text((4, py - 6), f"1e{int(round(y))}" if log_y else f"{y:.3g}", fill=(0, 0, 0),
                  font=font)
    draw.rectangle([left, top, W - right, H - bottom], outline=(0, 0, 0))
    for k, (label, pts) in enumerate(curves.items()):
        color = _COLORS[k % len(_COLORS)]
        if len(pts) > 1:
            draw.line([to_px(x, y) for x, y in pts], fill=color, width=2)
        elif pts:
            px, py = to_px(*pts[0])
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=color)
        ly = top + 6 + 14 * k                                          # legend, top right
        draw.line([W - right - 150, ly + 6, W - right - 130, ly + 6], fill=color, width=2)
        draw.text((W - right - 125, ly), str(label), fill=(0, 0, 0), font=font)
    draw.text(((left + W - right) // 2 - 3 * len(title), 8), title, fill=(0, 0, 0), font=font)
    draw.text(((left + W - right) // 2 - 3 * len(xlabel), H - 18), xlabel, fill=(0, 0, 0),
              font=font)
    draw.text((4, 8), ylabel + (" (log)" if log_y else ""), fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def _nice_ticks(lo, hi, n=5):
    """Round tick positions (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    raw = (hi - lo) / n
    step = 10 ** np.floor(np.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    return [
        t for t in np.arange(np.ceil(lo / step) * step, hi + step / 2, step)
        if lo - 1e-9 <= t <= hi + 1e-9
    ]


def figure(rows, title, min_side=128, label_height=30):
    """Rows of ``(image, label)`` -> one labelled grid (uint8 RGB).

    Short rows are padded with blank cells. Images smaller than ``min_side`` (quick runs) are
    enlarged so that labels fit under them.
    """
    cols = max(len(r) for r in rows)
    images, labels = [], []
    for row in rows:
        for im, label in list(row) + [(None, "")] * (cols - len(row)):
            if im is None:
                im = np.full((1, 1, 3), 255, np.uint8)  # invisible on the white canvas
            elif max(im.shape[:2]) < min_side:
                im = resize(np.asarray(im, np.float32), longer_side=min_side)
            images.append(im)
            labels.append(label)
    return grid(images, labels, cols=cols, title=title, label_height=label_height)


def stack(top, bottom):
    """Two uint8 RGB images one above the other, the narrower padded with white."""
    W = max(top.shape[1], bottom.shape[1])
    pad = lambda im: np.pad(im, ((0, 0), (0, W - im.shape[1]),
                                 (0, 0)), constant_values=255)  # noqa: E731
    return np.vstack([pad(top), pad(bottom)])
