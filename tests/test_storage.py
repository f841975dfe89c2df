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


def test_a_20k_file_tree_is_listed_page_by_page(tmp_path, monkeypatch):
    """Issue 24: the listing of a nested tree streams. The first page comes after two folders were read (the
    root and its first sub-folder) out of 21, and the scoring job's read task is the same generator: its first
    block exists before the rest of the tree is listed."""
    import os

    from uniqa.data.images import IMAGE_SUFFIXES
    from uniqa.scoring.inputs import ScoreInput
    from uniqa.scoring.run import streamed

    for d in range(20):
        folder = tmp_path / "tree" / f"d{d:04d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"{d * 1000 + i:07d}.jpg").touch()
    (tmp_path / "tree" / "notes.txt").touch()
    scanned = []
    real_scandir = os.scandir
    monkeypatch.setattr(storage.os, "scandir", lambda path: scanned.append(path) or real_scandir(path))
    root = str(tmp_path / "tree")

    pages = storage.iter_files(root, IMAGE_SUFFIXES, page_size=1000)
    first = next(pages)
    assert len(scanned) == 2 and len(first) == 1000 and first[0].endswith("d0000/0000000.jpg")
    rest = list(pages)
    assert len(scanned) == 21 and len(rest) == 19 and all(len(p) == 1000 for p in rest)
    names = [os.path.basename(u) for page in [first, *rest] for u in page]
    assert names == [f"{i:07d}.jpg" for i in range(20_000)]  # every file once, in order

    scanned.clear()
    (task,) = streamed(ScoreInput("images", root), 5000).get_read_tasks(1)
    blocks = iter(task())
    block = next(blocks)
    assert block.num_rows == 5000 and block.column_names == ["image_id", "image_uri"]
    assert len(scanned) <= 6 < 21  # the job's first block while most of the tree is still unlisted
    assert sum(b.num_rows for b in blocks) == 15_000


def test_an_s3_prefix_is_listed_page_by_page(s3_bucket, monkeypatch):
    """One ListObjectsV2 request per page of keys: the first page of a prefix is there after one request."""
    import boto3

    from uniqa.scoring.inputs import resolve_input

    fs, path = storage.resolve(f"{s3_bucket}/imgs")
    for i in range(1100):
        with fs.open_output_stream(f"{path}/d{i // 500}/{i:05d}.jpg") as f:
            f.write(b"x")
    requests = []
    real_client = boto3.client

    def counting_client(*args, **kwargs):
        client = real_client(*args, **kwargs)
        client.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: requests.append(1))
        return client

    monkeypatch.setattr(boto3, "client", counting_client)
    pages = storage.iter_files(f"{s3_bucket}/imgs", (".jpg",), page_size=1000)
    assert len(next(pages)) == 1000 and len(requests) == 1
    assert [len(p) for p in pages] == [100] and len(requests) == 2
    requests.clear()
    inp = resolve_input(f"{s3_bucket}/imgs")  # > 1 page of images: left to Ray; 3 requests (kind, 2 pages)
    assert inp.kind == "images" and inp.table is None and inp.rows is None and len(requests) <= 3
    with pytest.raises(FileNotFoundError, match="no such prefix"):
        next(storage.iter_files(f"{s3_bucket}/nothing-here"))
