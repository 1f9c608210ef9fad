"""A live page for one Gatys run (``numstyle gatys --preview [PORT]``).

:class:`Preview` serves three things on ``127.0.0.1`` and nothing else: the page (``/``, one
small HTML file whose inline script polls), the current image (``/image.png``, encoded from
memory) and the losses (``/losses.json``). The server runs in a thread of its own (the standard
library's ``http.server``); the optimisation only hands it the loss terms each iteration and a
copy of the image at most every ``every`` seconds (:meth:`Preview.update`), so it never waits
on a request and the PNG is encoded in the server's thread, once per image.

It answers only to a ``Host`` of ``127.0.0.1:PORT`` or ``localhost:PORT`` (403 otherwise: a page
elsewhere that re-points its own name at 127.0.0.1, DNS rebinding, cannot read it); every other
path is a 404. Used as a context manager, it stops and frees its port when the block ends,
however it ends (an error, Ctrl-C, SIGTERM); after :meth:`Preview.finish` it first waits up to
``linger`` seconds for an open page to fetch the final picture.
"""
import base64
import errno
import hashlib
import http.server
import io
import json
import math
import socketserver
import threading
import time
from urllib.parse import parse_qs

import numpy as np
from PIL import Image

from .config import PREVIEW
from .errors import NumstyleError

HOST = "127.0.0.1"                  # the only address served: never another interface
LOSS_TERMS = ("total", "content", "style", "tv")

