"""16-bit RGB PNG and TIFF files, which Pillow reads but cannot write: the encoders, in NumPy.

Each takes uint16 RGB (H, W, 3) and an optional ICC profile (bytes) and returns the file's bytes;
:func:`numstyle.image.save_image` writes them atomically. Both are the formats' plainest forms,
which every reader takes:

- **PNG** (ISO/IEC 15948): colour type 2 (RGB), bit depth 16, samples big-endian, every row with
  the ``Sub`` filter (each byte minus the byte of the pixel to its left, modulo 256), one zlib
  stream; the profile in an ``iCCP`` chunk and any text in ``tEXt`` chunks before the image data.
- **TIFF** 6.0: little-endian, one strip, chunky RGB, 16 bits per sample, Adobe Deflate (8)
  compression; the profile as tag 34675 (InterColorProfile).
"""
import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind, data):
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png16(rgb16, icc_profile=None, text=None):
    """The bytes of a 16-bit RGB PNG of ``rgb16`` (H, W, 3) uint16; ``text`` ``{key: value}``
    as Latin-1 ``tEXt`` chunks."""
    H, W, _ = rgb16.shape
    raw = np.ascontiguousarray(rgb16, dtype=">u2").view(np.uint8).reshape(H, W * 6)
    rows = np.empty((H, 1 + W * 6), np.uint8)
    rows[:, 0] = 1                                            # filter type 1: Sub
    rows[:, 1:7] = raw[:, :6]
    rows[:, 7:] = raw[:, 6:] - raw[:, :-6]                    # uint8: modulo 256
    header = struct.pack(">IIBBBBB", W, H, 16, 2, 0, 0, 0)    # depth 16, RGB, no interlace
    chunks = [png_chunk(b"IHDR", header)]
    if icc_profile:
        chunks.append(png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
    for key, value in (text or {}).items():
        chunks.append(png_chunk(b"tEXt", key.encode("latin-1") + b"\x00"
                                + str(value).encode("latin-1", "replace")))
    chunks += [png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)), png_chunk(b"IEND", b"")]
    return PNG_SIGNATURE + b"".join(chunks)


SHORT, LONG, RATIONAL, UNDEFINED = 3, 4, 5, 7       # TIFF field types


def tiff16(rgb16, icc_profile=None):
    """The bytes of a 16-bit RGB TIFF of ``rgb16`` (H, W, 3) uint16."""
    H, W, _ = rgb16.shape
    strip = zlib.compress(np.ascontiguousarray(rgb16, dtype="<u2").tobytes(), 6)
    extra = []                                    # values longer than 4 bytes, after the strip

    def value(data):
        extra.append(data)
        return data

    bits, dpi = value(struct.pack("<3H", 16, 16, 16)), value(struct.pack("<2I", 72, 1))
    tags = [(256, LONG, 1, W), (257, LONG, 1, H), (258, SHORT, 3, bits),
            (259, SHORT, 1, 8),                   # Adobe Deflate
            (262, SHORT, 1, 2),                   # RGB
            (273, LONG, 1, "strip"), (277, SHORT, 1, 3), (278, LONG, 1, H),
            (279, LONG, 1, len(strip)), (282, RATIONAL, 1, dpi), (283, RATIONAL, 1, dpi),
            (284, SHORT, 1, 1),                   # chunky: RGBRGB...
            (296, SHORT, 1, 2)]                   # inches
    if icc_profile:
        tags.append((34675, UNDEFINED, len(icc_profile), value(icc_profile)))
    ifd_size = 2 + 12 * len(tags) + 4
    offset = 8 + ifd_size                         # header, directory, then the strip
    strip_at, offset = offset, offset + len(strip) + len(strip) % 2
    where = {}
    for data in extra:
        if id(data) not in where:
            where[id(data)], offset = offset, offset + len(data) + len(data) % 2
    entries = []
    for tag, kind, count, v in tags:
        if v == "strip":
            v = strip_at
        elif isinstance(v, bytes):
            v = where[id(v)]
        packed = struct.pack("<H", v) + b"\0\0" if kind == SHORT and count == 1 else \
            struct.pack("<I", v)
        entries.append(struct.pack("<HHI", tag, kind, count) + packed)
    out = [b"II*\0" + struct.pack("<I", 8), struct.pack("<H", len(tags)), *entries,
           struct.pack("<I", 0), strip + b"\0" * (len(strip) % 2)]
    seen = set()
    for data in extra:
        if id(data) not in seen:
            seen.add(id(data))
            out.append(data + b"\0" * (len(data) % 2))
    return b"".join(out)
