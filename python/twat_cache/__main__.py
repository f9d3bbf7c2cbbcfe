"""``python -m twat_cache``: the ``twat-cache`` command line."""

from .cli import run

run()
