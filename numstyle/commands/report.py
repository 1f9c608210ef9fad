"""What a command prints on stdout: its lines for people, or with ``--json`` JSON and nothing else.

Every command that writes outputs or figures takes ``--json``. With it, stdout carries JSON lines
only: one object per output (``"type": "output"``, with at least ``"out"``, the file written) and
one final summary (``"type": "summary"``, with ``"command"``, ``"outputs"``, ``"skipped"``,
``"failed"`` and ``"seconds"``); every message, and the progress bars, go to stderr. Without it,
the same messages go to stdout as before. ``numstyle gatys``'s output object is its final record
(total, content, style, tv, iterations, evaluations, seconds, out, ...); ``sr-eval`` and ``bench``
print their one result object, as they always did.

    report = Report(args)
    with report.messages_to_stderr():
        ...                                # print(...) goes to stderr under --json
        report.output(out="a.png", seconds=1.2)
    report.summary(outputs=1)
"""
import contextlib
import functools
import json
import sys
import time


def reported(run):
    """Decorate a command's ``run(args)`` that returns the records of what it wrote (a list of
    dicts, each with ``"out"``): under ``--json`` they are printed as output objects, then the
    summary; its messages go to stderr. The decorated command returns 0."""
    @functools.wraps(run)
    def command(args):
        report = Report(args)
        with report.messages_to_stderr():
            records = run(args)
        for record in records or []:
            report.output(record)
        report.summary()
        return 0
    return command


def add_json_argument(p, what="one JSON object per output, then a summary"):
    """``--json`` on a command (``what``: what it prints)."""
    p.add_argument("--json", action="store_true",
                   help=f"print {what} on stdout, JSON only; messages and progress go to stderr")


class Report:
    """One command's stdout: people's lines, or with ``args.json`` JSON lines only.

    Parameters
    ----------
    args : argparse.Namespace
        The command's arguments: ``json`` (bool, absent: False) and ``command`` (its name).
    """

    def __init__(self, args):
        self.json = bool(getattr(args, "json", False))
        self.command = getattr(args, "command", None)
        self.start = time.perf_counter()
        self.stdout = sys.stdout   # the real one: captured before messages_to_stderr
        self.records = []

    @contextlib.contextmanager
    def messages_to_stderr(self):
        """Inside the block, under ``--json``, ``print`` goes to stderr (stdout is JSON only)."""
        if not self.json:
            yield self
            return
        with contextlib.redirect_stdout(sys.stderr):
            yield self

    def output(self, record):
        """One output written: its JSON object under ``--json`` (``"type": "output"`` added)."""
        record = dict(record, type="output")
        self.records.append(record)
        if self.json:
            self._emit(record)
        return record

    def summary(self, **fields):
        """The final object under ``--json``: ``command``, ``outputs`` (the output objects
        printed), ``seconds`` since the report began, and ``fields`` (``skipped``, ``failed``...).
        """
        record = dict({"type": "summary", "command": self.command,
                       "outputs": len(self.records), "skipped": 0, "failed": []},
                      seconds=time.perf_counter() - self.start, **fields)
        if self.json:
            self._emit(record)
        return record

    def _emit(self, record):
        print(json.dumps(record, default=_plain), file=self.stdout, flush=True)


def _plain(value):
    """NumPy scalars and arrays as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
