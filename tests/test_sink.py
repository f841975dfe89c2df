"""Exactly-once Parquet sink: deterministic file names, atomic commits, resume by id."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from uniqa import sink
from uniqa.schema import TableSchema

SCHEMA = TableSchema(
    "toy",
    pa.schema([pa.field("image_id", pa.string()), pa.field("value", pa.float64()), pa.field("error", pa.string())]),
)


def _batch(ids, errors=None):
    return pa.table({
        "image_id": [str(i) for i in ids],
        "value": [float(i) for i in ids],
        "error": errors or [None] * len(ids),
    })


def test_write_batch_is_idempotent_and_counts_errors(tmp_path):
    out = str(tmp_path / "out")
    b = _batch([1, 2, 3], [None, "bad image", None])
    r1 = sink.write_batch(b, out, SCHEMA)
    r2 = sink.write_batch(b, out, SCHEMA)  # a retried task rewrites the same file
    assert r1.to_pylist() == r2.to_pylist()
    assert r1["rows"].to_pylist() == [3] and r1["errors"].to_pylist() == [1]
    files = sorted(os.listdir(out))
    assert files == [r1["file"][0].as_py()]
    assert pq.read_table(os.path.join(out, files[0]))["image_id"].to_pylist() == ["1", "2", "3"]
    assert sink.output_state(out).id_set() == {"1", "2", "3"}


def test_write_batch_validates_schema(tmp_path):
    from uniqa.errors import UniqaError

    with pytest.raises(UniqaError, match="'value'"):
        sink.write_batch(pa.table({"image_id": ["a"], "value": ["x"], "error": [None]}), str(tmp_path), SCHEMA)


def test_drop_ids_and_empty_output(tmp_path):
    assert sink.output_state(str(tmp_path / "missing")).id_set() == set()
    kept = sink.drop_ids(_batch([1, 2, 3, 4]), {"2", "4"})
    assert kept["image_id"].to_pylist() == ["1", "3"]
    assert len(sink.drop_ids(_batch([1]), set())) == 1


def test_temporaries_ignored_and_cleaned(tmp_path):
    out = tmp_path / "out"
    sink.write_batch(_batch([1]), str(out), SCHEMA)
    (out / "_tmp-dead.parquet").write_bytes(b"partial garbage from a killed run")
    assert sink.output_state(str(out)).id_set() == {"1"}
    assert sink.clean_temporaries(str(out)) == 1
    assert not (out / "_tmp-dead.parquet").exists()


def test_s3_roundtrip(s3_bucket):
    out = f"{s3_bucket}/scores"
    sink.write_batch(_batch([7, 8]), out, SCHEMA)
    assert sink.output_state(out).id_set() == {"7", "8"}


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_ray_resume_is_exactly_once(ray_session, tmp_path):
    import ray

    out = str(tmp_path / "out")
    rows = [{"image_id": str(i), "value": float(i), "error": None} for i in range(50)]
    # First run only gets half the input (as if killed half-way).
    first = ray.data.from_items(rows[:25]).repartition(5)
    s1 = sink.drain(first.map_batches(sink.write_batch, fn_args=(out, SCHEMA), batch_format="pyarrow",
                                      batch_size=None), progress=False)
    assert s1.rows_written == 25
    done = sink.output_state(out).ids
    second = ray.data.from_items(rows).repartition(10)
    second = second.map_batches(sink.drop_ids, fn_args=(done,), batch_format="pyarrow", batch_size=None)
    s2 = sink.drain(second.map_batches(sink.write_batch, fn_args=(out, SCHEMA), batch_format="pyarrow",
                                       batch_size=None), progress=False)
    assert s2.rows_written == 25
    table = pq.read_table(out)
    ids = table["image_id"].to_pylist()
    assert sorted(ids, key=int) == [str(i) for i in range(50)]
    assert len(set(ids)) == 50


def _late_commit_case(out):
    """A run read ``out`` (ids 0-3), then a killed run's in-flight write of ids 4-5 landed, then the rerun wrote
    ids 4-7 itself: the late file's rows are all written twice."""
    sink.write_batch(_batch([0, 1, 2, 3]), out, SCHEMA)
    state = sink.output_state(out)
    late = sink.write_batch(_batch([4, 5]), out, SCHEMA)["file"][0].as_py()
    written = {sink.write_batch(_batch(ids), out, SCHEMA)["file"][0].as_py() for ids in ([4, 6], [5, 7])}
    return state, late, written


@pytest.mark.parametrize("where", ["local", "s3"])
def test_settle_removes_a_killed_runs_late_commit(tmp_path, where, request, caplog):
    out = str(tmp_path / "out") if where == "local" else f"{request.getfixturevalue('s3_bucket')}/late"
    state, late, written = _late_commit_case(out)
    assert state.id_set() == {"0", "1", "2", "3"} and len(state.files) == 1
    assert sink.settle(out, state.files, written) == (late,)
    assert f"removed 1 part file(s) under {out}" in caplog.text
    assert late not in sink.part_names(out)
    assert sorted(_all_ids(out), key=int) == [str(i) for i in range(8)]  # every row once, none lost
    assert sink.settle(out, frozenset(sink.part_names(out)), set()) == ()  # nothing unexpected: listing only


def test_output_state_never_drops_a_row_it_holds_once(tmp_path):
    out = str(tmp_path / "out")
    sink.write_batch(_batch([1, 2]), out, SCHEMA)
    sink.write_batch(_batch([2, 3]), out, SCHEMA)  # overlaps, but each file has a row of its own
    sink.write_batch(_batch([3, 1]), out, SCHEMA)  # ... and this one is covered by the other two
    state = sink.output_state(out)
    assert state.id_set() == {"1", "2", "3"}
    assert len(state.removed) == 1 and len(state.files) == 2
    ids = _all_ids(out)
    assert len(ids) == 4 and set(ids) == {"1", "2", "3"}  # the covered file went, both others stay


def test_output_state_keeps_a_file_that_repeats_an_id_within_itself(tmp_path):
    out = str(tmp_path / "out")
    sink.write_batch(_batch([1, 1, 2]), out, SCHEMA)  # e.g. a manifest that lists an image twice
    state = sink.output_state(out)
    assert state.removed == () and state.id_set() == {"1", "2"}
    assert sorted(_all_ids(out)) == ["1", "1", "2"]


def _all_ids(out) -> list[str]:
    from uniqa import storage

    fs, root = storage.resolve(out)
    return [i for name in sink.part_names(out)
            for i in pq.read_table(f"{root}/{name}", filesystem=fs)["image_id"].to_pylist()]
