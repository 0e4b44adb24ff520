"""``python -m heatq ...``: the ``heatq`` command line (:func:`heatq.cli.main`)."""

from .cli import main

main()
