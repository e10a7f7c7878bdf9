"""A refusing front for fake-gcs-server, so that the local stack is safe on a laptop with a browser open.

fake-gcs-server answers every origin with CORS `*`, and its filesystem backend writes an object named `../x` outside
its folder: any web page could read the bucket, or write files anywhere the user can. The local stack exposes only
this front (`python -m devstack.gcs_guard`), which refuses
- browser requests: an `Origin` or `Sec-Fetch-*` header (every current browser sends one), or a `Host` other than the
  loopback address it serves (what DNS rebinding sends);
- object names with a `..` segment, percent-encoded or not, in the path, the query, or any body fake-gcs-server reads
  names and metadata from (a JSON body, an upload's first multipart part whatever its type, an XML API form POST's
  fields and file names), read as fake-gcs-server reads it; such a body the guard cannot parse strictly (not one
  UTF-8 JSON document, trailing bytes, a multipart body with defects or an unknown transfer encoding) is refused;
  and batch requests (which nest whole requests);
and passes everything else to fake-gcs-server unchanged, minus CORS headers in the answers.
"""

from __future__ import annotations

import argparse
import email.message
import email.parser
import email.policy
import http.client
import json
import re
import socket
import urllib.parse
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TRAVERSAL = re.compile(r"(?:^|[/\\])\.\.(?:[/\\]|$)")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
MAX_BODY = 1 << 30


def traverses(text: str) -> bool:
    """Whether `text`, or its percent-decoding (once or twice), has a `..` path segment."""
    once = urllib.parse.unquote(text)
    return any(TRAVERSAL.search(t) for t in (text, once, urllib.parse.unquote(once)))


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


class Unparsed(Exception):
    """A metadata body the guard cannot read exactly as fake-gcs-server would: refused rather than passed unchecked."""


def json_strings(body: bytes) -> list[str]:
    """The strings of a JSON document that is exactly one strict UTF-8 JSON value (fake-gcs-server's Go decoder reads
    the first value and ignores what follows, and replaces invalid UTF-8: such bodies are refused, not guessed at)."""
    try:
        return list(strings(json.loads(body.decode("utf-8"))))
    except (ValueError, RecursionError) as e:
        raise Unparsed("a metadata body that is not one strict UTF-8 JSON document is refused") from e


def parts(content_type: str, body: bytes) -> list[email.message.MIMEPart]:
    """The parts of a multipart body, split at the boundary parameter of `content_type` whatever its media type (as Go's
    mime/multipart reader is given it); refused when the parser notes any defect."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary or any(c in boundary for c in '"\\\r\n'):
        raise Unparsed("a multipart body without a usable boundary is refused")
    head = f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    found = list(message.iter_parts()) if message.is_multipart() else []
    if message.defects or not found or any(part.defects or part.is_multipart() for part in found):
        raise Unparsed("a multipart body the guard cannot split exactly is refused")
    return found


def payload(part: email.message.MIMEPart) -> bytes:
    """A part's bytes as Go's multipart reader hands them over: quoted-printable decoded, anything else as sent."""
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding not in ("", "7bit", "8bit", "binary", "quoted-printable"):
        raise Unparsed(f"a part with Content-Transfer-Encoding {encoding!r} is refused")
    data = part.get_payload(decode=True) if encoding == "quoted-printable" else part.get_payload()
    return data if isinstance(data, bytes) else str(data).encode("ascii", "surrogateescape")


def body_strings(kind: str, content_type: str, body: bytes) -> list[str]:
    """The strings fake-gcs-server reads as names and metadata from a body of `kind` (see `metadata_kind`)."""
    if kind == "json":
        return json_strings(body) if body.strip() else []
    found = parts(content_type, body)
    if kind == "multipart":  # the first part is the metadata, whatever its Content-Type says; the rest is the object
        return json_strings(payload(found[0]))
    values: list[str] = []  # a form: every field's name and value, and every file's name (the file itself is data)
    for part in found:
        name, filename = part.get_param("name", header="content-disposition"), part.get_filename()
        values += [v for v in (name, filename) if isinstance(v, str)]
        if not filename:
            values.append(payload(part).decode("latin-1"))  # the `key` field holds the object name
    return values


def metadata_kind(path: str, query: list[tuple[str, str]], content_type: str) -> str | None:
    """How fake-gcs-server reads this request's body for names and metadata: `json`, `multipart` (an upload's first
    part), `form` (an XML API form POST), or None when the body is only an object's bytes. Every value of a repeated
    query parameter counts, so that no parser difference can turn a metadata body into data."""
    if path.startswith("/upload/"):
        types = [v for k, v in query if k == "uploadType"]
        if types and all(t == "media" for t in types):
            return None
        if "multipart" in types:
            return "multipart"
        return None if any(k == "upload_id" for k, _ in query) else "json"  # a resumable upload's chunks are data
    if path.startswith("/storage/v1/"):
        return "json"
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        return "form"
    return None


def refusal(method: str, target: str, headers: Mapping[str, str], body: bytes, hosts: set[str]) -> str | None:
    """Why this request must not reach fake-gcs-server, or None."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "origin" in lowered or any(k.startswith("sec-fetch-") for k in lowered) or method == "OPTIONS":
        return "browser requests are refused by the local stack"
    if lowered.get("host", "") not in hosts:
        return f"Host {lowered.get('host', '')!r} is not this loopback server"
    parts = urllib.parse.urlsplit(target)
    if parts.path.startswith("/batch"):
        return "batch requests are refused by the local stack"
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    values = [parts.path, *(v for pair in query for v in pair)]
    content_type = lowered.get("content-type", "")
    kind = metadata_kind(parts.path, query, content_type)
    if kind is not None and body:
        try:
            values += body_strings(kind, content_type, body)
        except Unparsed as e:
            return str(e)
    if any(traverses(v) for v in values):
        return "object names with a '..' segment are refused by the local stack"
    return None


class Guard(BaseHTTPRequestHandler):
    """Checks one request, then relays it to fake-gcs-server and its answer back."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    """Seconds a kept-alive client connection may sit idle (or a request stall) before it is closed: every idle
    connection holds a thread and a file, and clients whose pools are never closed would keep them forever."""
    upstream: tuple[str, int] = ("127.0.0.1", 0)
    hosts: set[str] = set()

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go out at once

    def handle_one(self) -> None:
        body = self._body()
        if body is None:
            return
        reason = refusal(self.command, self.path, dict(self.headers.items()), body, self.hosts)
        if reason:
            self._refuse(reason)
            return
        connection = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        finally:
            connection.close()
        self.send_response(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP | {"content-length"} and not key.lower().startswith("access-control-"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_one

    def _body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._refuse("request body too large for the local stack", 413)
            return None
        return self.rfile.read(length)

    def _chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():  # trailer lines
            pass
        return b"".join(chunks)

    def _refuse(self, reason: str, status: int = 403) -> None:
        self.log_error("refused %s %s: %s", self.command, self.path[:200], reason)
        data = json.dumps({"error": {"code": status, "message": reason}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Passed requests are fake-gcs-server's to log; refusals are logged by _refuse."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.gcs_guard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="port to serve on 127.0.0.1")
    parser.add_argument("--upstream-port", type=int, required=True, help="fake-gcs-server's port on 127.0.0.1")
    args = parser.parse_args(argv)
    Guard.upstream = ("127.0.0.1", args.upstream_port)
    Guard.hosts = {f"{host}:{args.port}" for host in ("127.0.0.1", "localhost")}
    with ThreadingHTTPServer(("127.0.0.1", args.port), Guard) as server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
