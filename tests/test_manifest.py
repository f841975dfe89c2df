"""The manifest: schema checks, sharded write/read (local and s3://), ``uniqa data prepare`` end to end
and every bad-input case of the CLI as a one-line ``error:`` with exit code 2."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_fixtures import KADID, make_ava, make_folder, make_kadid, make_koniq, make_spaq, upload_tree

from uniqa import storage
from uniqa.cli import main
from uniqa.data.prepare import PrepareConfig, missing_files, prepare, read_dataset
from uniqa.data.prepare_run import run_prepare
from uniqa.errors import UniqaError
from uniqa.schema import MANIFEST, SPLIT_COLUMNS, validate_manifest
from uniqa.stage import StageSummary, config_fingerprint, read_summary
from uniqa.stagecli import COMMON_FLAGS
from uniqa.tables import parquet_files, read_table, write_table


def kadid_table(root) -> pa.Table:
    make_kadid(root)
    return read_dataset("kadid10k", str(root), PrepareConfig())[0]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ---------------------------------------------------------------------------------------- schema


def test_manifest_columns_and_types(tmp_path):
    table = kadid_table(tmp_path)
    assert table.column_names == MANIFEST.columns
    assert table.schema.field("attrs").type == pa.map_(pa.string(), pa.float64())
    assert len(SPLIT_COLUMNS) == 10 and all(c in table.column_names for c in SPLIT_COLUMNS)


def test_missing_column_is_named(tmp_path):
    table = kadid_table(tmp_path).drop_columns(["mos_norm"])
    with pytest.raises(UniqaError, match=r"manifest: missing column 'mos_norm' \(expected double\)"):
        validate_manifest(table)
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(UniqaError, match=r"missing column 'mos_norm'"):
        read_table(str(tmp_path / "bad.parquet"), MANIFEST)


def test_mistyped_column_is_named(tmp_path):
    table = kadid_table(tmp_path)
    table = table.set_column(table.column_names.index("mos"), "mos", table["mos"].cast(pa.string()))
    with pytest.raises(UniqaError, match=r"column 'mos' has type string, expected double"):
        validate_manifest(table)


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("level", "great", r"column 'level' has value 'great'; valid values are \['bad', 'poor'"),
        ("task", "beauty", r"column 'task' has value 'beauty'"),
        ("split_3", "holdout", r"column 'split_3' has value 'holdout'"),
        ("mos_norm", 1.5, r"mos_norm 1.5 of image 'kadid10k/I01_01_01.png' is outside \[0, 1\]"),
        ("mos_norm", float("nan"), r"column 'mos_norm' is NaN for image 'kadid10k/I01_01_01.png'"),
        ("level", None, r"column 'level' is null for image 'kadid10k/I01_01_01.png' but 'mos' is set"),
        ("image_id", "kadid10k/I01_05_03.png", r"column 'image_id' has duplicate value 'kadid10k/I01_05_03.png'"),
        ("image_uri", None, r"column 'image_uri' has 1 null values"),
    ],
)
def test_bad_values_are_named(tmp_path, column, value, message):
    table = kadid_table(tmp_path)
    values = table[column].to_pylist()
    values[0] = value
    table = table.set_column(table.column_names.index(column), column,
                             pa.array(values, MANIFEST.schema.field(column).type))
    with pytest.raises(UniqaError, match=message):
        validate_manifest(table)


def test_unlabelled_rows_are_valid(tmp_path):
    table = kadid_table(tmp_path)
    for col in ("mos", "mos_norm", "level"):
        table = table.set_column(table.column_names.index(col), col,
                                 pa.nulls(len(table), MANIFEST.schema.field(col).type))
    assert validate_manifest(table)["level"].null_count == len(KADID)


# ---------------------------------------------------------------------------------------- storage


def test_sharded_write_and_read_back_local(tmp_path):
    table = kadid_table(tmp_path / "kadid")
    written = write_table(table, str(tmp_path / "m"), MANIFEST, rows_per_shard=4)
    assert [w.rsplit("/", 1)[1] for w in written] == ["part-00000.parquet", "part-00001.parquet",
                                                       "part-00002.parquet"]
    back = read_table(str(tmp_path / "m"), MANIFEST)
    assert back.equals(table)
    write_table(table.slice(0, 3), str(tmp_path / "m"), MANIFEST, rows_per_shard=4)  # old shards replaced
    assert len(parquet_files(str(tmp_path / "m"))) == 1 and len(read_table(str(tmp_path / "m"), MANIFEST)) == 3


def test_manifest_round_trip_on_s3(tmp_path, s3_bucket):
    table = kadid_table(tmp_path)
    out = f"{s3_bucket}/manifests/kadid"
    written = write_table(table, out, MANIFEST, rows_per_shard=6)
    assert written == [f"{out}/part-00000.parquet", f"{out}/part-00001.parquet"]
    back = read_table(out, MANIFEST)
    assert back.equals(table)
    assert back["attrs"].to_pylist()[1] == table["attrs"].to_pylist()[1]


def test_prepare_with_root_and_out_on_s3(tmp_path, s3_bucket, capsys):
    make_kadid(tmp_path / "kadid")
    upload_tree(tmp_path / "kadid", f"{s3_bucket}/datasets/kadid")
    out = f"{s3_bucket}/manifests/kadid"
    code, stdout, _ = run_cli(capsys, "data", "prepare", "kadid10k", "--root", f"{s3_bucket}/datasets/kadid",
                              "--out", out)
    assert code == 0 and "10 rows" in stdout and "prepare: 10 images written" in stdout
    m = read_table(out, MANIFEST).to_pydict()
    assert m["image_uri"] == [f"{s3_bucket}/datasets/kadid/images/{r[0]}" for r in KADID]
    assert m["mos_norm"][0] == 1.0 and m["level"][0] == "perfect"
    assert json.loads(storage.read_bytes(f"{out}/_summary.json"))["rows_out"] == 10
    # a missing S3 object is found by the listing check
    assert missing_files([m["image_uri"][0], f"{s3_bucket}/datasets/kadid/images/nope.png"]) == [
        f"{s3_bucket}/datasets/kadid/images/nope.png"]


def test_manifest_source_revalidates_and_rewrites(tmp_path, s3_bucket):
    make_kadid(tmp_path / "kadid")
    prepare("kadid10k", str(tmp_path / "kadid"), f"{s3_bucket}/first")
    summary = prepare("manifest", f"{s3_bucket}/first", str(tmp_path / "second"))
    assert summary["rows"] == 10 and summary["datasets"] == ["kadid10k"]
    assert summary["split_source"] == "the input manifest's split columns" and summary["image_dir"] is None
    assert read_table(str(tmp_path / "second"), MANIFEST).equals(read_table(f"{s3_bucket}/first", MANIFEST))


def test_manifest_source_keeps_one_side_of_a_split(tmp_path, capsys):
    make_kadid(tmp_path / "kadid")
    prepare("kadid10k", str(tmp_path / "kadid"), str(tmp_path / "all"))
    full = read_table(str(tmp_path / "all"), MANIFEST)
    test = [r for r in full.to_pylist() if r["split_3"] == "test"]
    summary = prepare("manifest", str(tmp_path / "all"), str(tmp_path / "test"), split="split_3")
    assert summary["rows"] == len(test) > 0 and summary["split_0"] != {}
    assert read_table(str(tmp_path / "test"), MANIFEST).to_pylist() == test
    train = prepare("manifest", str(tmp_path / "all"), str(tmp_path / "train"), split="split_3", side="train")
    assert train["rows"] + len(test) == full.num_rows
    for bad, message in ((["-o", "split=split_10"], "-o split='split_10' is not a split column; valid: split_0"),
                         (["-o", "split=split_0", "-o", "side=dev"], "-o side='dev' is not a side; valid: train")):
        assert main(["data", "prepare", "manifest", "--root", str(tmp_path / "all"), "--out",
                     str(tmp_path / "bad"), *bad]) == 2
        assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- the stage contract


def test_run_prepare_returns_and_writes_the_stage_summary(tmp_path):
    make_koniq(tmp_path / "koniq", image_dirs=("1024x768", "512x384"))
    cfg = PrepareConfig(rows_per_shard=2)
    summary = run_prepare("koniq10k", str(tmp_path / "koniq"), str(tmp_path / "m"), cfg)
    assert isinstance(summary, StageSummary) and summary.exit_code == 0
    assert (summary.stage, summary.unit, summary.rows_in, summary.rows_out, summary.rows_written,
            summary.rows_dropped) == ("prepare", "images", 3, 3, 3, 0)
    assert summary.inputs == {"name": "koniq10k", "root": str(tmp_path / "koniq"), "options": {}}
    assert summary.config_fingerprint == config_fingerprint(cfg) and summary.output == str(tmp_path / "m")
    d = summary.details
    assert (d["dataset"], d["image_dir"], d["rows"], d["levels"]["perfect"]) == ("koniq10k", "512x384", 3, 1)
    assert d["split_source"] == "seeded (split_i: seed 0 + i, 0.8 of the images in train)"
    written = read_summary(str(tmp_path / "m"))
    assert written == json.loads(json.dumps(summary.to_dict()))
    assert len(parquet_files(str(tmp_path / "m"))) == 2
    # prepare(): the same run, returning the details (kept for its callers)
    details = prepare("koniq10k", str(tmp_path / "koniq"), str(tmp_path / "m2"), cfg, image_dir="1024x768")
    assert details["image_dir"] == "1024x768" and details["rows"] == 3
    assert read_summary(str(tmp_path / "m2"))["inputs"]["options"] == {"image_dir": "1024x768"}


def test_prepare_help_lists_the_common_flags(capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "prepare", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for flag in (*COMMON_FLAGS, "--root", "--option", "--allow-missing", "NAME"):
        assert flag in out, flag
    assert "needs no Ray; --ray-address is accepted for uniformity" in out


def test_prepare_from_a_config_file_quiet_with_ray_address(tmp_path, capsys):
    make_kadid(tmp_path / "kadid")
    config = tmp_path / "prepare.yaml"
    config.write_text(f"name: kadid10k\nroot: {tmp_path / 'kadid'}\nout: {tmp_path / 'm'}\nseed: 3\n"
                      "binning: quantile\n")
    code, out, err = run_cli(capsys, "data", "prepare", "--config", str(config), "--set", "train_fraction=0.6",
                             "--quiet", "--ray-address", "ray://nowhere:10001")
    assert code == 0, err
    assert len(out.splitlines()) == 1 and out.startswith("prepare: 10 images written")  # --quiet: the line only
    summary = read_summary(str(tmp_path / "m"))
    assert summary["details"]["split_source"] == "seeded (split_i: seed 3 + i, 0.6 of the reference groups in train)"
    assert summary["config_fingerprint"] == config_fingerprint(
        PrepareConfig(seed=3, binning="quantile", train_fraction=0.6))
    levels = summary["details"]["levels"]
    assert levels == {"bad": 2, "poor": 2, "fair": 2, "good": 2, "perfect": 2}  # quantile bins from the file
    config.write_text(f"root: {tmp_path / 'kadid'}\nout: {tmp_path / 'm'}\n")
    assert_one_line_error(*run_cli(capsys, "data", "prepare", "--config", str(config))[::2], "no name: give NAME",
                          "`name:`")
    assert_one_line_error(*run_cli(capsys, "data", "prepare", "kadid10k", "--out", str(tmp_path / "m"))[::2],
                          "no root: pass --root")
    assert_one_line_error(*run_cli(capsys, "data", "prepare", "kadid10k", "--root", str(tmp_path / "kadid"))[::2],
                          "no out: pass --out")


# ---------------------------------------------------------------------------------------- the CLI


def test_data_list_shows_every_source(capsys):
    code, out, _ = run_cli(capsys, "data", "list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert names == ["aadb", "agiqa3k", "ava", "csiq", "flive", "folder", "kadid10k", "koniq10k", "live", "livec",
                     "manifest", "spaq", "table", "tid2013"]
    assert "-o comments_file=..." in out and "-o test_list=..." in out
    assert "-o name_column=...  distorted image name column (default dist_img)" in out  # from read_kadid's keyword
    assert "-o keep_references=...  keep the reference copies (orgs == 1) (default false)" in out


def test_prepare_prints_summary_and_writes_shards(tmp_path, capsys):
    make_kadid(tmp_path / "kadid")
    code, out, err = run_cli(capsys, "data", "prepare", "kadid10k", "--root", str(tmp_path / "kadid"),
                             "--out", str(tmp_path / "m"), "--set", "rows_per_shard=5")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:-1] == [
        f"kadid10k (quality): 10 rows, 10 labelled -> {tmp_path / 'm'}",
        "MOS range: 1 .. 5",
        "levels: bad 2, poor 2, fair 2, good 1, perfect 3",
        "split_0: test 2, train 8",
        "splits: seeded (split_i: seed 0 + i, 0.8 of the reference groups in train)",
        "image folder: images",
        "missing files: 0",
    ]
    assert lines[-1].startswith("prepare: 10 images written (0 with errors) in ")
    assert lines[-1].endswith(f"rows out 10 / rows in 10 (complete) -> {tmp_path / 'm'}")
    assert len(parquet_files(str(tmp_path / "m"))) == 2
    assert len(read_table(str(tmp_path / "m"), MANIFEST)) == 10


def test_prepare_unlabelled_folder(tmp_path, capsys):
    make_folder(tmp_path / "photos")
    code, out, _ = run_cli(capsys, "data", "prepare", "folder", "--root", str(tmp_path / "photos"),
                           "--out", str(tmp_path / "m"), "-o", "task=aesthetics")
    assert code == 0 and "3 rows, 0 labelled" in out and "MOS range: none (unlabelled)" in out
    assert read_table(str(tmp_path / "m"), MANIFEST)["mos"].null_count == 3


def test_absent_images_fail_naming_them(tmp_path, capsys):
    make_kadid(tmp_path)
    (tmp_path / "images" / KADID[3][0]).unlink()
    code, _, err = run_cli(capsys, "data", "prepare", "kadid10k", "--root", str(tmp_path), "--out",
                           str(tmp_path / "m"))
    assert_one_line_error(code, err, "1 of 10 image files", KADID[3][0], "--allow-missing")
    assert not (tmp_path / "m").exists()


def test_allow_missing_drops_and_lists(tmp_path, capsys):
    make_kadid(tmp_path)
    (tmp_path / "images" / KADID[3][0]).unlink()
    code, out, _ = run_cli(capsys, "data", "prepare", "kadid10k", "--root", str(tmp_path), "--out",
                           str(tmp_path / "m"), "--allow-missing")
    assert code == 0 and "missing files: 1 (dropped, listed in" in out
    assert (tmp_path / "m" / "_missing.txt").read_text() == str(tmp_path / "images" / KADID[3][0]) + "\n"
    ids = read_table(str(tmp_path / "m"), MANIFEST)["image_id"].to_pylist()
    assert len(ids) == 9 and f"kadid10k/{KADID[3][0]}" not in ids
    summary = json.loads((tmp_path / "m" / "_summary.json").read_text())
    assert (summary["rows_in"], summary["rows_out"], summary["rows_dropped"], summary["complete"]) == (10, 9, 1, True)
    details = summary["details"]
    assert details["missing_files"] == 1 and details["missing_examples"] == [str(tmp_path / "images" / KADID[3][0])]


def test_bad_input_cases_are_one_line_errors(tmp_path, capsys):
    root, out = tmp_path / "kadid", str(tmp_path / "m")
    make_kadid(root)

    def prepare_cli(*extra, name="kadid10k", at=root):
        return run_cli(capsys, "data", "prepare", name, "--root", str(at), "--out", out, *extra)

    assert_one_line_error(*prepare_cli(name="kadid")[::2], "unknown dataset 'kadid'", "kadid10k")
    assert_one_line_error(*prepare_cli("-o", "colour=red")[::2], "has no option 'colour'", "mos_column")
    assert_one_line_error(*prepare_cli("-o", "mos_column")[::2], "'mos_column' is not of the form key=value")
    assert_one_line_error(*prepare_cli("--set", "binning=log")[::2], "binning must be one of", "'log'")
    assert_one_line_error(*prepare_cli("--set", "bins=3")[::2], "unknown config key 'bins'", "binning")
    assert_one_line_error(*prepare_cli(at=tmp_path / "nowhere")[::2], "not found", "nowhere/dmos.csv")
    assert_one_line_error(*prepare_cli("-o", "mos_column=MOS")[::2], "dmos.csv: expected column 'MOS'")
    assert_one_line_error(*prepare_cli(at="http://host/kadid")[::2], "unsupported URI scheme", "http://host/kadid")
    assert_one_line_error(*prepare_cli("--set", "seed=x")[::2], "config key 'seed' must be an integer, got 'x'")
    assert_one_line_error(*prepare_cli("--config", str(tmp_path / "no.yaml"))[::2], "config file not found")
    (root / "dmos.csv").write_text("dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,good,0.1\n")
    assert_one_line_error(*prepare_cli()[::2], "dmos.csv: row 2 column 'dmos' has non-numeric value 'good'")
    (root / "dmos.csv").write_text("dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,,0.1\n")
    assert_one_line_error(*prepare_cli()[::2], "row 2 column 'dmos' has non-numeric value ''")
    (root / "dmos.csv").write_text("dist_img,ref_img,dmos,var\n")
    assert_one_line_error(*prepare_cli()[::2], "dataset 'kadid10k' at", "lists no images")
    assert not (tmp_path / "m").exists()  # nothing written by any failed run


def test_unreadable_files_are_one_line_errors(tmp_path, capsys):
    make_spaq(tmp_path / "spaq")
    (tmp_path / "spaq" / "Annotations" / "MOS and Image attribute scores.xlsx").write_bytes(b"\x00garbage")
    code, _, err = run_cli(capsys, "data", "prepare", "spaq", "--root", str(tmp_path / "spaq"), "--out",
                           str(tmp_path / "m"))
    assert_one_line_error(code, err, "MOS and Image attribute scores.xlsx: not a readable .xlsx workbook")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    code, _, err = run_cli(capsys, "data", "prepare", "table", "--root", str(tmp_path / "bad.parquet"),
                           "--out", str(tmp_path / "m"))
    assert_one_line_error(code, err, "bad.parquet: not a readable Parquet file")
    make_ava(tmp_path / "ava")
    (tmp_path / "ava" / "CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json").write_text("{not json")
    code, _, err = run_cli(capsys, "data", "prepare", "ava", "--root", str(tmp_path / "ava"), "--out",
                           str(tmp_path / "m"))
    assert_one_line_error(code, err, "CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json: not valid JSON")
    make_kadid(tmp_path / "kadid")
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(capsys, "data", "prepare", "kadid10k", "--root", str(tmp_path / "kadid"), "--out",
                           str(tmp_path / "afile" / "m"))
    assert_one_line_error(code, err, "afile")

