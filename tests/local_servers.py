"""Real servers on 127.0.0.1 for tests: an HTTP server and an SMTP server (aiosmtpd).

Both record what they receive before they answer, so a client call that has
returned has been recorded: tests need no sleeps. Both can start on a socket
reserved beforehand with `reserve_port()`: until the server starts, a
connection to that port is refused (the socket is bound but not listening),
which makes "the server is down, then up on the same port" race-free.

    with LocalHttpServer() as http:
        ... POST to http.url("/v2/enqueue") ...
        http.requests[0].json()

    with LocalSmtpServer() as smtp:
        ... send to 127.0.0.1:smtp.port ...
        smtp.messages[0].message["Subject"]
"""

from __future__ import annotations

import collections
import contextlib
import email
import email.policy
import json
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


def reserve_port() -> socket.socket:
    """A socket bound to a free loopback port, not listening: connections to it are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


def port_of(sock: socket.socket) -> int:
    return cast(int, sock.getsockname()[1])


# -- HTTP ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class LocalHttpServer:
    """A threaded HTTP server that records each request and answers from a queue of replies.

    With the queue empty it answers 202 with PagerDuty's success body.
    """

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.requests: list[HttpRequest] = []
        self.replies: collections.deque[HttpReply] = collections.deque()
        self._lock = threading.Lock()
        self._sock = sock or reserve_port()
        self.port = port_of(self._sock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/v2/enqueue") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def reply(self, status: int, body: Any = b"", **headers: str) -> None:
        """Queue the reply to the next request (a dict body is sent as JSON)."""
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        self.replies.append(HttpReply(status, body, headers))

    def _next_reply(self, request: HttpRequest) -> HttpReply:
        with self._lock:
            self.requests.append(request)
            if self.replies:
                return self.replies.popleft()
        dedup_key = ""
        with contextlib.suppress(ValueError, AttributeError):
            dedup_key = str(request.json().get("dedup_key", ""))
        body = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
        return HttpReply(202, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def start(self) -> LocalHttpServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                reply = owner._next_reply(
                    HttpRequest("POST", self.path, dict(self.headers.items()), body)
                )
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer((HOST, self.port), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = self._sock
        server.server_address = self._sock.getsockname()
        server.server_activate()  # listen
        server.daemon_threads = True
        self._server = server
        # A short poll interval: `shutdown()` waits for the serving loop to look.
        self._thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> LocalHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- SMTP ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedEmail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool  # whether the session was encrypted (STARTTLS or implicit TLS)
    login: str | None  # the authenticated user, if any


class _Handler:
    def __init__(self, owner: LocalSmtpServer) -> None:
        self.owner = owner

    async def handle_DATA(  # noqa: N802 - aiosmtpd's name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        owner = self.owner
        with owner._lock:
            if owner.data_replies:
                return owner.data_replies.popleft()
            raw = envelope.original_content or b""
            message = email.message_from_bytes(raw, policy=email.policy.default)
            owner.messages.append(
                ReceivedEmail(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=message,
                    tls=session.ssl is not None  # STARTTLS
                    or (
                        server.transport is not None
                        and server.transport.get_extra_info("ssl_object") is not None
                    ),
                    login=cast("str | None", session.auth_data),
                )
            )
        return "250 Message accepted for delivery"


class _BoundController(Controller):
    """aiosmtpd's Controller, on a socket bound beforehand (so port 0 works)."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        self._sock = sock
        super().__init__(handler, hostname=HOST, port=port_of(sock), **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class LocalSmtpServer:
    """aiosmtpd on 127.0.0.1, recording each email.

    `starttls_context`: offer STARTTLS with this server context (and require
    it when `require_starttls`); `implicit_tls_context`: TLS from the start
    (smtps). `credentials` (user, password): offer AUTH PLAIN/LOGIN and accept
    those; `auth_require_tls=False` offers it without TLS too.
    `data_replies` queues answers to the next DATA commands (e.g. "451 later").
    """

    def __init__(
        self,
        sock: socket.socket | None = None,
        *,
        starttls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        implicit_tls_context: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
        auth_require_tls: bool = True,
    ) -> None:
        self.messages: list[ReceivedEmail] = []
        self.data_replies: collections.deque[str] = collections.deque()
        self.failed_logins: list[str] = []
        self._lock = threading.Lock()
        self._sock = sock or reserve_port()
        self.port = port_of(self._sock)
        self._credentials = credentials
        smtp_parameters: dict[str, Any] = {}
        if starttls_context is not None:
            smtp_parameters["tls_context"] = starttls_context
            smtp_parameters["require_starttls"] = require_starttls
        if credentials is not None:
            smtp_parameters["authenticator"] = self._authenticate
            smtp_parameters["auth_require_tls"] = auth_require_tls
        self._controller = _BoundController(
            _Handler(self),
            self._sock,
            ssl_context=implicit_tls_context,
            **smtp_parameters,
        )
        self._running = False

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self._credentials is not None
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if (user, password) == self._credentials:
                return AuthResult(success=True, auth_data=user)
            with self._lock:
                self.failed_logins.append(user)
        return AuthResult(success=False, handled=False)

    def start(self) -> LocalSmtpServer:
        self._controller.start()
        self._running = True
        return self

    def stop(self) -> None:
        if self._running:
            self._controller.stop()
            self._running = False

    def __enter__(self) -> LocalSmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- TLS -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM files)."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate only (host names are checked)."""
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed_certificate(directory: Path) -> Certificate | None:
    """Make one with the openssl command; None when it is not installed."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Certificate(cert, key)
