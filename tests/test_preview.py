"""``numstyle gatys --preview``: the page, the image, the losses, nothing else, only at its own
address, and the port freed when the run ends (done, Ctrl-C, SIGTERM)."""
import http.client
import io
import json
import os
import signal
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from numstyle import preview as preview_module
from numstyle.cli import build_parser, main
from numstyle.commands import gatys as gatys_cli
from numstyle.config import PREVIEW
from numstyle.errors import NumstyleError
from numstyle.preview import Preview

from conftest import assert_one_line_error


def get(port, path, host="default"):
    """``(status, content type, body)`` of a GET; ``host``: the Host header (None: none sent)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        if host is not None:
            conn.putheader("Host", f"127.0.0.1:{port}" if host == "default" else host)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        conn.close()


def refused(port):
    """True when nothing listens on 127.0.0.1:port any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def losses(port, since=0):
    code, kind, body = get(port, f"/losses.json?since={since}")
    assert code == 200 and kind == "application/json"
    return json.loads(body)


def test_the_page_the_image_the_losses_and_nothing_else():
    rgb = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    taken = []

    def image():
        taken.append(1)
        return rgb

    with Preview(0, every=3600) as p:
        port = p.port
        assert p.url == f"http://127.0.0.1:{port}/"
        code, kind, page = get(port, "/")
        assert code == 200 and kind.startswith("text/html")
        assert b"/losses.json" in page and b"/image.png" in page and b"<svg" in page
        assert get(port, "/image.png")[0] == 404                       # no image yet
        state = losses(port)
        assert (state["status"], state["count"], state["image"], state["points"]) == (
            "starting", 0, 0, [])
        for it in (1, 2, 3, 1):                            # a second scale starts again at 1
            p.update(it, {"total": 10.0 / it, "content": 1.0, "style": 2.0, "tv": float(it)},
                     image)
        p.update(2, {"total": float("nan"), "content": 1.0, "style": float("inf"), "tv": 0.0})
        assert len(taken) == 1, "the image is copied at most every `every` seconds"
        state = losses(port)
        assert state["status"] == "running" and state["count"] == 5 and state["image"] == 1
        assert state["points"][0] == [1, 10.0, 1.0, 2.0, 1.0] and state["size"] == [7, 5]
        assert state["points"][4] == [2, None, 1.0, None, 0.0]          # JSON has no NaN
        assert [q[0] for q in losses(port, since=3)["points"]] == [1, 2]  # only the new ones
        assert losses(port, since=99)["points"] == [] and losses(port, since=99)["from"] == 5
        code, kind, png = get(port, "/image.png?v=1")
        assert code == 200 and kind == "image/png"
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), rgb)
        for path in ("/index.html", "/etc/passwd", "/../../etc/passwd", "/image.png/x",
                     "/losses.json/", "/favicon.ico", "/static/../image.png"):
            assert get(port, path)[0] == 404, path
        p.finish(255 - rgb, "out.png")
        state = losses(port)
        assert state["status"] == "done" and state["out"] == "out.png" and state["image"] == 2
        png = get(port, "/image.png")[2]
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), 255 - rgb)
    assert refused(port)


@pytest.mark.parametrize("host", [None, "evil.example:{port}", "127.0.0.1.evil.example:{port}",
                                  "127.0.0.1:{other}", "localhost", "[::1]:{port}"])
def test_other_hosts_are_refused(host):
    """DNS rebinding: a page elsewhere re-points its own name at 127.0.0.1; its requests carry
    that name as Host and get a 403, on every path."""
    with Preview(0) as p:
        sent = None if host is None else host.format(port=p.port, other=p.port + 1)
        for path in ("/", "/image.png", "/losses.json"):
            code, _, body = get(p.port, path, host=sent)
            assert code == 403 and b"forbidden" in body, (host, path)
        assert get(p.port, "/", host=f"localhost:{p.port}")[0] == 200
        assert get(p.port, "/", host=f"LocalHost:{p.port}")[0] == 200


def test_the_page_allows_only_its_own_script_and_style():
    """The inline script and style run by their hashes; nothing from elsewhere, no framing."""
    with Preview(0) as p:
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
        conn.request("GET", "/")
        r = conn.getresponse()
        page, policy = r.read().decode(), r.getheader("Content-Security-Policy")
        conn.close()
    script = page.split("<script>")[1].split("</script>")[0]
    assert preview_module.csp_hash(script) in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy and "unsafe" not in policy


def test_a_port_in_use_is_refused_and_a_closed_one_is_free_again():
    with Preview(0) as p:
        with pytest.raises(NumstyleError, match=f"port {p.port} on 127.0.0.1 is in use"):
            Preview(p.port)
        get(p.port, "/losses.json")
    with Preview(p.port):             # released: the next run takes the same port
        pass
    assert refused(p.port)


def test_the_final_picture_waits_for_an_open_page_only():
    with Preview(0, linger=30) as p:                     # no page: closing does not wait
        p.finish(np.zeros((2, 2, 3), np.uint8), "x.png")
        begun = time.monotonic()
    assert time.monotonic() - begun < 2
    p = Preview(0, linger=30).__enter__()
    get(p.port, "/losses.json")                          # a page is open ...
    p.finish(np.zeros((2, 2, 3), np.uint8), "x.png")
    threading.Timer(0.3, get, (p.port, "/image.png")).start()  # ... and fetches the final image
    begun = time.monotonic()
    p.__exit__(None, None, None)
    assert 0.2 < time.monotonic() - begun < 10 and refused(p.port)


