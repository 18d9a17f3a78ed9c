"""What an install gives a user: mypy --strict sees the typed package, pytest finds the plugin.

The README's install command is an editable install in setuptools' *strict*
mode: the default ("lenient") mode imports the packages through a
``sys.meta_path`` finder written into site-packages, which mypy cannot
follow, so ``import protocols`` in a user's file failed mypy with "Cannot
find implementation or library stub".  This test builds the editable wheel
of a copy of the project exactly as pip does (setuptools' PEP 660 hook),
installs it into a fresh virtual environment (a wheel install is an unzip),
and runs ``mypy --strict`` on a user file against that environment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

USER_CODE = """
import smtplib
import ssl
import urllib.request

from protocols import CA_FILE, HTTPServer, SMTPServer, TCPServer, client_context


def send(server: SMTPServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
        client.sendmail("a@example.org", ["b@example.org"], "Subject: x\\r\\n\\r\\ny\\r\\n")


def fetch(server: HTTPServer) -> bytes:
    with urllib.request.urlopen(server.url + "/", timeout=5, context=client_context()) as r:
        body: bytes = r.read()
    return body


def port_of(server: TCPServer) -> int:
    return server.port


def trust() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=CA_FILE)
"""


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class ReadmeInstallCommandTest(unittest.TestCase):
    def test_readme_and_ci_use_the_same_editable_mode(self) -> None:
        readme = (ROOT / "README.md").read_text()
        ci = (ROOT / ".ci" / "run").read_text()
        [command] = re.findall(r"python -m pip install -e '\.\[test\]'[^&\n]*", readme)
        self.assertIn("--config-settings editable_mode=strict", command)
        installs = re.findall(r'pip install -q -e "[^"]*"[^\n|]*', ci)
        self.assertTrue(installs)
        for line in installs:
            self.assertIn("--config-settings editable_mode=strict", line)

    def test_setup_cfg_declares_the_pytest_plugin_and_the_client_extras(self) -> None:
        import configparser

        cfg = configparser.ConfigParser()
        cfg.read(ROOT / "setup.cfg")
        self.assertIn(
            "testservers = protocols.pytest_plugin", cfg["options.entry_points"]["pytest11"]
        )
        for extra in ("test", "dev"):
            wanted = cfg["options.extras_require"][extra].split()
            for client in ("requests", "httpx", "urllib3"):
                self.assertIn(client, wanted, extra)


@unittest.skipUnless(_have("setuptools") and _have("mypy"), "needs setuptools and mypy")
class EditableInstallTypingTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="ts-install-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        src = self.tmp / "src"
        src.mkdir()
        for name in ("setup.cfg", "pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, src / name)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for pkg in ("reactor", "protocols"):
            shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore)
        self.src = src

    def build_and_install(self, mode: str) -> Path:
        """Build the editable wheel in ``mode`` and unpack it into a new venv; its python."""
        out = self.tmp / f"wheel-{mode}"
        out.mkdir()
        code = (
            "import sys; from setuptools import build_meta as b; "
            "print(b.build_editable(sys.argv[1], {'editable_mode': sys.argv[2]}))"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, str(out), mode],
            cwd=self.src,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        wheel = out / proc.stdout.strip().splitlines()[-1]
        env_dir = self.tmp / f"venv-{mode}"
        venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
        python = env_dir / "bin" / "python"
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        with zipfile.ZipFile(wheel) as z:
            z.extractall(purelib)
            names = z.namelist()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = (Path(purelib) / entry_points).read_text()
        self.assertIn("[pytest11]", text)
        self.assertIn("testservers = protocols.pytest_plugin", text)
        return python

    def test_mypy_strict_on_user_code_after_the_readme_install(self) -> None:
        python = self.build_and_install("strict")
        user = self.tmp / "user"
        user.mkdir()
        (user / "user_code.py").write_text(USER_CODE)
        env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--strict",
                "--python-executable",
                str(python),
                "--cache-dir",
                str(self.tmp / "mypy-cache"),
                "user_code.py",
            ],
            cwd=user,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        self.assertEqual(proc.returncode, 0, proc.stdout[-3000:] + proc.stderr[-2000:])
        self.assertIn("Success", proc.stdout)
        # The installed package is the one that runs, too.
        run = subprocess.run(
            [
                str(python),
                "-c",
                "import protocols, protocols.pytest_plugin; print(protocols.CA_FILE)",
            ],
            cwd=user,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        # protocols.pytest_plugin imports pytest, which this bare venv lacks.
        self.assertIn("No module named 'pytest'", run.stderr)
        run = subprocess.run(
            [str(python), "-c", "import protocols; print(protocols.CA_FILE)"],
            cwd=user,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertTrue(run.stdout.strip().endswith("ca.pem"))


if __name__ == "__main__":
    unittest.main()
