"""A Flask app served on 127.0.0.1 in a thread of its own: the local hosted UI, the demo BFF."""

from __future__ import annotations

import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """No access log: its URLs carry codes, states and nonces, which are never logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class LoopbackServer:
    """`app` on 127.0.0.1:`port` (0: any free port), bound when made, served from `start`."""

    def __init__(self, app: Flask, port: int, name: str) -> None:
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, app, threaded=True, request_handler=QuietHandler
        )
        self.port = self._server.server_port
        self._name = name
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