SCRIPT = """
const POLL = %(poll)d, TERMS = ["total", "content", "style", "tv"];
const COLOURS = {total: "#111111", content: "#2563eb", style: "#dc2626", tv: "#16a34a"};
const NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let points = [], shown = 0, loading = 0, ended = false;

function add(svg, name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const a in attrs) e.setAttribute(a, attrs[a]);
  if (text !== undefined) e.textContent = text;
  svg.appendChild(e);
}

function draw() {            // log10 of each loss term against the iteration, as SVG polylines
  const svg = $("plot"), W = 560, H = 320, L = 60, R = 12, T = 12, B = 30;
  svg.replaceChildren();
  let lo = Infinity, hi = -Infinity;
  for (const p of points) for (let k = 1; k <= 4; k++) if (p[k] > 0) {
    lo = Math.min(lo, Math.log10(p[k])); hi = Math.max(hi, Math.log10(p[k]));
  }
  if (!isFinite(lo)) return;
  if (hi - lo < 1e-6) { lo -= 0.5; hi += 0.5; }
  const n = Math.max(points.length - 1, 1);
  const x = (i) => L + (W - L - R) * i / n, y = (l) => T + (H - T - B) * (hi - l) / (hi - lo);
  for (let d = Math.ceil(lo); d <= hi; d++) {
    add(svg, "line", {x1: L, x2: W - R, y1: y(d), y2: y(d), stroke: "#e4e4e4"});
    add(svg, "text", {x: L - 6, y: y(d) + 4, "text-anchor": "end", "font-size": 11,
                      fill: "#555"}, "1e" + d);
  }
  for (let i = 1; i < points.length; i++) if (points[i][0] <= points[i - 1][0]) {
    add(svg, "line", {x1: x(i), x2: x(i), y1: T, y2: H - B, stroke: "#999",
                      "stroke-dasharray": "4 3"});          // a new scale (or frame) starts
  }
  add(svg, "line", {x1: L, x2: L, y1: T, y2: H - B, stroke: "#888"});
  add(svg, "line", {x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#888"});
  add(svg, "text", {x: L, y: H - 10, "font-size": 11, fill: "#555"}, "1");
  add(svg, "text", {x: W - R, y: H - 10, "text-anchor": "end", "font-size": 11, fill: "#555"},
      points.length + " iterations");
  TERMS.forEach((t, k) => {
    const xy = [];
    points.forEach((p, i) => {
      if (p[k + 1] > 0) xy.push(x(i).toFixed(1) + "," + y(Math.log10(p[k + 1])).toFixed(1));
    });
    if (xy.length) add(svg, "polyline", {points: xy.join(" "), fill: "none", stroke: COLOURS[t],
                                         "stroke-width": t === "total" ? 2 : 1.3});
  });
}

function say(text, kind) { $("status").textContent = text; $("status").className = kind; }

function showImage(version) {  // the new image replaces the old one once it has loaded
  if (version <= shown || version === loading) return;
  loading = version;
  const im = new Image();
  im.id = "image"; im.alt = "the current image";
  im.onload = () => { if (version > shown) { shown = version; $("image").replaceWith(im); } };
  im.src = "/image.png?v=" + version;
}

async function poll() {
  let s;
  try {
    const r = await fetch("/losses.json?since=" + points.length, {cache: "no-store"});
    if (!r.ok) throw new Error(r.status);
    s = await r.json();
  } catch (e) {
    if (!ended) say("the run has ended: this page is no longer served", "gone");
    return;
  }
  if (s.from === points.length) points.push(...s.points);
  draw();
  const last = points.length ? points[points.length - 1] : null;
  const loss = last ? " · total loss " + Number(last[1]).toPrecision(4) : "";
  const size = s.size ? " · " + s.size[0] + "×" + s.size[1] : "";
  if (s.image) showImage(s.image);
  if (s.status === "done") {
    ended = true;
    $("caption").textContent = "the final picture";
    say("done: wrote " + s.out + " (" + s.count + " iterations, " + s.seconds.toFixed(1) +
        " s)" + loss, "done");
  } else if (s.status === "stopped" || s.status === "failed") {
    ended = true;
    say((s.status === "stopped" ? "stopped" : "failed: see the terminal") + " at iteration " +
        s.count + loss, "gone");
  } else {
    say((s.count ? "iteration " + s.count : "starting") + loss + size + " · " +
        s.seconds.toFixed(1) + " s", "running");
    setTimeout(poll, POLL);
  }
}

const key = $("key");
TERMS.forEach((t) => {
  const k = document.createElement("span");
  k.textContent = "\\u2014 " + t; k.style.color = COLOURS[t];
  key.appendChild(k);
});
poll();
"""

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 16px 24px; background: #f7f7f5; color: #222; }
h1 { font-size: 18px; margin: 0 0 6px; }
main { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
figure { margin: 0; }
#image { display: block; min-width: 360px; max-width: min(92vw, 640px); height: auto;
         border: 1px solid #bbb; background: #ddd; }
svg { display: block; background: #fff; border: 1px solid #bbb; }
#key span { margin-right: 14px; }
.running { color: #1e3a8a; } .done { color: #166534; font-weight: 600; }
.gone { color: #991b1b; font-weight: 600; }
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>numstyle gatys: live preview</title>
<style>%(style)s</style></head>
<body><h1>numstyle gatys</h1><p id="status" class="running">starting</p>
<main><figure><img id="image" alt="no image yet"><figcaption id="caption">the current image
</figcaption>
</figure><figure><svg id="plot" width="560" height="320" viewBox="0 0 560 320"
role="img" aria-label="loss curves"></svg><figcaption id="key">log<sub>10</sub> loss: </figcaption>
</figure></main>
<script>%(script)s</script></body></html>
"""


def csp_hash(text):
    """The ``'sha256-...'`` source that lets exactly this inline script or style run."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


class Preview:
    """The page of one run, served from a thread on 127.0.0.1 while the run goes on.

    Parameters
    ----------
    port : int
        TCP port on 127.0.0.1; 0 takes any free one (:attr:`url` tells which). A port in use
        raises :class:`~numstyle.errors.NumstyleError` here, before any work.
    every : float
        Seconds between two images handed to the page, at least.
    poll : float
        Seconds between the page's requests.
    linger : float
        After :meth:`finish`, how long closing waits, at most, for an open page to fetch the
        final picture (no wait unless a page asked for something in the last ``linger`` s).
    """

    def __init__(self, port=PREVIEW.port, every=PREVIEW.every, poll=PREVIEW.poll,
                 linger=PREVIEW.linger):
        self.every, self.linger = every, linger
        script = SCRIPT % {"poll": round(1000 * poll)}
        self.page = (PAGE % {"style": STYLE, "script": script}).encode("utf-8")
        self.policy = ("default-src 'none'; img-src 'self'; connect-src 'self'; "
                       f"script-src {csp_hash(script)}; style-src {csp_hash(STYLE)}; "
                       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        self.lock = threading.Lock()
        self.points = []          # one [iteration, total, content, style, tv] per iteration
        self.image, self.version, self.png = None, 0, (0, b"")
        self.status, self.out, self.seen = "starting", None, -math.inf  # seen: last request
        self.started, self.handed = time.monotonic(), -math.inf
        self.final_served = threading.Event()
        self.server = PreviewServer(self, port)              # binds now: a port in use fails here
        self.port = self.server.server_address[1]
        self.hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}
        if self.port == 80:
            self.hosts |= {HOST, "localhost"}
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,),
                                       name="numstyle-preview", daemon=True)

    @property
    def url(self):
        """``http://127.0.0.1:PORT/``: the page's address."""
        return f"http://{HOST}:{self.port}/"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None:
            with self.lock:
                self.status = "stopped" if issubclass(kind, KeyboardInterrupt) else "failed"
        self.close()

    def update(self, iteration, parts, image=None):
        """One iteration done: record its losses; take the image if ``every`` seconds have passed.

        Parameters
        ----------
        iteration : int
            The optimiser's iteration (it starts again at each scale or frame).
        parts : dict
            The loss terms, ``total``, ``content``, ``style``, ``tv`` (floats).
        image : callable, optional
            ``image() -> uint8 (H, W, 3)`` RGB, a copy: called only when the page is due one.
        """
        rgb = None
        if image is not None and time.monotonic() - self.handed >= self.every:
            rgb = np.ascontiguousarray(image(), dtype=np.uint8)
            self.handed = time.monotonic()      # from the end of the copy: a slow one waits more
        point = [int(iteration)] + [finite_or_none(parts.get(k)) for k in LOSS_TERMS]
        with self.lock:
            self.points.append(point)
            if self.status == "starting":
                self.status = "running"
            if rgb is not None:
                self.image, self.version = rgb, self.version + 1

    def finish(self, rgb, out):
        """The run is done: show ``rgb`` (uint8 (H, W, 3), the written picture) and ``out``."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        with self.lock:
            self.image, self.version = rgb, self.version + 1
            self.status, self.out = "done", str(out)

    def close(self):
        """Stop serving and free the port (after the final picture's ``linger``, if due)."""
        try:
            with self.lock:
                wait = self.status == "done" and time.monotonic() - self.seen < self.linger
            if wait and self.thread.is_alive():
                self.final_served.wait(self.linger)
        finally:
            if self.thread.is_alive():
                self.server.shutdown()
            self.server.server_close()
            self.thread.join()

    # -- the server's side: called from its threads --------------------------------------------

    def host_allowed(self, host):
        """True for the ``Host`` headers of this page's own address (none else: DNS rebinding)."""
        return host is not None and host.strip().lower() in self.hosts

    def state(self, since):
        """The ``/losses.json`` object: the points from index ``since`` on, and the run's state."""
        with self.lock:
            since = min(max(since, 0), len(self.points))
            self.seen = time.monotonic()
            size = None if self.image is None else [self.image.shape[1], self.image.shape[0]]
            return {"status": self.status, "from": since, "points": self.points[since:],
                    "count": len(self.points), "image": self.version, "size": size,
                    "seconds": time.monotonic() - self.started, "out": self.out}

    def image_png(self):
        """The current image as PNG bytes (encoded once per image, here), or None before one."""
        with self.lock:
            version, rgb, cached, done = self.version, self.image, self.png, self.status == "done"
            self.seen = time.monotonic()
        if rgb is None:
            return None
        if cached[0] != version:
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
            cached = (version, buf.getvalue())
            with self.lock:
                if self.png[0] < version:
                    self.png = cached
        if done and cached[0] == version:
            self.final_served.set()
        return cached[1]


def finite_or_none(v):
    """A loss as JSON can carry it: NaN and infinity (not JSON) become null."""
    return float(v) if v is not None and math.isfinite(v) else None


class PreviewServer(http.server.ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that belongs to one :class:`Preview`; no request waits on
    another, and none keeps the run from ending (daemon threads, not joined on close)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, preview, port):
        self.preview = preview
        try:
            super().__init__((HOST, port), PreviewHandler)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise NumstyleError(
                    f"port {port} on {HOST} is in use: choose another (--preview PORT), or 0 for "
                    "any free port") from None
            raise NumstyleError(f"cannot serve the preview on {HOST}:{port}: "
                                f"{e.strerror or e}") from None

    def server_bind(self):
        """Bind without HTTPServer's reverse DNS look-up of the address (it can hang)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, self.server_address[1]


class PreviewHandler(http.server.BaseHTTPRequestHandler):
    """``GET /``, ``/image.png``, ``/losses.json``; 403 for a foreign ``Host``; 404 else."""

    server_version, sys_version = "numstyle-preview", ""
    timeout = 10                          # a client that stalls loses its thread, not the run's

    def do_GET(self):                     # noqa: N802 (http.server's name)
        preview = self.server.preview
        if not preview.host_allowed(self.headers.get("Host")):
            return self.reply(403, b"forbidden: this page answers only at its own address\n",
                              "text/plain; charset=utf-8")
        path, _, query = self.path.partition("?")           # the target as sent: no parsing
        if path == "/":
            return self.reply(200, preview.page, "text/html; charset=utf-8", preview.policy)
        if path == "/image.png":
            png = preview.image_png()
            if png is None:
                return self.reply(404, b"no image yet\n", "text/plain; charset=utf-8")
            return self.reply(200, png, "image/png")
        if path == "/losses.json":
            since = parse_qs(query).get("since", ["0"])[0]
            state = preview.state(int(since) if since.isdigit() else 0)
            return self.reply(200, json.dumps(state).encode("utf-8"), "application/json")
        return self.reply(404, b"not found\n", "text/plain; charset=utf-8")

    def reply(self, code, body, kind, policy="default-src 'none'; frame-ancestors 'none'"):
        self.send_response(code)
        for name, value in (("Content-Type", kind), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                            ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"),
                            ("Content-Security-Policy", policy)):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (http.server's name)
        """Quiet: the run's terminal is for the run."""
