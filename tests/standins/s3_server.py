"""moto's S3 served over real HTTP on 127.0.0.1, able to go down and come back with its objects.

`S3Server` puts moto's own WSGI application behind werkzeug, as moto's `ThreadedMotoServer`
does, with a thin layer in front that counts the objects each key received (completed PUTs),
can slow every object upload (so a test can act in the middle of one), and keeps, for every
info.json that lands, the keys present at that instant. `stop()` closes the port (clients see
connection refused) and `start()` opens the same port again; moto keeps the objects in this
process meanwhile, as a real server keeps them on disk.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

INFO = "meta/info.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """An S3-compatible endpoint at `endpoint` (path-style: /BUCKET/KEY)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.app = DomainDispatcherApplication(create_backend_app)
        self.delay_s = 0.0
        self.puts: Counter[str] = Counter()  # "BUCKET/KEY" -> objects received
        self.info_states: list[tuple[bytes, set[str]]] = []  # (info.json, keys present then)
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = make_server(
            "127.0.0.1", self.port, self._wsgi, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def object_puts(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Key (below `prefix`) -> objects received, for the keys of `bucket`."""
        start = f"{bucket}/{prefix}"
        with self._lock:
            return {k[len(start) :]: n for k, n in self.puts.items() if k.startswith(start)}

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("the S3 server never saw what the test waited for")
            time.sleep(0.02)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = unquote(environ.get("PATH_INFO", "")).lstrip("/")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        whole_object = (method == "PUT" and "partNumber" not in query) or (
            method == "POST" and "uploadId" in query
        )
        is_object = whole_object and "/" in path
        if is_object and self.delay_s:
            time.sleep(self.delay_s)
        status: list[str] = []

        def recording_start_response(code: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *args)

        body = list(self.app(environ, recording_start_response))
        if is_object and status and status[0].startswith("200"):
            with self._lock:
                self.puts[path] += 1
            if path.endswith(INFO):
                self._keep_state(path)
        return body

    def _keep_state(self, info_key: str) -> None:
        bucket, key = info_key.split("/", 1)
        prefix = key[: -len(INFO)]
        s3 = self.client()
        info = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        keys: set[str] = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.update(obj["Key"][len(prefix) :] for obj in page.get("Contents", []))
        with self._lock:
            self.info_states.append((info, keys))
