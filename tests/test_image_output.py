"""What a photographer's file keeps: 16-bit PNG and TIFF output (``--bit-depth 16``), the input's
ICC profile, EXIF orientation honoured on input; and ``stylize --strength``.

The 16-bit files are decoded here from the format specifications (Pillow reads them only as
8-bit), and cross-checked with Pillow's 8-bit reading of the same files."""
import functools
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from numstyle import image, image16, models, sr, stylize, transformer
from numstyle.cli import main

from conftest import assert_one_line_error

ORIENTATION = 0x0112


def read_png16(path):
    """A 16-bit RGB PNG's samples, uint16 (H, W, 3): chunks, zlib, then each row's filter undone
    (None, Sub, Up: what an encoder of whole rows uses)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == struct.unpack(
            ">I", data[pos + 8 + n:pos + 12 + n])[0]
        header = struct.unpack(">IIBBBBB", body) if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + n
    W, H, depth, colour = header[:4]
    assert (depth, colour) == (16, 2), "not 16-bit RGB"
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(H, 1 + 6 * W)
    out = np.zeros((H, 6 * W), np.uint8)
    for i, row in enumerate(rows):
        kind, line = row[0], row[1:].astype(np.int64)
        if kind == 1:                              # Sub: add the decoded byte 6 to the left
            line = line.reshape(W, 6).cumsum(axis=0).reshape(-1)
        elif kind == 2:
            line = line + (out[i - 1] if i else 0)
        else:
            assert kind == 0, f"filter {kind}"
        out[i] = line % 256
    return out.view(">u2").reshape(H, W, 3).astype(np.uint16)


def read_tiff16(path):
    """A 16-bit RGB TIFF's samples (little-endian, one strip, none or Deflate)."""
    data = open(path, "rb").read()
    assert data[:4] == b"II*\0"
    ifd = struct.unpack("<I", data[4:8])[0]
    tags = {}
    for i in range(struct.unpack("<H", data[ifd:ifd + 2])[0]):
        tag, kind, count, raw = struct.unpack("<HHI4s", data[ifd + 2 + 12 * i:ifd + 14 + 12 * i])
        if kind == 3 and count == 1:
            tags[tag] = struct.unpack("<H", raw[:2])[0]
        elif kind == 3 and count == 3:
            at = struct.unpack("<I", raw)[0]
            tags[tag] = struct.unpack("<3H", data[at:at + 6])
        else:
            tags[tag] = struct.unpack("<I", raw)[0]
    W, H = tags[256], tags[257]
    assert tags[258] == (16, 16, 16) and tags[262] == 2 and tags[277] == 3
    strip = data[tags[273]:tags[273] + tags[279]]
    strip = zlib.decompress(strip) if tags[259] == 8 else strip
    return np.frombuffer(strip, "<u2").reshape(H, W, 3).astype(np.uint16)


READERS = {".png": read_png16, ".tif": read_tiff16}


