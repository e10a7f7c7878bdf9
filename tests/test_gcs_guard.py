"""devstack.gcs_guard in front of fake-gcs-server's filesystem backend: the real storage client works through it;
browsers and `..` object names never reach fake-gcs-server, which listens only where browsers refuse to go."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage

from devstack import emulators
from devstack.emulators import Service
from devstack.gcs_guard import Guard, refusal, traverses

pytestmark = pytest.mark.integration

BUCKET = "guarded"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Service, Path]]:
    top = tmp_path_factory.mktemp("guard")
    root = top / "deep" / "gcs"
    root.mkdir(parents=True)
    guard, upstream = emulators.start_guarded_fake_gcs(emulators.free_port(), root, top / "logs")
    try:
        emulators.ensure_bucket(guard.host, "p", BUCKET)
        yield guard, upstream, top
    finally:
        guard.stop()
        upstream.stop()


@pytest.fixture
def bucket(guarded: tuple[Service, Service, Path]) -> storage.Bucket:
    return emulators.storage_client(guarded[0].host, "p").bucket(BUCKET)


def raw(url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback only
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def files_outside(top: Path) -> list[Path]:
    root = top / "deep" / "gcs"
    return [p for p in top.rglob("*") if p.is_file() and root not in p.parents and "logs" not in p.parts]


def test_the_storage_client_works_through_the_guard(bucket: storage.Bucket) -> None:
    blob = bucket.blob("data/a.csv")
    blob.metadata = {"k": "v"}
    blob.upload_from_string(b"x" * 10, content_type="text/csv", if_generation_match=0)
    big = bucket.blob("models/big.bin", chunk_size=256 * 1024)  # resumable upload in chunks
    big.upload_from_string(b"y" * (600 * 1024))
    assert bucket.blob("models/big.bin").download_as_bytes() == b"y" * (600 * 1024)
    bucket.copy_blob(blob, bucket, "data/b.csv")
    fetched = bucket.get_blob("data/b.csv")
    assert fetched is not None
    assert fetched.download_as_bytes() == b"x" * 10
    fetched.metadata = {"k": "w"}
    fetched.patch()
    assert sorted(b.name for b in bucket.list_blobs(prefix="data/")) == ["data/a.csv", "data/b.csv"]
    bucket.delete_blob("data/b.csv")
    assert bucket.get_blob("data/b.csv") is None


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "../../../escape", "..", "a/.."])
def test_object_names_with_dot_dot_are_refused_and_nothing_lands_outside(
    bucket: storage.Bucket, guarded: tuple[Service, Service, Path], name: str
) -> None:
    with pytest.raises(gexc.Forbidden, match=r"'\.\.' segment"):
        bucket.blob(name).upload_from_string(b"pwned")
    with pytest.raises(gexc.Forbidden):
        bucket.blob(name, chunk_size=256 * 1024).upload_from_string(b"z" * (300 * 1024))  # resumable: name in JSON
    source = bucket.blob("data/source.csv")
    source.upload_from_string(b"s")
    with pytest.raises((gexc.Forbidden, gexc.BadRequest)):  # the client itself drops a bare ".." from the URL
        bucket.copy_blob(source, bucket, name)
    assert files_outside(guarded[2]) == []


def test_percent_encoded_dot_dot_is_refused(guarded: tuple[Service, Service, Path]) -> None:
    url = f"{guarded[0].url}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=%252E%252E%252Fescape"
    status, _, _ = raw(url, "POST", {"Content-Type": "text/plain"}, b"pwned")
    assert status == 403
    assert files_outside(guarded[2]) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site"},
        {"Host": "evil.example"},
    ],
    ids=["cross-origin", "no-cors", "dns-rebinding"],
)
def test_browser_requests_are_refused_without_cors_headers(
    guarded: tuple[Service, Service, Path], headers: dict[str, str]
) -> None:
    status, answer, body = raw(f"{guarded[0].url}/storage/v1/b/{BUCKET}/o", headers=headers)
    assert status == 403
    assert not any(k.lower().startswith("access-control-") for k in answer)
    assert "refused" in json.loads(body)["error"]["message"] or "Host" in json.loads(body)["error"]["message"]


def test_a_cors_preflight_gets_no_cors_headers(guarded: tuple[Service, Service, Path]) -> None:
    headers = {"Origin": "http://evil.example", "Access-Control-Request-Method": "DELETE"}
    status, answer, _ = raw(f"{guarded[0].url}/storage/v1/b/{BUCKET}/o/x", "OPTIONS", headers)
    assert status == 403
    assert not any(k.lower().startswith("access-control-") for k in answer)


def test_fake_gcs_server_itself_listens_on_a_port_browsers_refuse(guarded: tuple[Service, Service, Path]) -> None:
    guard, upstream, _ = guarded
    assert upstream.port in emulators.BROWSER_BLOCKED_PORTS
    status, answer, _ = raw(f"{upstream.url}/storage/v1/b", headers={"Origin": "http://evil.example"})
    assert answer.get("Access-Control-Allow-Origin") == "*"  # why it must never be reachable from a page
    status, answer, _ = raw(f"{guard.url}/storage/v1/b")
    assert status == 200
    assert not any(k.lower().startswith("access-control-") for k in answer)


@pytest.mark.parametrize(
    "text", ["..", "../x", "a/../b", "a\\..\\b", "%2e%2e/x", "%252e%252e%252fx", "a/%2E%2E", "/b/x/o/..%2Fy"]
)
def test_traversal_spellings(text: str) -> None:
    assert traverses(text)


@pytest.mark.parametrize("text", ["a..b", "...", "data/x..csv", "models/model-1.pkl", ".hidden", "a/.b"])
def test_names_that_only_contain_dots_pass(text: str) -> None:
    assert not traverses(text)


def test_names_inside_json_and_multipart_bodies_are_checked() -> None:
    hosts = {"127.0.0.1:1"}
    headers = {"Host": "127.0.0.1:1", "Content-Type": "application/json"}
    escaped = b'{"n\\u0061me": "\\u002e\\u002e/x"}'
    assert refusal("POST", "/upload/storage/v1/b/b/o?uploadType=resumable", headers, escaped, hosts)
    multipart = (
        b"--B\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        b'{"name": "../x"}\r\n--B\r\nContent-Type: text/csv\r\n\r\na,b\r\n../data,..\r\n--B--\r\n'
    )
    related = headers | {"Content-Type": 'multipart/related; boundary="B"'}
    assert refusal("POST", "/upload/storage/v1/b/b/o?uploadType=multipart", related, multipart, hosts)
    harmless = multipart.replace(b"../x", b"data/x.csv")  # `..` inside the file's own bytes is data
    assert refusal("POST", "/upload/storage/v1/b/b/o?uploadType=multipart", related, harmless, hosts) is None
    assert refusal("POST", "/batch/storage/v1", headers, b"", hosts)


def test_an_objects_own_bytes_are_data_even_when_json() -> None:
    hosts = {"127.0.0.1:1"}
    headers = {"Host": "127.0.0.1:1", "Content-Type": "application/json"}
    claim = b'{"state": "failed", "error": "no such file ../data/x.csv"}'
    media = "/upload/storage/v1/b/b/o?uploadType=media&name=models/claims/f.json"
    assert refusal("POST", media, headers, claim, hosts) is None
    chunk = "/upload/storage/v1/b/b/o?uploadType=resumable&upload_id=abc"
    assert refusal("PUT", chunk, headers, claim, hosts) is None
    assert refusal("PUT", "/b/models/claims/f.json", headers, claim, hosts) is None  # XML API: the body is the object
    assert refusal("PATCH", "/storage/v1/b/b/o/x", headers, b'{"metadata": {"k": "../v"}}', hosts)


def test_the_pubsub_emulator_listens_where_browsers_refuse_by_default(pubsub_emulator: Service) -> None:
    from devstack.run import StackSettings

    headers = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    _, answer, _ = raw(f"{pubsub_emulator.url}/v1/projects/p/topics/t:publish", "OPTIONS", headers)
    assert answer.get("Access-Control-Allow-Origin") == "http://evil.example"  # any page may publish, pull, delete
    assert StackSettings.model_fields["stack_pubsub_port"].default in emulators.BROWSER_BLOCKED_PORTS


def multipart(first_headers: bytes, metadata: bytes, boundary: bytes = b"B") -> bytes:
    return (
        b"--" + boundary + b"\r\n" + first_headers + b"\r\n" + metadata + b"\r\n"
        b"--" + boundary + b"\r\nContent-Type: text/csv\r\n\r\na,b\r\n--" + boundary + b"--\r\n"
    )


def form(key: bytes, filename: bytes = b"f.csv") -> bytes:
    return (
        b'--F\r\nContent-Disposition: form-data; name="key"\r\n\r\n' + key + b"\r\n"
        b'--F\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: text/csv\r\n\r\na,b\r\n--F--\r\n"
    )


UPLOAD = f"/upload/storage/v1/b/{BUCKET}/o?uploadType="
RELATED = 'multipart/related; boundary="B"'
VARIANTS = {  # each bypassed an earlier guard; the target, Content-Type and body of one request
    "capitalised-media-type": (UPLOAD + "multipart", 'Multipart/Related; boundary="B"',
                               multipart(b"Content-Type: application/json\r\n", b'{"name": "../x"}')),
    "text-plain-metadata-part": (UPLOAD + "multipart", RELATED,
                                 multipart(b"Content-Type: text/plain\r\n", b'{"name": "../x"}')),
    "untyped-metadata-part": (UPLOAD + "multipart", RELATED, multipart(b"", b'{"name": "../x"}')),
    "trailing-bytes-after-json": (UPLOAD + "resumable", "application/json", b'{"name": "../x"} and more'),
    "invalid-utf8": (UPLOAD + "resumable", "application/json", b'{"name": "../x", "k": "\xff"}'),
    "xml-form-post": (f"/{BUCKET}", 'multipart/form-data; boundary="F"', form(b"../x")),
    "trailing-bytes-in-a-part": (UPLOAD + "multipart", RELATED,
                                 multipart(b"Content-Type: application/json\r\n", b'{"name": "../x"}}}')),
    "boundary-on-another-media-type": (UPLOAD + "multipart", "text/plain; boundary=B",
                                       multipart(b"Content-Type: application/json\r\n", b'{"name": "../x"}')),
    "multipart-listed-after-media": (UPLOAD + "multipart&uploadType=media", RELATED,
                                     multipart(b"", b'{"name": "../x"}')),
    "multipart-with-an-upload-id": (UPLOAD + "multipart&upload_id=1", RELATED, multipart(b"", b'{"name": "../x"}')),
    "base64-metadata-part": (UPLOAD + "multipart", RELATED, multipart(
        b"Content-Type: application/json\r\nContent-Transfer-Encoding: base64\r\n", b"eyJuYW1lIjogIi4uL3gifQ==")),
    "long-form-key": (f"/{BUCKET}", 'multipart/form-data; boundary="F"', form(b"a" * 5000 + b"/../x")),
    "form-file-name": (f"/{BUCKET}", 'multipart/form-data; boundary="F"', form(b"${filename}", b"../x")),
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_body_variants_are_refused(variant: str) -> None:
    target, content_type, body = VARIANTS[variant]
    headers = {"Host": "127.0.0.1:1", "Content-Type": content_type}
    assert refusal("POST", target, headers, body, {"127.0.0.1:1"}) is not None


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_body_variants_never_reach_fake_gcs_server(guarded: tuple[Service, Service, Path], variant: str) -> None:
    target, content_type, body = VARIANTS[variant]
    status, _, answer = raw(guarded[0].url + target, "POST", {"Content-Type": content_type}, body)
    assert status == 403, answer
    assert files_outside(guarded[2]) == []


@pytest.mark.parametrize(
    "variant", ["capitalised-media-type", "text-plain-metadata-part", "untyped-metadata-part", "xml-form-post"]
)
def test_the_same_shapes_with_a_plain_name_pass(variant: str) -> None:
    target, content_type, body = VARIANTS[variant]
    headers = {"Host": "127.0.0.1:1", "Content-Type": content_type}
    assert refusal("POST", target, headers, body.replace(b"../x", b"data/x.csv"), {"127.0.0.1:1"}) is None


def test_an_upload_through_the_guard_in_a_capitalised_multipart_body_is_stored(
    guarded: tuple[Service, Service, Path], bucket: storage.Bucket
) -> None:
    target, content_type, body = VARIANTS["capitalised-media-type"]
    status, _, answer = raw(guarded[0].url + target, "POST", {"Content-Type": content_type},
                            body.replace(b"../x", b"data/capitalised.csv"))  # fmt: skip
    assert status == 200, answer
    assert bucket.blob("data/capitalised.csv").download_as_bytes() == b"a,b"


def test_an_idle_kept_alive_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each idle keep-alive connection holds a thread and a file: the guard closes it after Guard.timeout."""
    monkeypatch.setattr(Guard, "timeout", 0.5)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Guard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(server.server_address[:2], timeout=5) as client:
            client.sendall(b"GET /storage/v1/b HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: cross-site\r\n\r\n")
            answer = client.recv(65536)
            assert answer.startswith(b"HTTP/1.1 403")  # refused before any upstream, and kept alive
            started = time.monotonic()
            while client.recv(65536):  # whatever is left of the answer, then the server's close
                pass
            assert time.monotonic() - started < 4  # closed by the guard, not by this socket's 5 s timeout
    finally:
        server.shutdown()
        server.server_close()
