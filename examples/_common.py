"""What the examples share: a user error (no sample data found, a bad file or flag) ends an example
with one line, ``examples/NAME.py: error: ...``, and exit status 1 -- as ``numstyle`` does
(numstyle/cli.py) -- never with a traceback."""
import sys

from numstyle.errors import NumstyleError


def run(main, prog):
    """Call ``main()`` and return its exit status.

    A NumstyleError is printed as ``<prog>: error: ...`` (exit status 1)."""
    try:
        return main() or 0
    except NumstyleError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
