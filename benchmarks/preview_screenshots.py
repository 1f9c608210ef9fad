"""Screenshots of ``numstyle gatys --preview`` in a real browser, at two moments of one run.

Runs ``numstyle gatys ... --preview 0`` as a user would, reads the page's address from the
line it prints on stderr, opens the page once in headless Chromium (Debian's ``chromium``
package, driven by Playwright's Python package; neither is a numstyle dependency) and keeps it
open while the run goes on: the page updates itself. One screenshot when the run reaches
``--at`` iterations, one when it is done (the final picture). The figures of the README's
``--preview`` section come from::

    apt-get install chromium && pip install playwright
    NUMSTYLE_DATA=/work/shared python benchmarks/preview_screenshots.py \\
        --content tubingen.jpg --style starry_night.jpg --size 192 --iters 80 --at 12 \\
        --shots docs/figures/preview_running.png docs/figures/preview_done.png
"""
import argparse
import os
import re
import subprocess
import sys
import time

from playwright.sync_api import sync_playwright

IMAGES = os.path.join(os.environ.get("NUMSTYLE_DATA", "../shared"), "images")


def image_path(name, kind):
    """A file, or a name in $NUMSTYLE_DATA/images/<kind>/."""
    return name if os.path.exists(name) else os.path.join(IMAGES, kind, name)


def page_url(proc, timeout=120):
    """The address from the ``preview: http://127.0.0.1:PORT/ ...`` line on the run's stderr."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if not line:
            break
        sys.stderr.write(line)
        found = re.match(r"preview: (http://127\.0\.0\.1:\d+/)", line)
        if found:
            return found.group(1)
    raise SystemExit("the run printed no preview address")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--content", default="tubingen.jpg")
    p.add_argument("--style", default="starry_night.jpg")
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--iters", type=int, default=80)
    p.add_argument("--at", type=int, default=12, help="iterations at the first screenshot")
    p.add_argument("--shots", nargs=2, required=True, metavar="PNG")
    p.add_argument("--out", default="out/preview_result.png", help="the run's --out")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    cmd = [sys.executable, "-m", "numstyle", "gatys", "--content",
           image_path(args.content, "content"), "--style", image_path(args.style, "style"),
           "--size", str(args.size), "--iters", str(args.iters), "--out", args.out,
           "--no-progress", "--preview", "0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        url = page_url(proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium,
                                         args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1100, "height": 470})
            page.goto(url)
            page.wait_for_function(
                "(at) => +(/^iteration (\\d+)/.exec(document.getElementById('status')"
                ".textContent) || [0, 0])[1] >= at", arg=args.at, timeout=600_000, polling=100)
            page.screenshot(path=args.shots[0])
            page.wait_for_selector("#status.done", timeout=1_200_000)
            page.wait_for_timeout(1000)           # the final picture has loaded
            page.screenshot(path=args.shots[1])
            browser.close()
        print(f"wrote {args.shots[0]} and {args.shots[1]}")
    finally:
        proc.wait(timeout=60)
        sys.stderr.write(proc.stderr.read())


if __name__ == "__main__":
    main()