@functools.lru_cache(maxsize=None)
def profile():
    """A real ICC profile (Pillow's sRGB), as a camera or editor would embed it (made once: it
    holds its creation time)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture
def tagged_photo(tmp_path):
    """A photo with an ICC profile, stored on its side: EXIF orientation 6 (turn 90 degrees
    clockwise to view), as a phone writes a portrait. Returns (path, the upright pixels)."""
    rgb = np.random.default_rng(3).integers(0, 256, (22, 34, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    path = tmp_path / "phone.png"
    Image.fromarray(rgb).save(path, icc_profile=profile(), exif=exif)
    return str(path), np.rot90(rgb, k=-1)           # upright: 22 wide, 34 tall


def test_the_encoders_round_trip_and_pillow_reads_them(tmp_path):
    rgb16 = np.random.default_rng(0).integers(0, 65536, (9, 13, 3)).astype(np.uint16)
    for ext, encode in ((".png", image16.png16), (".tif", image16.tiff16)):
        path = tmp_path / f"x{ext}"
        path.write_bytes(encode(rgb16, profile()))
        assert (READERS[ext](path) == rgb16).all()
        with Image.open(path) as im:             # Pillow: the high bytes, and the profile
            assert (np.asarray(im) == rgb16 >> 8).all()
            assert im.info["icc_profile"] == profile()


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_stylize_writes_16_bits_with_the_profile_upright(ext, tmp_path, tagged_photo,
                                                         style_model, capsys):
    path, upright = tagged_photo
    out16, out8 = str(tmp_path / f"o16{ext}"), str(tmp_path / f"o8{ext}")
    assert main(["stylize", "--model", style_model, path, "--out", out16, "--bit-depth", "16",
                 "--no-progress"]) == 0
    assert main(["stylize", "--model", style_model, path, "--out", out8, "--no-progress"]) == 0
    deep = READERS[ext](out16)
    params, config, state = models.load_model(style_model)
    want = np.rint(np.clip(stylize.stylize_array(params, config, state,
                                                 upright.astype(np.float32)), 0, 255) * 257)
    assert deep.shape == upright.shape                     # upright: EXIF orientation applied
    assert np.abs(deep - want).max() <= 2                  # the float result, to 1/257 level
    eight = np.asarray(Image.open(out8), np.float64)
    assert np.abs(deep / 257.0 - eight).max() <= 0.5 + 1e-9   # the same picture, finer
    assert len(np.unique(deep % 257)) > 10                 # not 8-bit values stretched
    for out in (out16, out8):
        with Image.open(out) as im:
            assert im.info["icc_profile"] == profile()


def test_strength_zero_is_the_photo_one_the_plain_output(tmp_path, tagged_photo, style_model,
                                                         capsys):
    path, upright = tagged_photo
    outs = {s: str(tmp_path / f"s{s}.png") for s in ("0", "0.5", "1", "plain")}
    for s, out in outs.items():
        flags = [] if s == "plain" else ["--strength", s]
        assert main(["stylize", "--model", style_model, path, "--out", out, "--no-progress"]
                    + flags) == 0
    got = {s: np.asarray(Image.open(out), np.float64) for s, out in outs.items()}
    assert (got["0"] == upright).all()                      # the photo, upright, exactly
    assert (got["1"] == got["plain"]).all()
    assert np.abs(got["plain"] - upright).mean() > 5          # the network does change it
    assert np.abs(got["0.5"] - (got["plain"] + upright) / 2).max() <= 1   # a linear mix
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["stylize", "--model", style_model, path, "--strength", "1.5"])
    assert_one_line_error(e.value.code, capsys.readouterr().err, "between 0 and 1")


def test_apply_strength_is_the_linear_mix():
    styled, photo = np.full((2, 3, 3), 200.0), np.full((2, 3, 3), 100.0)
    assert np.allclose(stylize.apply_strength(styled, photo, 0.25), 125.0)
    assert stylize.apply_strength(styled, photo, 1) is styled


def test_upscale_16_bit_tiff_keeps_profile_and_orientation(tmp_path, tagged_photo, capsys):
    path, upright = tagged_photo
    config = {"kind": "sr", "norm": "batch", "width": 6, "n_res": 1, "scale": 2, "skip": True}
    params = transformer.init_params(models.spec_from_config(config), seed=0)
    model = str(tmp_path / "sr.h5")
    models.save_model(model, params, config, transformer.init_state(params, "batch"))
    out = str(tmp_path / "big.tif")
    assert main(["upscale", "--model", model, path, "--out", out, "--bit-depth", "16",
                 "--no-progress"]) == 0
    deep = read_tiff16(out)
    p, c, st = models.load_model(model)
    want = np.rint(sr.upscale_array(p, c, st, upright.astype(np.float32)) * 257)
    assert deep.shape == (68, 44, 3) and np.abs(deep - want).max() <= 2
    with Image.open(out) as im:
        assert im.info["icc_profile"] == profile()


def test_gatys_16_bit_png_keeps_profile_and_orientation(tmp_path, tagged_photo, synthetic_vgg,
                                                        capsys):
    path, upright = tagged_photo
    weights, _ = synthetic_vgg("vgg16")
    style = str(tmp_path / "style.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 30, 3), np.uint8)).save(style)
    out = str(tmp_path / "g.png")
    assert main(["gatys", "--content", path, "--style", style, "--weights", weights, "--iters",
                 "2", "--size", "34", "--out", out, "--bit-depth", "16", "--no-progress"]) == 0
    deep = read_png16(out)
    assert deep.shape == upright.shape
    assert len(np.unique(deep % 257)) > 10
    with Image.open(out) as im:
        assert im.info["icc_profile"] == profile()
        assert (np.asarray(im) == deep >> 8).all()


def test_16_bits_where_they_cannot_go_are_refused_before_the_work(tmp_path, tagged_photo,
                                                                  style_model, synthetic_vgg,
                                                                  capsys):
    path, _ = tagged_photo
    out = tmp_path / "o.jpg"
    code = main(["stylize", "--model", style_model, path, "--out", str(out), "--bit-depth", "16"])
    assert_one_line_error(code, capsys.readouterr().err, "16 bits", ".png")
    assert not out.exists()
    frames = [Image.fromarray(np.full((12, 12, 3), v, np.uint8)) for v in (0, 90, 180)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    code = main(["stylize", "--model", style_model, str(tmp_path / "a.gif"), "--out",
                 str(tmp_path / "out"), "--bit-depth", "16"])
    assert_one_line_error(code, capsys.readouterr().err, "animated GIF")
    weights, _ = synthetic_vgg("vgg16")
    code = main(["gatys", "--content", path, "--weights", weights, "--out", str(tmp_path / "g.bmp"),
                 "--bit-depth", "16"])
    assert_one_line_error(code, capsys.readouterr().err, "16 bits")


def test_a_jpeg_photo_keeps_its_profile_in_8_bits(tmp_path, style_model, capsys):
    rgb = np.random.default_rng(4).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.jpg", icc_profile=profile())
    assert image.icc_profile(str(tmp_path / "p.jpg")) == profile()
    assert main(["stylize", "--model", style_model, str(tmp_path / "p.jpg"), "--out",
                 str(tmp_path / "o.jpg"), "--no-progress"]) == 0
    with Image.open(tmp_path / "o.jpg") as im:
        assert im.info["icc_profile"] == profile()
    Image.fromarray(rgb).save(tmp_path / "plain.png")
    assert image.icc_profile(str(tmp_path / "plain.png")) is None
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    Image.fromarray(rgb).save(tmp_path / "lab.png", icc_profile=lab)   # not an RGB space: dropped
    assert image.icc_profile(str(tmp_path / "lab.png")) is None


def test_to_bit_depth_maps_255_to_65535():
    rgb = np.array([[[0.0, 127.5, 255.0]]])
    assert image.to_bit_depth(rgb, 16).tolist() == [[[0, 32768, 65535]]]
    assert image.to_bit_depth(rgb, 8).tolist() == [[[0, 128, 255]]]


def test_a_16_bit_png_carries_the_batch_fingerprint(tmp_path, tagged_photo, style_model, capsys):
    """The skip-if-done stamp (issue 21) is a text chunk in 16-bit PNGs too: a rerun skips the
    output; another --strength is another output, redone."""
    path, _ = tagged_photo
    out = str(tmp_path / "o16.png")
    argv = ["stylize", "--model", style_model, path, "--out", out, "--bit-depth", "16",
            "--no-progress"]
    assert main(argv) == 0
    with Image.open(out) as im:
        assert "numstyle" in " ".join(im.text)               # the stamp, read back by Pillow
    first = os.stat(out).st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert "skipped" in capsys.readouterr().out and os.stat(out).st_mtime_ns == first
    assert main(argv + ["--strength", "0.5"]) == 0
    assert "wrote" in capsys.readouterr().out and os.stat(out).st_mtime_ns != first
