"""``python -m bench [--quick] [NAME ...]``: see :mod:`bench._runner`."""

from bench._runner import main

raise SystemExit(main())
