"""A contact sheet: one photo beside its stylisations, each tile labelled, on a white page."""
import numpy as np
from PIL import Image, ImageDraw, ImageFont

GAP = 8                 # px between tiles and around the page
WHITE, INK = (255, 255, 255), (20, 20, 20)


def label_font(tile_width):
    """Pillow's default font, sized to the tiles (its bitmap font where FreeType is missing)."""
    return ImageFont.load_default(size=max(10, min(24, tile_width // 12)))


def contact_sheet(tiles, labels, columns):
    """Tiles in rows of ``columns``, each with its label underneath.

    Parameters
    ----------
    tiles : list of uint8 ndarray, each (H_i, W_i, 3)
        RGB pictures; each cell is as large as the largest tile, which sits at its top left.
    labels : list of str, one per tile
    columns : int

    Returns
    -------
    sheet : uint8 ndarray, shape (rows (H + label + GAP) + GAP, columns (W + GAP) + GAP, 3)
    boxes : list of (top, left), where each tile was put
    """
    H = max(t.shape[0] for t in tiles)
    W = max(t.shape[1] for t in tiles)
    font = label_font(W)
    left, top, right, bottom = font.getbbox("Ag_|")
    strip = bottom - min(top, 0) + GAP // 2                      # room for a line of text
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    page = Image.new("RGB", (GAP + columns * (W + GAP), GAP + rows * (H + strip + GAP)), WHITE)
    draw = ImageDraw.Draw(page)
    boxes = []
    for i, (tile, text) in enumerate(zip(tiles, labels)):
        y = GAP + (i // columns) * (H + strip + GAP)
        x = GAP + (i % columns) * (W + GAP)
        page.paste(Image.fromarray(np.asarray(tile, np.uint8)), (x, y))
        draw.text((x, y + H + GAP // 4), fit(draw, text, font, W), fill=INK, font=font)
        boxes.append((y, x))
    return np.asarray(page), boxes


def fit(draw, text, font, width):
    """``text``, cut with an ellipsis where it is wider than ``width`` px."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."
