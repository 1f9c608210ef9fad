"""``numstyle sheet``: the photo and every shipped style network's result, labelled, one page."""
import json
import os

import numpy as np
from PIL import Image

from numstyle import models, sheet, styles, stylize, transformer
from numstyle.cli import main
from numstyle.files import TEMP_PREFIX
from numstyle.image import load_image

from conftest import assert_one_line_error


def test_sheet_holds_the_photo_and_every_shipped_style_labelled(tmp_path, capsys):
    rng = np.random.default_rng(8)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "sheets" / "sheet.png"
    assert main(["sheet", str(photo), "--out", str(out), "--size", "30", "--columns", "2",
                 "--no-progress"]) == 0
    loaded = {n: models.load_model(n) for n in models.shipped_models("style")}
    drawn = {c.get("style_sha256") for _, c, _ in loaded.values() if not styles.count(c)}
    names, nets = [], []           # each style once: a network of several draws only the others
    for n, (params, config, state) in loaded.items():
        for i, entry in enumerate(config.get("styles") or [{}]):
            if styles.count(config) and entry.get("sha256") in drawn:
                continue
            if entry:
                plain = styles.apply_mix(params, config, styles.one_hot(i, styles.count(config)))
                names.append(f"{n}:{entry['name']}")
                nets.append((*plain, state))
            else:
                names.append(n)
                nets.append((params, config, state))
    printed = capsys.readouterr().out
    assert len(names) >= 3 and all(n in printed for n in names)
    page = np.asarray(Image.open(out))
    rgb = load_image(str(photo), 30)                                     # (20, 30, 3)
    tiles = [np.rint(rgb)] + [np.rint(np.clip(stylize.stylize_array(*net, rgb), 0, 255))
                              for net in nets]
    _, boxes = sheet.contact_sheet([t.astype(np.uint8) for t in tiles], ["photo"] + names, 2)
    assert len(boxes) == len(names) + 1
    rows = {top for top, _ in boxes}
    assert len(rows) == -(-(len(names) + 1) // 2)                        # two per row
    for (top, left), tile in zip(boxes, tiles):
        assert (page[top:top + 20, left:left + 30] == tile).all()       # each result, in place
        label = page[top + 20:top + 20 + 12, left:left + 30]
        assert (label < 128).any() and (label == 255).mean() > 0.5      # ink on white: a label
    assert [f for f in os.listdir(out.parent) if f.startswith(TEMP_PREFIX)] == []


def test_long_labels_are_cut_to_the_tile():
    tiles = [np.zeros((10, 40, 3), np.uint8)] * 2
    page, boxes = sheet.contact_sheet(tiles, ["a" * 60, "b"], 4)
    assert page.shape == (page.shape[0], sheet.GAP + 2 * (40 + sheet.GAP), 3)
    ink = (page[boxes[0][0] + 10:, :] < 128).any(axis=(0, 2))
    assert not ink[boxes[1][1] - sheet.GAP // 2]                         # no text in the gap


def test_sheet_errors_are_one_line(tmp_path, capsys):
    code = main(["sheet", str(tmp_path / "none.jpg"), "--out", str(tmp_path / "s.png")])
    assert_one_line_error(code, capsys.readouterr().err, "not found")
    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    code = main(["sheet", str(tmp_path / "p.png"), "--out", str(tmp_path / "s.xyz")])
    assert_one_line_error(code, capsys.readouterr().err, "unknown image extension")
    Image.new("RGB", (200, 7)).save(tmp_path / "thin.png")      # 64x2 at --size 64
    code = main(["sheet", str(tmp_path / "thin.png"), "--size", "64", "--out",
                 str(tmp_path / "s.png")])
    assert_one_line_error(code, capsys.readouterr().err, "thin.png: 64x2 px is too small",
                          "at least 5 px")


def test_a_sheet_too_large_for_the_memory_is_refused_before_the_work(tmp_path, monkeypatch,
                                                                     capsys):
    # it grew to the machine's 24 GB and was killed, where stylize refuses at once
    from numstyle.commands import johnson

    monkeypatch.setattr(johnson, "memory_limit", lambda: 1 << 30)
    Image.new("RGB", (40, 30)).save(tmp_path / "p.png")
    code = main(["sheet", str(tmp_path / "p.png"), "--size", "20000", "--out",
                 str(tmp_path / "s.png")])
    err = capsys.readouterr().err
    assert_one_line_error(code, err, "sheet of", "20000x15000", "give --size")
    assert "--max-memory" not in err and not os.path.exists(tmp_path / "s.png")


def test_a_network_of_several_styles_gives_a_tile_per_style(tmp_path, monkeypatch, capsys):
    """A shipped conditional network (N4) is each of its styles on the sheet, labelled
    ``network:style``; ``--json`` names them."""
    config = {"kind": "style", "norm": "instance", "width": [4, 6, 8], "n_res": 1,
              "upsample": "nearest", "styles": [{"name": "a"}, {"name": "b"}]}
    params = transformer.init_params(models.spec_from_config(config), seed=1, styles=2)
    rng = np.random.default_rng(1)
    for key in params:
        if key.endswith((".gamma", ".beta")):
            params[key] = (1.0 * key.endswith(".gamma")
                           + rng.standard_normal(params[key].shape)).astype(np.float32)
    shipped = tmp_path / "weights"
    shipped.mkdir()
    models.save_model(str(shipped / "duo.h5"), params, config,
                      transformer.init_state(params, "instance"))
    monkeypatch.setattr(models, "BUILTIN_DIR", str(shipped))
    photo, out = tmp_path / "p.png", tmp_path / "s.png"
    Image.fromarray(rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)).save(photo)
    assert main(["sheet", str(photo), "--out", str(out), "--size", "18", "--no-progress",
                 "--json"]) == 0
    record, summary = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["styles"] == ["duo:a", "duo:b"] and summary["outputs"] == 1
    page = np.asarray(Image.open(out))
    rgb = load_image(str(photo), 18)
    _, boxes = sheet.contact_sheet([np.zeros((12, 18, 3), np.uint8)] * 3, ["p", "a", "b"], 4)
    for i, (top, left) in enumerate(boxes[1:]):
        plain, one = styles.apply_mix(params, config, styles.one_hot(i, 2))
        want = np.rint(np.clip(stylize.stylize_array(plain, one, None, rgb), 0, 255))
        assert (page[top:top + 12, left:left + 18] == want).all()
    # a network of one style shipped beside it, style b's own: b is drawn once, by that network
    config["styles"] = [{"name": "a", "sha256": "aa"}, {"name": "b", "sha256": "bb"}]
    models.save_model(str(shipped / "duo.h5"), params, config,
                      transformer.init_state(params, "instance"))
    plain, one = styles.apply_mix(params, config, styles.one_hot(1, 2))
    models.save_model(str(shipped / "b_alone.h5"), plain, one)
    assert one["style_sha256"] == "bb"
    assert main(["sheet", str(photo), "--out", str(tmp_path / "s2.png"), "--size", "18",
                 "--no-progress", "--json"]) == 0
    record, _ = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(record["styles"]) == ["b_alone", "duo:a"]