def gatys_argv(weights, tmp_path, *extra):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    return ["gatys", "--weights", weights, "--size", "32", "--iters", "4", "--no-progress",
            "--content", str(tmp_path / "c.png"), "--style", str(tmp_path / "c.png"),
            "--out", str(tmp_path / "out.png"), *extra]


class Watched(Preview):
    """The command's Preview, asking its own page for everything at iteration ``at`` (from the
    optimisation's thread: the server answers from its own), then doing ``then()``."""

    at, then, seen, made = 2, None, {}, []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, every=0, linger=0.2, **kwargs)
        Watched.made.append(self)

    def update(self, iteration, parts, image=None):
        super().update(iteration, parts, image)
        if iteration == Watched.at and not Watched.seen:
            Watched.seen.update(page=get(self.port, "/"), image=get(self.port, "/image.png"),
                                losses=get(self.port, "/losses.json"),
                                other=get(self.port, "/out.png"),
                                foreign=get(self.port, "/", host="attacker.example"))
            if Watched.then:
                Watched.then()


@pytest.fixture
def watched(monkeypatch):
    monkeypatch.setattr(gatys_cli, "Preview", Watched)
    Watched.seen, Watched.made, Watched.then = {}, [], None
    return Watched


def test_gatys_preview_serves_the_run_and_frees_the_port(watched, synthetic_vgg, tmp_path,
                                                         capsys):
    path, _ = synthetic_vgg("vgg16")
    code = main(gatys_argv(path, tmp_path, "--preview", "0", "--json"))
    out, err = capsys.readouterr()
    assert code == 0, err
    record, summary = [json.loads(line) for line in out.splitlines()]  # --json: stdout is JSON
    assert record["out"] == str(tmp_path / "out.png") and summary["type"] == "summary"
    p = watched.made[0]
    assert f"preview: http://127.0.0.1:{p.port}/" in err.splitlines()[0]
    seen = watched.seen
    assert seen["page"][0] == 200 and b"numstyle gatys" in seen["page"][2]
    assert seen["image"][:2] == (200, "image/png")
    assert Image.open(io.BytesIO(seen["image"][2])).size == (32, 27)
    state = json.loads(seen["losses"][2])
    assert state["status"] == "running" and [q[0] for q in state["points"]] == [1, 2]
    assert seen["other"][0] == 404 and seen["foreign"][0] == 403
    assert p.status == "done" and p.out == str(tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as im:     # the page's final picture is the file's
        np.testing.assert_array_equal(p.image, np.asarray(im))
    assert refused(p.port)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "error"])
def test_the_port_is_freed_when_the_run_is_stopped(how, watched, synthetic_vgg, tmp_path, capsys):
    def stop():
        if how == "sigterm":  # the first SIGTERM finishes the iteration, then the run stops
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            raise KeyboardInterrupt if how == "ctrl-c" else NumstyleError("a bad thing")

    watched.then = stop
    path, _ = synthetic_vgg("vgg16")
    code = main(gatys_argv(path, tmp_path, "--preview", "0", "--iters", "50"))
    _, err = capsys.readouterr()
    p = watched.made[0]
    assert code == {"ctrl-c": 130, "sigterm": 143, "error": 1}[how], err
    assert p.status == ("failed" if how == "error" else "stopped")
    assert refused(p.port) and not p.thread.is_alive()


def test_a_port_in_use_is_one_line_before_any_work(synthetic_vgg, tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = gatys_argv("/nonexistent/weights.h5", tmp_path, "--preview", str(port))
        code = main(argv)
    assert_one_line_error(code, capsys.readouterr().err, f"port {port}", "in use")
    assert not os.path.exists(tmp_path / "out.png")


def test_preview_flag_values(capsys):
    parse = build_parser().parse_args
    assert parse(["gatys", "--style", "s.png"]).preview is None
    assert parse(["gatys", "--preview", "--style", "s.png"]).preview == PREVIEW.port == 8765
    assert parse(["gatys", "--preview", "0"]).preview == 0
    for bad in ("70000", "-1", "x"):
        with pytest.raises(SystemExit) as e:
            parse(["gatys", "--preview", bad])
        assert_one_line_error(e.value.code, capsys.readouterr().err, "--preview")


def test_the_readme_tells_the_previews_defaults():
    """The README's --preview section: its port, its rates and its figures are the code's."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    section = readme.split("### Watching a run: `--preview`")[1].split("\n## ")[0]
    assert f"| `--preview [PORT]` | off ({PREVIEW.port} when given alone) |" in readme
    assert f"http://127.0.0.1:{PREVIEW.port}/" in section
    assert (PREVIEW.poll, PREVIEW.every, PREVIEW.linger) == (0.5, 1.0, 3.0)
    for words in ("updates itself\ntwice a second", "at most once a\nsecond",
                  "waits up to 3 s", "(`/`)", "(`/image.png`)", "(`/losses.json`)", "403", "404"):
        assert words in section, words
    for figure in ("docs/figures/preview_running.png", "docs/figures/preview_done.png"):
        assert f"]({figure})" in section and os.path.isfile(os.path.join(root, figure))
