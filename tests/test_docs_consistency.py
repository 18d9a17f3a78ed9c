"""The README's architecture tables name modules and test modules that exist,
and the README imports only public names."""

from __future__ import annotations

import re
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


class DocsConsistencyTest(unittest.TestCase):
    def test_architecture_names_existing_modules(self) -> None:
        text = section("Architecture")
        paths = set(re.findall(r"`((?:reactor|protocols)/[\w/]*\.py)`", text))
        self.assertGreater(len(paths), 10)
        for path in sorted(paths):
            with self.subTest(path=path):
                self.assertTrue((ROOT / path).is_file())
        for package, names in re.findall(r"`(protocols/\w+/)`: ((?:`_\w+`[^·|]*)+)", text):
            for name in re.findall(r"`(_\w+)`", names):
                with self.subTest(module=package + name):
                    self.assertTrue((ROOT / package / f"{name}.py").is_file())

    def test_architecture_names_every_module(self) -> None:
        # A module added without a line in the layer table is a layer nobody
        # placed: the table is the map of the library, so it must be whole.
        text = section("Architecture")
        named = set(re.findall(r"`((?:reactor|protocols)/[\w/]*\.py)`", text))
        for package, names in re.findall(r"`(protocols/\w+/)`: ((?:`_\w+`[^·|]*)+)", text):
            named.update(package + name + ".py" for name in re.findall(r"`(_\w+)`", names))
        modules = [*(ROOT / "reactor").rglob("*.py"), *(ROOT / "protocols").rglob("*.py")]
        for path in sorted(modules):
            if path.name in ("__init__.py", "__main__.py"):
                continue
            rel = path.relative_to(ROOT).as_posix()
            with self.subTest(module=rel):
                self.assertIn(rel, named)

    def test_guarantee_table_names_existing_test_modules(self) -> None:
        text = section("Architecture")
        table = text[text.index("### Which tests prove which guarantee") :]
        for g in ("G1", "G2", "G3", "G4", "G5", "G6", "G6b", "G7"):
            self.assertIn(f"| {g} ", table)
        modules = set(re.findall(r"`(test_\w+)`", table))
        self.assertGreater(len(modules), 15)
        for name in sorted(modules):
            with self.subTest(module=name):
                self.assertTrue((ROOT / "tests" / f"{name}.py").is_file())

    def test_readme_imports_public_names_only(self) -> None:
        self.assertEqual(re.findall(r"(?:from|import) (?:protocols|reactor)\._\w+", README), [])


if __name__ == "__main__":
    unittest.main()
