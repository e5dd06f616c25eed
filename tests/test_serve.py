"""`tonesweep serve`'s HTTP answers without a browser: compressed for a client that accepts gzip,
plain for one that does not, HEAD with GET's headers and no body (the page in Chromium: test_page.py)."""

from __future__ import annotations

import gzip
import http.client
import threading

import pytest

from web.server import PageServer, accepts_gzip


@pytest.fixture()
def server(tmp_path):
    """The page server on 127.0.0.1 and a free port, in this process; shut down at the end."""
    page = PageServer(tmp_path, "127.0.0.1", 0)
    thread = threading.Thread(target=page.serve_forever, daemon=True)
    thread.start()
    yield page
    page.shutdown()
    page.server_close()
    thread.join(timeout=10)


def fetch(server: PageServer, method: str, path: str, **headers) -> tuple[http.client.HTTPResponse, bytes]:
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def test_the_page_is_sent_compressed_to_a_browser_and_plain_to_others(server):
    runtime = next(name for name in server.page if name.endswith("tf-runtime.mjs"))
    plain, body = fetch(server, "GET", f"/{runtime}")
    assert plain.status == 200 and plain.getheader("Content-Encoding") is None and body == server.page[runtime]
    packed, packed_body = fetch(server, "GET", f"/{runtime}", **{"Accept-Encoding": "gzip, deflate, br"})
    assert packed.getheader("Content-Encoding") == "gzip" and packed.getheader("Vary") == "Accept-Encoding"
    assert gzip.decompress(packed_body) == body and len(packed_body) < len(body) / 2
    assert int(packed.getheader("Content-Length")) == len(packed_body)
    again, again_body = fetch(server, "GET", f"/{runtime}", **{"Accept-Encoding": "gzip"})
    assert again_body == packed_body  # the same bytes, compressed once
    refused, refused_body = fetch(server, "GET", "/models.json", **{"Accept-Encoding": "gzip;q=0, identity"})
    assert refused.getheader("Content-Encoding") is None and refused_body == b'{"models": []}'


def test_head_answers_with_the_headers_of_get_and_no_body(server):
    got, got_body = fetch(server, "GET", "/", **{"Accept-Encoding": "gzip"})
    head, head_body = fetch(server, "HEAD", "/", **{"Accept-Encoding": "gzip"})
    assert head.status == got.status == 200 and head_body == b""
    for name in ("Content-Type", "Content-Length", "Content-Encoding"):
        assert head.getheader(name) == got.getheader(name), name
    missing, _ = fetch(server, "HEAD", "/models/none/model.json")
    assert missing.status == 404


@pytest.mark.parametrize("header, accepted", [
    ("gzip", True), ("deflate, gzip;q=0.5", True), ("*", True), ("GZIP", True), ("x-gzip", True),
    ("gzip;q=0", False), ("gzip; q=0.0", False), ("identity", False), ("", False), ("br", False),
])
def test_which_accept_encoding_admits_gzip(header, accepted):
    assert accepts_gzip(header) is accepted
