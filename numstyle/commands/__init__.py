"""The ``numstyle`` subcommands: flags in, library calls, files and one-line errors out.

Each module adds its subparser(s) to :func:`numstyle.cli.build_parser`. They
import the library; nothing in the library imports them.
"""
