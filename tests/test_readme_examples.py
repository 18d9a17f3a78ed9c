"""Every ```python block of README.md runs, as written, and leaves nothing behind.

Each block is executed in a fresh namespace (in file order, each its own
subtest).  A block must stop every server it starts: afterwards the shared
reactor thread is gone (guarantee G1), so a forgotten server fails here.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
import unittest
from pathlib import Path

from reactor import THREAD_NAME, current_reactor

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_blocks() -> list[tuple[int, str]]:
    """(line number, code) of each python block in the README."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in BLOCK.finditer(text)]


class ReadmeExamplesTest(unittest.TestCase):
    def test_there_are_examples(self) -> None:
        self.assertGreaterEqual(len(readme_blocks()), 10)

    def test_every_python_block_runs(self) -> None:
        for line, code in readme_blocks():
            with self.subTest(line=line):
                out = io.StringIO()
                namespace: dict[str, object] = {"__name__": f"readme_line_{line}"}
                with contextlib.redirect_stdout(out):
                    exec(compile(code, f"README.md:{line}", "exec"), namespace)
                self.assertIsNone(current_reactor(), "the example left a server running")
                for t in threading.enumerate():
                    if t.name == THREAD_NAME:
                        t.join(5)  # the last stop() has joined it already, or is about to
                leftover = [t for t in threading.enumerate() if t.name == THREAD_NAME]
                self.assertEqual(leftover, [], "reactor thread still alive after the example")

if __name__ == "__main__":
    unittest.main()
