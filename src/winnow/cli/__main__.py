"""``python -m winnow.cli``: the ``winnow`` command."""

from winnow.cli import app

app()
