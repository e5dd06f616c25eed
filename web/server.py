"""`tonesweep serve`: the tone-transfer page and the export bundles under a folder, on 127.0.0.1.

Routes (read-only; nothing else on the disk is reachable):
- ``/`` and ``/page/...``: the page (``web.assets``);
- ``/models.json``: the bundles found now, ``{"models": [{"name", "path", "precision", "bytes"}]}``;
- ``/models/NAME/...``: files inside bundle NAME (a folder with a tonesweep model-card.json, either
  ``--models DIR`` itself or one of its subfolders).
The bundles are looked up at every request, so a bundle exported while the server runs appears on
the next page load. Responses are gzip-compressed for a browser that accepts it (every browser does;
a demo bundle's first load goes from ~0.8 MB to ~0.23 MB), and HEAD answers with GET's headers.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

from common.bounds import PORT_OR_ANY
from common.errors import UserError
from common.net import bind_error
from trainers.export.card import check_bundle_files, find_card, read_card
from web.assets import ENTRY, page_files

GZIP_CACHE_ENTRIES = 64  # compressed bodies kept (the page's files and the bundles' few files)
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".bin": "application/octet-stream", ".html": "text/html; charset=utf-8"}


def find_bundles(models_dir: Path) -> dict[str, Path]:
    """Bundle name -> folder: ``models_dir`` itself when it is a bundle, else its bundle subfolders."""
    card = find_card(models_dir)
    if card is not None:
        return {str(card.get("instrument") or models_dir.name): models_dir}
    if not models_dir.is_dir():  # removed while serving: no bundles now
        return {}
    return {sub.name: sub for sub in sorted(models_dir.iterdir()) if sub.is_dir() and find_card(sub) is not None}


def model_list(models_dir: Path) -> dict:
    models = []
    for name, folder in find_bundles(models_dir).items():
        card = find_card(folder)
        if card is None:  # removed or replaced since it was found
            continue
        models.append({"name": name, "path": f"models/{name}/", "instrument": card.get("instrument"),
                       "precision": card.get("precision"), "bytes": (card.get("bytes") or {}).get("total")})
    return {"models": models}


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (``gzip``, ``x-gzip`` or ``*``, not at ``q=0``)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and _q_value(q[2:]) == 0.0)
    return False


def _q_value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0


class PageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, models_dir: Path, host: str, port: int):
        self.models_dir = models_dir
        self.damaged: dict[str, str] = {}  # bundle name -> why it is not whole, found at start
        self.page = page_files()
        self._gzipped: dict[bytes, bytes] = {}   # sha256 of a body -> its gzip (oldest dropped first)
        self._gzip_lock = threading.Lock()
        super().__init__((host, port), PageHandler)

    def gzip(self, body: bytes) -> bytes:
        """``body`` gzip-compressed, kept by content: the page's runtime and wasm binary are compressed once,
        a bundle file again only when it changed."""
        key = hashlib.sha256(body).digest()
        with self._gzip_lock:
            cached = self._gzipped.get(key)
        if cached is None:
            cached = gzip.compress(body, compresslevel=6, mtime=0)
            with self._gzip_lock:
                if len(self._gzipped) >= GZIP_CACHE_ENTRIES:
                    self._gzipped.pop(next(iter(self._gzipped)))
                self._gzipped[key] = cached
        return cached

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class PageHandler(BaseHTTPRequestHandler):
    server: PageServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer(with_body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - the same headers as GET, no body
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        try:
            body, name = self._resolve(unquote(urlsplit(self.path).path))
        except (OSError, ValueError):  # a file removed while read, a NUL byte (%00) in the path
            body, name = None, ""
        except UserError as err:  # a bundle file damaged since the server started: never hand it out
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, explain=str(err))
            return
        if body is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        gzipped = accepts_gzip(self.headers.get("Accept-Encoding", ""))
        if gzipped:
            body = self.server.gzip(body)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", TYPES.get(Path(name).suffix, mimetypes.guess_type(name)[0] or "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def _resolve(self, path: str) -> tuple[bytes | None, str]:
        if path in ("/", "/index.html", f"/{ENTRY}"):
            return self.server.page[ENTRY], "index.html"
        if path.lstrip("/") in self.server.page:
            return self.server.page[path.lstrip("/")], path
        if path == "/models.json":
            return json.dumps(model_list(self.server.models_dir)).encode(), path
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] == "models":
            folder = find_bundles(self.server.models_dir).get(parts[1])
            if folder is not None:
                target = (folder / "/".join(parts[2:])).resolve()
                if target.is_file() and target.is_relative_to(folder.resolve()):
                    check_bundle_files(folder, read_card(folder), [target.relative_to(folder.resolve()).as_posix()])
                    return target.read_bytes(), target.name
        return None, path

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # one line per file would bury the address line


def start_server(models_dir: str | Path, host: str = "127.0.0.1", port: int = 8000) -> PageServer:
    """Bind and start serving in a background thread; ``server.shutdown()`` stops it."""
    models_dir = Path(models_dir)
    PORT_OR_ANY.check(port, "--port")
    if not models_dir.is_dir():
        raise UserError(f"--models {models_dir}: folder not found; pass a folder of `tonesweep export` bundles "
                        "(e.g. demo/export after `make demo`)")
    bundles = find_bundles(models_dir)
    damaged = damaged_bundles(bundles)
    if bundles and len(damaged) == len(bundles):  # nothing whole to serve
        raise UserError(next(iter(damaged.values())))
    if not bundles:
        raise UserError(f"--models {models_dir}: no export bundle in it or its subfolders (none has a model-card.json); "
                        "export one with `tonesweep export --out DIR/NAME`")
    try:
        server = PageServer(models_dir, host, port)
    except OSError as err:  # socket.gaierror too: an unknown host name
        raise bind_error(host, port, err) from None
    server.damaged = damaged
    threading.Thread(target=server.serve_forever, name="tonesweep-serve", daemon=True).start()
    return server


def damaged_bundles(bundles: dict[str, Path]) -> dict[str, str]:
    """Bundle name -> why it is not whole (``trainers.export.card.check_bundle_files``), for the damaged ones."""
    damaged = {}
    for name, folder in bundles.items():
        try:
            check_bundle_files(folder, read_card(folder))
        except (UserError, OSError) as err:
            damaged[name] = str(err)
    return damaged


def serve(models_dir: str | Path, host: str, port: int, say: Callable[[str], None], stop: threading.Event) -> None:
    """Serve until ``stop`` is set (the command sets it on Ctrl-C or SIGTERM); the port is freed. A
    damaged bundle is named after the address line; its damaged files are never served (HTTP 500)."""
    server = start_server(models_dir, host, port)
    try:
        names = ", ".join(find_bundles(Path(models_dir)))
        say(f"tone-transfer page for {names} at {server.url} (Ctrl-C stops)")
        for name, why in server.damaged.items():
            say(f"  {name} will not load in the page: {why}")
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
