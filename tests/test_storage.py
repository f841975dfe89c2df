"""uniqa.storage on local paths and on s3:// (loopback moto server)."""

from __future__ import annotations

import pytest

from uniqa import storage
from uniqa.errors import UniqaError


@pytest.fixture(params=["local", "s3"])
def base(request, tmp_path) -> str:
    return str(tmp_path) if request.param == "local" else request.getfixturevalue("s3_bucket") + "/prefix"


def test_write_read_list(base):
    storage.write_bytes(storage.join(base, "a", "x.jpg"), b"one")
    storage.write_bytes(storage.join(base, "a", "b", "y.PNG"), b"two")
    storage.write_bytes(storage.join(base, "z.txt"), b"three")
    assert storage.read_bytes(storage.join(base, "a", "b", "y.PNG")) == b"two"
    assert storage.exists(storage.join(base, "a", "x.jpg")) and not storage.exists(storage.join(base, "nope"))
    assert storage.is_dir(storage.join(base, "a")) and not storage.is_dir(storage.join(base, "z.txt"))
    assert storage.list_files(base) == [storage.join(base, p) for p in ("a/b/y.PNG", "a/x.jpg", "z.txt")]
    assert storage.list_files(base, (".jpg", ".png")) == [storage.join(base, p) for p in ("a/b/y.PNG", "a/x.jpg")]
    with pytest.raises(FileNotFoundError, match=r"no such file: .*missing.bin"):
        storage.read_bytes(storage.join(base, "missing.bin"))


def test_write_creates_parents_and_overwrites(base):
    uri = storage.join(base, "deep", "er", "f.bin")
    storage.write_bytes(uri, b"1")
    storage.write_bytes(uri, b"22")
    assert storage.read_bytes(uri) == b"22"


def test_uris():
    assert storage.join("s3://bucket/p", "a", "b.jpg") == "s3://bucket/p/a/b.jpg"
    assert storage.join("/data", "a") == "/data/a"
    assert storage.is_s3("s3://b/k") and not storage.is_s3("/b/k")
    fs, path = storage.resolve("file:///tmp/x")
    assert path == "/tmp/x" and fs.type_name == "local"
    with pytest.raises(UniqaError, match=r"unsupported URI scheme in 'gs://bucket/x'"):
        storage.resolve("gs://bucket/x")


def test_s3_endpoint_from_environment(s3_server, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    assert storage.s3_endpoint() == s3_server
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    assert storage.s3_endpoint() == "http://127.0.0.1:1"
