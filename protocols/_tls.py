"""The localhost test certificate and ready-made TLS contexts.

``protocols/certs/`` holds a test CA (``ca.pem``, its key destroyed after
signing) and a leaf certificate for ``DNS:localhost``, ``IP:127.0.0.1`` and
``IP:::1`` (``localhost.pem`` + ``localhost-key.pem``; both in
``localhost-keycert.pem``), ECDSA P-256, valid until 2126.  Regenerate them
with ``sh tests/make_certs.sh``.

Never use these outside tests: the private key is public.
"""

from __future__ import annotations

import os
import ssl

__all__ = [
    "CA_FILE",
    "CERT_DIR",
    "CERT_FILE",
    "KEYCERT_FILE",
    "KEY_FILE",
    "client_context",
    "localhost_contexts",
    "server_context",
]

#: Directory of the committed PEM files.
CERT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "certs")
#: The test CA certificate: what a client trusts (``cafile=``).
CA_FILE = os.path.join(CERT_DIR, "ca.pem")
#: The localhost leaf certificate.
CERT_FILE = os.path.join(CERT_DIR, "localhost.pem")
#: The leaf's private key (PKCS#8, unencrypted).
KEY_FILE = os.path.join(CERT_DIR, "localhost-key.pem")
#: Key and certificate in one file (the shape of CPython's ``keycert.pem``).
KEYCERT_FILE = os.path.join(CERT_DIR, "localhost-keycert.pem")


def localhost_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Return ``(server_ctx, client_ctx)`` for TLS on localhost.

    ``server_ctx`` presents the localhost certificate; pass it as
    ``ssl_context=`` (native servers) or ``sslctx=`` (``TestHTTPServer``).
    ``client_ctx`` verifies it with full checking (``CERT_REQUIRED`` and
    hostname checks) against the test CA only, so ``https://localhost``,
    ``https://127.0.0.1`` and ``https://[::1]`` all verify.  Both are new
    objects on every call; the caller may change them.

    :raises OSError: the certificate files are missing.
    """
    return server_context(), client_context()


def server_context() -> ssl.SSLContext:
    """A new server context presenting the localhost certificate.

    :raises OSError: the certificate files are missing.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT_FILE, KEY_FILE)
    return ctx


def client_context() -> ssl.SSLContext:
    """A new client context that trusts only the test CA (CERT_REQUIRED, hostname checks).

    Ready for ``smtplib`` (``context=``), ``urllib.request`` (``context=``),
    ``http.client``, ``httpx`` (``verify=``) and ``urllib3``
    (``ssl_context=``); ``requests`` and ``curl`` take the file itself:
    ``verify=CA_FILE``, ``--cacert CA_FILE``.

    :raises OSError: the CA file is missing.
    """
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=CA_FILE)
