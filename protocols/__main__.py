"""``python -m protocols``: see :mod:`protocols._cli`."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main(restore_signals=False))  # exiting: a second Ctrl-C is ignored
