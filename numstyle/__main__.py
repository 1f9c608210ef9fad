"""``python -m numstyle ...``: the ``numstyle`` command without installing it (e.g.
``PYTHONPATH=.``)."""
from .cli import main

raise SystemExit(main())
