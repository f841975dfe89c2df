"""Every dataset source on tiny fixtures in its official format: parsed rows checked exactly."""

from __future__ import annotations

import inspect

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_fixtures import (
    AADB,
    AGIQA3K,
    AVA,
    AVA_CAPTIONS,
    CSIQ,
    CSIQ_FILES,
    FLIVE,
    KADID,
    KONIQ,
    LIVEC,
    SPAQ,
    SPAQ_HEADER,
    TID,
    TID_OBSERVED,
    make_aadb,
    make_agiqa3k,
    make_ava,
    make_ava_test_list,
    make_csiq,
    make_flive,
    make_folder,
    make_kadid,
    make_koniq,
    make_live,
    make_livec,
    make_spaq,
    make_tid,
    upload_tree,
    write_csv,
    write_images,
)

from uniqa.data.prepare import PrepareConfig, read_dataset
from uniqa.data.sources import SOURCES, get_source
from uniqa.errors import UniqaError
from uniqa.schema import SPLIT_COLUMNS

OFFICIAL = {"koniq10k", "spaq", "livec", "kadid10k", "tid2013", "ava", "aadb", "flive", "csiq", "live", "agiqa3k"}
GENERIC = {"folder", "table", "manifest"}


def manifest(name: str, root, **options) -> dict[str, list]:
    """The validated manifest of ``name`` at ``root`` as {column: values}."""
    table, _ = read_dataset(name, str(root), PrepareConfig(), **options)
    return table.to_pydict()


def attrs(row_attrs) -> dict:
    return dict(row_attrs) if row_attrs is not None else None


def test_registry_lists_every_source():
    assert set(SOURCES.names()) == OFFICIAL | GENERIC
    assert get_source("kadid10k").mos_range == (1.0, 5.0)
    with pytest.raises(UniqaError, match=r"unknown dataset 'koniq'; known: \['aadb', 'agiqa3k', 'ava'"):
        get_source("koniq")


@pytest.mark.parametrize("name", sorted(OFFICIAL | GENERIC))
def test_options_match_reader_signature(name):
    source = get_source(name)
    params = list(inspect.signature(source.read).parameters)
    assert params[0] == "root" and sorted(params[1:]) == sorted(source.options)
    assert source.task in ("quality", "aesthetics", None)
    for option in source.options:  # a default is stated once, in the signature; the help shows it from there
        default = inspect.signature(source.read).parameters[option].default
        if default not in (None, ""):
            assert "default" not in source.options[option].lower(), (option, source.options[option])
            value = str(default).lower() if isinstance(default, bool) else str(default)
            assert source.option_help(option).endswith((f"(default {value})", f"(default {value!r})"))


def test_koniq(tmp_path):
    make_koniq(tmp_path)
    m = manifest("koniq10k", tmp_path)
    assert m["image_id"] == ["koniq10k/100.jpg", "koniq10k/101.jpg", "koniq10k/102.jpg"]
    assert m["image_uri"] == [str(tmp_path / "1024x768" / n) for n, *_ in KONIQ]
    assert m["mos"] == [20.0, 60.0, 100.0]  # MOS_zscore (0-100) by default, as the official code reads KonIQ
    assert m["mos_norm"] == pytest.approx([0.2, 0.6, 1.0])
    assert m["level"] == ["poor", "good", "perfect"]
    assert attrs(m["attrs"][1])["SD"] == 0.5 and attrs(m["attrs"][1])["MOS"] == 3.0
    m = manifest("koniq10k", tmp_path, mos_column="MOS")  # the 1-5 scale
    assert m["mos"] == [1.0, 3.0, 5.0]
    assert m["mos_norm"] == [0.0, 0.5, 1.0]
    assert m["level"] == ["bad", "fair", "perfect"]
    assert attrs(m["attrs"][1])["SD"] == 0.5 and attrs(m["attrs"][1])["MOS_zscore"] == 60.0


def test_agiqa3k_quality_by_default_alignment_by_option(tmp_path):
    make_agiqa3k(tmp_path)
    m = manifest("agiqa3k", tmp_path)
    assert m["image_id"] == [f"agiqa3k/{n}" for n, *_ in AGIQA3K]
    assert m["image_uri"] == [str(tmp_path / n) for n, *_ in AGIQA3K]  # the images sit beside data.csv
    assert m["mos"] == [0.5, 2.75, 5.0] and m["mos_norm"] == pytest.approx([0.0, 0.5, 1.0])  # observed range
    assert m["task"] == ["quality"] * 3 and attrs(m["attrs"][1]) == {"std_quality": 0.5, "mos_align": 3.0,
                                                                     "std_align": 0.4}
    m = manifest("agiqa3k", tmp_path, mos_column="mos_align")
    assert m["mos"] == [1.2, 3.0, 2.0] and attrs(m["attrs"][1])["mos_quality"] == 2.75


@pytest.mark.parametrize("present, option, used", [
    (("1024x768",), {}, "1024x768"),  # only the large copy: found
    (("1024x768", "512x384"), {}, "512x384"),  # both: the reference's 512x384 first
    (("512x384",), {"image_dir": "1024x768"}, "1024x768"),  # an explicit option wins (files then missing)
])
def test_koniq_finds_its_image_folder(tmp_path, present, option, used):
    make_koniq(tmp_path, image_dirs=present)
    table, records = read_dataset("koniq10k", str(tmp_path), PrepareConfig(), **option)
    assert records.image_dir == used
    assert table["image_uri"].to_pylist() == [str(tmp_path / used / n) for n, *_ in KONIQ]


@pytest.mark.parametrize("present, used", [
    (("datasetImages_warp256",), "datasetImages_warp256"),
    (("datasetImages_warp256", "datasetImages_originalSize"), "datasetImages_originalSize"),  # full size first
    ((), "datasetImages_originalSize"),  # neither: the first, so the missing-file check names those paths
])
def test_aadb_finds_its_image_folder(tmp_path, present, used):
    make_aadb(tmp_path, image_dirs=present)
    table, records = read_dataset("aadb", str(tmp_path), PrepareConfig())
    assert records.image_dir == used and records.split_source == "official (AADB imgListFiles_label/ lists)"
    assert table["image_uri"].to_pylist()[0] == str(tmp_path / used / "farm1_1.jpg")
    table, records = read_dataset("aadb", str(tmp_path), PrepareConfig(), image_dir="mine")
    assert records.image_dir == "mine" and table["image_uri"].to_pylist()[0] == str(tmp_path / "mine" / "farm1_1.jpg")


def test_spaq_xlsx(tmp_path):
    make_spaq(tmp_path)
    m = manifest("spaq", tmp_path)
    assert m["image_id"] == [f"spaq/{r[0]}" for r in SPAQ]
    assert m["image_uri"] == [str(tmp_path / "TestImage" / r[0]) for r in SPAQ]
    assert m["mos"] == [0.0, 20.0, 80.0, 100.0]
    assert m["mos_norm"] == [0.0, 0.2, 0.8, 1.0]
    assert m["level"] == ["bad", "poor", "perfect", "perfect"]  # bin edges: 0.2 -> poor, 0.8 -> perfect
    assert attrs(m["attrs"][2]) == {"Brightness": 12.0, "Colorfulness": 22.0, "Contrast": 32.0,
                                    "Noisiness": 42.0, "Sharpness": 52.0}
    assert set(m["task"]) == {"quality"} and set(m["dataset"]) == {"spaq"}


def test_spaq_manifest_decodes_at_448_like_the_reference(tmp_path):
    """pyiqa resizes SPAQ's ~12 MP photos to 448 px on the shorter side before cropping: the manifest says so per
    row (a column survives concatenation with other datasets' manifests, whose rows stay as stored)."""
    from uniqa.data.prepare import prepare
    from uniqa.schema import MANIFEST, validate_manifest

    make_spaq(tmp_path / "spaq")
    table, records = read_dataset("spaq", str(tmp_path / "spaq"), PrepareConfig())
    assert records.decode_size == 448 and table.schema.field("decode_size").type == pa.int32()
    assert table["decode_size"].to_pylist() == [448] * len(SPAQ)
    assert manifest("spaq", tmp_path / "spaq", decode_size="none")["decode_size"] == [None] * len(SPAQ)
    details = prepare("spaq", str(tmp_path / "spaq"), str(tmp_path / "out"))
    assert details["decode_sizes"] == [448]  # the summary says which size was recorded
    assert pq.read_table(tmp_path / "out")["decode_size"].to_pylist() == [448] * len(SPAQ)
    make_koniq(tmp_path / "koniq")
    assert manifest("koniq10k", tmp_path / "koniq")["decode_size"] == [None] * len(KONIQ)
    with pytest.raises(UniqaError, match=r"option decode_size='0' is not a positive number of pixels"):
        manifest("spaq", tmp_path / "spaq", decode_size="0")
    bad = table.set_column(table.schema.get_field_index("decode_size"), "decode_size",
                           pa.array([448, 0, None, 448], pa.int32()))
    with pytest.raises(UniqaError, match=r"decode_size 0 of image 'spaq/00002.jpg' is not a positive number"):
        validate_manifest(bad)
    assert "decode_size" in MANIFEST.optional  # manifests written before the column still read


def test_spaq_column_overrides(tmp_path):
    header = ["file", "score", *SPAQ_HEADER[2:]]
    make_spaq(tmp_path, header=header)
    m = manifest("spaq", tmp_path, name_column="file", mos_column="score")
    assert m["mos"] == [0.0, 20.0, 80.0, 100.0]


def test_spaq_errors_name_file_column_and_value(tmp_path):
    make_spaq(tmp_path, header=["Image name", "Score", *SPAQ_HEADER[2:]])
    with pytest.raises(UniqaError, match=r"MOS and Image attribute scores.xlsx: expected column 'MOS', found"):
        manifest("spaq", tmp_path)
    make_spaq(tmp_path, rows=[("00001.jpg", "n/a", 1, 2, 3, 4, 5)])
    with pytest.raises(UniqaError, match=r"xlsx: row 2 column 'MOS' has non-numeric value 'n/a'"):
        manifest("spaq", tmp_path)
    (tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx").write_bytes(b"not a zip file")
    with pytest.raises(UniqaError, match=r"xlsx: not a readable .xlsx workbook"):
        manifest("spaq", tmp_path)


def test_livec_mat_drops_training_examples(tmp_path):
    make_livec(tmp_path)
    table, records = read_dataset("livec", str(tmp_path), PrepareConfig())
    m = table.to_pydict()
    assert len(LIVEC) == 11 and len(m["image_id"]) == 4
    assert m["image_id"] == ["livec/10.JPG", "livec/11.bmp", "livec/12.bmp", "livec/13.bmp"]
    assert m["image_uri"][0] == str(tmp_path / "Images" / "10.JPG")
    assert m["mos"] == [0.0, 40.0, 60.0, 100.0]
    assert m["level"] == ["bad", "fair", "good", "perfect"]
    assert [attrs(a)["mos_std"] for a in m["attrs"]] == [10.0, 11.0, 12.0, 13.0]
    assert records.notes == {"dropped_training_examples": 7}


def test_livec_char_matrix_names_and_errors(tmp_path):
    from scipy.io import savemat

    make_livec(tmp_path)
    names = [r[0].ljust(6) for r in LIVEC]  # a char matrix instead of a cell array
    savemat(tmp_path / "Data" / "AllImages_release.mat", {"AllImages_release": names})
    assert manifest("livec", tmp_path)["image_id"][1] == "livec/11.bmp"
    savemat(tmp_path / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.ones((1, 5))})
    with pytest.raises(UniqaError, match=r"AllMOS_release.mat has 5 entries but .*AllImages_release.mat has 11"):
        manifest("livec", tmp_path)
    (tmp_path / "Data" / "AllMOS_release.mat").write_bytes(b"garbage")
    with pytest.raises(UniqaError, match=r"AllMOS_release.mat: not a readable MATLAB .mat file"):
        manifest("livec", tmp_path)


def test_kadid_direction_groups_and_distortions(tmp_path):
    make_kadid(tmp_path)
    m = manifest("kadid10k", tmp_path)
    assert m["image_id"] == [f"kadid10k/{r[0]}" for r in KADID]
    assert m["image_uri"] == [str(tmp_path / "images" / r[0]) for r in KADID]
    assert m["group"] == [r[1] for r in KADID]
    # DMOS 1..5, higher is better: 5 -> 1.0, 1 -> 0.0; 1.8 -> 0.2 (poor), 4.2 -> 0.8 (perfect)
    np.testing.assert_allclose(m["mos_norm"], [1.0, 0.0, 0.2, 0.8, 0.5, 0.4, 0.6, 0.1, 0.9, 0.3])
    assert m["level"] == ["perfect", "bad", "poor", "perfect", "fair", "fair", "good", "bad", "perfect", "poor"]
    assert attrs(m["attrs"][1]) == {"var": pytest.approx(0.1), "dist_type": 5.0, "dist_level": 3.0}


def test_tid2013_direction_and_case_insensitive_groups(tmp_path):
    make_tid(tmp_path)
    m = manifest("tid2013", tmp_path)
    assert m["image_id"] == [f"tid2013/{n}" for _, n in TID]
    assert m["image_uri"][2] == str(tmp_path / "distorted_images" / "I02_02_2.BMP")
    assert m["mos_norm"] == [1.0, 0.0, 0.5, pytest.approx(0.8), pytest.approx(0.2)]
    assert m["level"] == ["perfect", "bad", "fair", "perfect", "poor"]
    assert m["group"] == ["i01", "i01", "i02", "i02", "i03"]
    assert attrs(m["attrs"][3]) == {"dist_type": 17.0, "dist_level": 5.0}
    for col in SPLIT_COLUMNS:  # a reference never on both sides
        by_group = {}
        for g, s in zip(m["group"], m[col]):
            by_group.setdefault(g, set()).add(s)
        assert all(len(v) == 1 for v in by_group.values())


def test_ava_votes_comments_and_official_split(tmp_path):
    make_ava(tmp_path)
    table, records = read_dataset("ava", str(tmp_path), PrepareConfig())
    m = table.to_pydict()
    assert m["image_id"] == [f"ava/{r[0]}.jpg" for r in AVA]
    assert m["image_uri"][0] == str(tmp_path / "images" / "953619.jpg")
    votes = np.array(AVA[0][1], dtype=float)
    assert m["mos"][0] == pytest.approx((votes * np.arange(1, 11)).sum() / votes.sum())
    assert m["mos"][1:] == [1.0, 10.0, 5.5]
    assert m["mos_norm"][1:] == [0.0, 1.0, 0.5] and m["level"][1:] == ["bad", "perfect", "fair"]
    assert m["comments"][:3] == [AVA_CAPTIONS["953619"][1], ["blurry"], []]
    assert m["comments"][3] is None  # not in the captions JSON
    assert m["split_0"] == ["train", "val", "test", None] and m["split_9"] == m["split_0"]
    a = attrs(m["attrs"][0])
    assert [a[f"votes_{s}"] for s in range(1, 11)] == AVA[0][1]
    assert (a["tag_1"], a["tag_2"], a["challenge"]) == (1.0, 22.0, 1396.0)
    assert records.notes == {"without_official_split": 1}
    assert set(m["task"]) == {"aesthetics"}


def test_ava_standard_test_list(tmp_path):
    make_ava(tmp_path)
    make_ava_test_list(tmp_path, ["953958", "954113.jpg", "999999"])  # one id not in AVA.txt, one with .jpg
    table, records = read_dataset("ava", str(tmp_path), PrepareConfig(), test_list="test_ids.txt")
    m = table.to_pydict()
    assert m["split_0"] == ["train", "test", "train", "test"] and m["split_9"] == m["split_0"]
    assert m["comments"][:3] == [AVA_CAPTIONS["953619"][1], ["blurry"], []]  # comments still from the JSON
    assert records.split_source == "standard test list test_ids.txt"
    assert records.notes == {"test_list_ids_not_in_ava": 1}
    make_ava_test_list(tmp_path, ["954184", "953619"], name="list.csv", column="image_id")
    table, records = read_dataset("ava", str(tmp_path), PrepareConfig(), test_list="list.csv",
                                  test_list_column="image_id")
    assert table["split_0"].to_pylist() == ["test", "train", "test", "train"] and records.notes == {}
    table, _ = read_dataset("ava", str(tmp_path), PrepareConfig(), test_list="list.csv")  # default: first column
    assert table["split_0"].to_pylist() == ["test", "train", "test", "train"]
    _, records = read_dataset("ava", str(tmp_path), PrepareConfig())
    assert records.split_source == "AVA-Captions JSON CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json"


@pytest.mark.parametrize("where", ["aesthetics_image_lists/generic_test.jpgl", "generic_test.jpgl"])
def test_ava_uses_the_standard_test_list_when_the_dataset_has_it(tmp_path, where):
    make_ava(tmp_path)
    (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
    make_ava_test_list(tmp_path, ["953958", "954113"], name=where)  # as AVA ships it
    table, records = read_dataset("ava", str(tmp_path), PrepareConfig())
    assert table["split_0"].to_pylist() == ["train", "test", "train", "test"]
    assert records.split_source == f"standard test list {where}"
    _, records = read_dataset("ava", str(tmp_path), PrepareConfig(), test_list="none")  # the JSON's split
    assert records.split_source == "AVA-Captions JSON CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json"


def test_ava_test_list_errors(tmp_path):
    make_ava(tmp_path)
    with pytest.raises(UniqaError, match=r"expected dataset file not found: .*nope.txt"):
        manifest("ava", tmp_path, test_list="nope.txt")
    make_ava_test_list(tmp_path, ["1", "2"])
    with pytest.raises(UniqaError, match=r"test_ids.txt: none of its 2 ids \(e.g. '1'\) is an image of AVA.txt"):
        manifest("ava", tmp_path, test_list="test_ids.txt")
    make_ava_test_list(tmp_path, ["953619"], name="l.csv", column="id")
    with pytest.raises(UniqaError, match=r"l.csv: expected column 'image_id', found columns \['id', 'other'\]"):
        manifest("ava", tmp_path, test_list="l.csv", test_list_column="image_id")
    with pytest.raises(UniqaError, match=r"option test_list_column needs test_list"):
        manifest("ava", tmp_path, test_list_column="id")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(UniqaError, match=r"empty.txt: the test list holds no image ids"):
        manifest("ava", tmp_path, test_list="empty.txt")


def test_csiq_xlsx_flipped_and_grouped(tmp_path):
    make_csiq(tmp_path)
    table, records = read_dataset("csiq", str(tmp_path), PrepareConfig())
    m = table.to_pydict()
    assert m["image_id"] == [f"csiq/{f}" for f in CSIQ_FILES]
    assert m["image_uri"] == [str(tmp_path / "dst_imgs" / f) for f in CSIQ_FILES]
    assert m["mos"] == [r[5] for r in CSIQ]
    np.testing.assert_allclose(m["mos_norm"], [0.938, 0.5, 0.0, 1.0, 0.7, 0.8])  # DMOS 0-1 flipped
    assert m["level"] == ["perfect", "fair", "bad", "perfect", "good", "perfect"]
    assert m["group"] == ["1600", "1600", "aerial_city", "aerial_city", "boston", "boston"]
    assert attrs(m["attrs"][1]) == {"dist_type": 5.0, "dist_level": 3.0, "dmos_std": 0.1}
    assert records.image_dir == "dst_imgs" and set(m["task"]) == {"quality"}
    for col in SPLIT_COLUMNS:  # a reference never on both sides
        assert len({(g, s) for g, s in zip(m["group"], m[col])}) == len(set(m["group"]))


def test_csiq_errors(tmp_path):
    make_csiq(tmp_path, rows=[(1600, 1, "ripples", 1, 0.1, 0.2)])
    with pytest.raises(UniqaError, match=r"csiq.DMOS.xlsx: row 4 column 'dst_type' has unknown distortion 'ripples'"):
        manifest("csiq", tmp_path)
    make_csiq(tmp_path, rows=[(1600, 1, "noise", 1, 0.1, 1.2)])
    with pytest.raises(UniqaError, match=r"MOS 1.2 of image 'csiq/awgn/1600.AWGN.1.png' is outside .*\[0, 1\]; "
                                         r"give the range with -o mos_min=... -o mos_max=..."):
        manifest("csiq", tmp_path)
    assert manifest("csiq", tmp_path, mos_min="0", mos_max="1.5")["mos_norm"] == [pytest.approx(0.2)]
    make_csiq(tmp_path, header=["image", "dst_idx", "type", "dst_lev", "dmos_std", "dmos"])
    with pytest.raises(UniqaError, match=r"csiq.DMOS.xlsx: expected column 'dst_type', found columns \['image', "
                                         r"'dst_idx', 'type', 'dst_lev', 'dmos_std', 'dmos'\] \(sheet 'all_by_image', "
                                         r"row 3\)"):
        manifest("csiq", tmp_path)
    make_csiq(tmp_path)
    with pytest.raises(UniqaError, match=r"no sheet 'Sheet9'; sheets: \['notes', 'all_by_image'\]"):
        manifest("csiq", tmp_path, sheet="Sheet9")
    assert len(manifest("csiq", tmp_path, sheet="all_by_image")["image_id"]) == len(CSIQ)


def test_live_release2_drops_reference_copies(tmp_path):
    make_live(tmp_path)
    table, records = read_dataset("live", str(tmp_path), PrepareConfig())
    m = table.to_pydict()
    names = ["jp2k/img1.bmp", "jp2k/img3.bmp", "jpeg/img1.bmp", "jpeg/img2.bmp", "wn/img1.bmp", "gblur/img1.bmp"]
    assert m["image_id"] == [f"live/{n}" for n in names]
    assert m["image_uri"] == [str(tmp_path / n) for n in names]
    assert m["mos"] == [30.0, 80.0, 10.0, 100.0, 50.0, 20.5]
    np.testing.assert_allclose(m["mos_norm"], [0.7, 0.2, 0.9, 0.0, 0.5, 0.795])  # DMOS 0-100 flipped
    assert m["level"] == ["good", "poor", "perfect", "bad", "fair", "good"]
    assert m["group"] == ["bikes", "house", "house", "parrots", "parrots", "bikes"]
    assert attrs(m["attrs"][1]) == {"dist_type": 1.0, "dist_param": 2.0}  # from info.txt, by image name
    assert attrs(m["attrs"][4]) == {"dist_type": 3.0, "dist_param": 0.1}
    assert records.notes == {"dropped_reference_copies": 2}
    assert records.image_dir == "jp2k,jpeg,wn,gblur,fastfading"
    kept = read_dataset("live", str(tmp_path), PrepareConfig(), keep_references="true")[0].to_pydict()
    assert len(kept["image_id"]) == 8 and kept["mos_norm"][1] == 1.0
    assert attrs(kept["attrs"][1])["reference_copy"] == 1.0


def test_live_errors(tmp_path):
    from scipy.io import savemat

    make_live(tmp_path)
    (tmp_path / "wn" / "info.txt").write_text("parrots.bmp img1.bmp 0.1\nparrots.bmp img2.bmp 0.2\n")
    with pytest.raises(UniqaError, match=r"the info files list 9 images \(jp2k 3, jpeg 2, wn 2, gblur 1, "
                                         r"fastfading 1\) but .*dmos.mat has 8 entries"):
        manifest("live", tmp_path)
    (tmp_path / "wn" / "info.txt").write_text("parrots.bmp img7.bmp 0.1\n")
    with pytest.raises(UniqaError, match=r"wn/info.txt: lists 1 images but not img1.bmp"):
        manifest("live", tmp_path)
    savemat(tmp_path / "dmos.mat", {"dmos": np.ones((1, 8))})
    with pytest.raises(UniqaError, match=r"dmos.mat: expected variable 'orgs', found variables \['dmos'\]"):
        manifest("live", tmp_path)
    savemat(tmp_path / "dmos.mat", {"dmos": np.ones((1, 7)), "orgs": np.zeros((1, 7))})
    with pytest.raises(UniqaError, match=r"dmos.mat has 7 dmos and 7 orgs entries but .*refnames_all.mat has 8"):
        manifest("live", tmp_path)
    make_live(tmp_path)
    savemat(tmp_path / "dmos.mat", {"dmos": np.full((1, 8), 120.0), "orgs": np.zeros((1, 8))})
    with pytest.raises(UniqaError, match=r"MOS 120 of image 'live/jp2k/img1.bmp' is outside .*-o mos_max="):
        manifest("live", tmp_path)
    with pytest.raises(UniqaError, match=r"option keep_references='maybe' is not a boolean"):
        manifest("live", tmp_path, keep_references="maybe")


def test_tid2013_levels_over_the_observed_range(tmp_path):
    make_tid(tmp_path, rows=TID_OBSERVED)  # MOS 0.3 .. 7.1 of the 0-9 scale
    m = manifest("tid2013", tmp_path)
    np.testing.assert_allclose(m["mos_norm"], [m / 9 for m, _ in TID_OBSERVED])  # normalised over 0-9
    # bins over the observed 0.3 .. 7.1: 3.8 -> 0.51 fair, 5.9 -> 0.82 perfect, 1.7 -> 0.21 poor
    assert m["level"] == ["perfect", "bad", "fair", "perfect", "poor"]
    published = read_dataset("tid2013", str(tmp_path), PrepareConfig(level_range="published"))[0]
    assert published["level"].to_pylist() == ["good", "bad", "fair", "good", "bad"]  # over 0-9: no "perfect"
    assert get_source("tid2013").level_range == "observed" and get_source("kadid10k").level_range == "published"
    with pytest.raises(UniqaError, match=r"level_range must be one of \['auto', 'published', 'observed'\]"):
        PrepareConfig(level_range="data")


def test_ava_without_comments_gets_seeded_splits(tmp_path):
    make_ava(tmp_path, comments=False)
    m = manifest("ava", tmp_path)
    assert all(c is None for c in m["comments"])
    assert sorted(m["split_0"]) == ["test", "train", "train", "train"]


def test_ava_errors(tmp_path):
    make_ava(tmp_path, rows=[("111", [0] * 10, 0, 0, 1)])
    with pytest.raises(UniqaError, match=r"AVA.txt: line 1: image 111 has no votes"):
        manifest("ava", tmp_path)
    (tmp_path / "AVA.txt").write_text("1 222 0 1 2 3 4 5 6 7 8 9 1 2\n")
    with pytest.raises(UniqaError, match=r"AVA.txt: line 1 has 14 fields, expected 15"):
        manifest("ava", tmp_path)
    (tmp_path / "AVA.txt").write_text("1 222 0 1 x 3 4 5 6 7 8 9 1 2 3\n")
    with pytest.raises(UniqaError, match=r"row 1 column 'votes_3' has non-numeric value 'x'"):
        manifest("ava", tmp_path)


def test_aadb_official_split(tmp_path):
    make_aadb(tmp_path)
    m = manifest("aadb", tmp_path)
    names = [n for rows in AADB.values() for n, _ in rows]
    assert m["image_id"] == [f"aadb/{n}" for n in names]
    assert m["image_uri"][0] == str(tmp_path / "datasetImages_warp256" / "farm1_1.jpg")
    assert m["mos"] == [0.0, 0.6, 0.2, 1.0, 0.55]
    assert m["level"] == ["bad", "good", "poor", "perfect", "fair"]
    assert m["split_0"] == ["train", "train", "val", "test", "test"] and m["split_7"] == m["split_0"]


def test_aadb_seeded_splits_on_request(tmp_path):
    make_aadb(tmp_path)
    table, _ = read_dataset("aadb", str(tmp_path), PrepareConfig(splits="seeded"))
    assert sorted(table["split_0"].to_pylist()) == ["test"] + ["train"] * 4


def test_flive_names_with_folders(tmp_path):
    make_flive(tmp_path)
    m = manifest("flive", tmp_path)
    assert m["image_id"] == [f"flive/{n}" for n, _ in FLIVE]
    assert m["image_uri"][1] == str(tmp_path / "database" / "blur_dataset" / "motion0037.jpg")
    assert m["mos_norm"] == [0.725, 0.18, 1.0]
    with pytest.raises(UniqaError, match=r"labels_image.csv: expected column 'image', found columns"):
        manifest("flive", tmp_path, name_column="image")


def test_folder_recursive_unlabelled(tmp_path):
    names = make_folder(tmp_path / "photos")
    m = manifest("folder", tmp_path / "photos", task="aesthetics", dataset="mine")
    assert m["image_id"] == [f"mine/{n}" for n in names]
    assert m["image_uri"] == [str(tmp_path / "photos" / n) for n in names]
    assert m["mos"] == m["mos_norm"] == m["level"] == [None] * 3
    assert set(m["task"]) == {"aesthetics"} and set(m["dataset"]) == {"mine"}
    with pytest.raises(UniqaError, match=r"option task='style' is not a task"):
        manifest("folder", tmp_path / "photos", task="style")
    with pytest.raises(UniqaError, match=r"folder not found: .*nowhere"):
        manifest("folder", tmp_path / "nowhere")


def test_folder_on_s3(tmp_path, s3_bucket):
    names = make_folder(tmp_path / "photos")
    upload_tree(tmp_path / "photos", f"{s3_bucket}/photos")
    m = manifest("folder", f"{s3_bucket}/photos/")
    assert m["image_id"] == [f"folder/{n}" for n in names]
    assert m["image_uri"] == [f"{s3_bucket}/photos/{n}" for n in names]


def test_table_csv_relative_paths_and_options(tmp_path):
    write_images(tmp_path / "imgs", ["x.jpg", "y.jpg", "z.jpg"])
    write_csv(tmp_path / "meta" / "scores.csv", ["file", "dmos", "ref"],
              [["../imgs/x.jpg", 10, "a"], ["../imgs/y.jpg", 30, "a"], [str(tmp_path / "imgs" / "z.jpg"), 20, "b"]])
    m = manifest("table", tmp_path / "meta" / "scores.csv", path_column="file", score_column="dmos",
                 mos_min="0", mos_max="40", higher_is_better="false", group_column="ref", dataset="lab")
    assert m["image_id"] == ["lab/../imgs/x.jpg", "lab/../imgs/y.jpg", f"lab/{tmp_path}/imgs/z.jpg"]
    assert m["image_uri"] == [str(tmp_path / "imgs" / n) for n in ("x.jpg", "y.jpg", "z.jpg")]
    assert m["mos_norm"] == [0.75, 0.25, 0.5]  # lower is better, range 0-40
    assert m["group"] == ["a", "a", "b"] and m["split_0"][0] == m["split_0"][1]
    with pytest.raises(UniqaError, match=r"options mos_min and mos_max go together"):
        manifest("table", tmp_path / "meta" / "scores.csv", path_column="file", score_column="dmos", mos_min="0")
    with pytest.raises(UniqaError, match=r"option higher_is_better='maybe' is not a boolean"):
        manifest("table", tmp_path / "meta" / "scores.csv", path_column="file", score_column="dmos",
                 higher_is_better="maybe")


def test_table_parquet_data_range_and_unlabelled(tmp_path):
    write_images(tmp_path, ["a.png", "b.png", "c.png"])
    pq.write_table(pa.table({"path": ["a.png", "b.png", "c.png"], "score": [2.0, 4.0, 3.0],
                             "fold": ["train", "test", "validation"]}), tmp_path / "t.parquet")
    m = manifest("table", tmp_path / "t.parquet", split_column="fold")
    assert m["mos_norm"] == [0.0, 1.0, 0.5]  # no range given: the data's min-max
    assert m["split_3"] == ["train", "test", "val"]
    m = manifest("table", tmp_path / "t.parquet", score_column="")
    assert m["mos"] == [None] * 3 and m["level"] == [None] * 3
    with pytest.raises(UniqaError, match=r"t.parquet: expected column 'mos', found columns"):
        manifest("table", tmp_path / "t.parquet", score_column="mos")
    with pytest.raises(UniqaError, match=r"expects --root to be a CSV or Parquet file"):
        manifest("table", tmp_path)


def test_score_outside_published_range_names_the_image(tmp_path):
    make_kadid(tmp_path, rows=[("I01_01_01.png", "I01.png", 5.5, 0.1)])
    with pytest.raises(UniqaError, match=r"MOS 5.5 of image 'kadid10k/I01_01_01.png' is outside .*\[1, 5\]"):
        manifest("kadid10k", tmp_path)


def test_missing_metadata_file_is_named(tmp_path):
    for name, expected in [("koniq10k", "koniq10k_scores_and_distributions.csv"), ("kadid10k", "dmos.csv"),
                           ("tid2013", "mos_with_names.txt"), ("ava", "AVA.txt"), ("flive", "labels_image.csv"),
                           ("aadb", "imgListTrainRegression_score.txt"), ("livec", "AllImages_release.mat"),
                           ("spaq", "MOS and Image attribute scores.xlsx"), ("csiq", "csiq.DMOS.xlsx"),
                           ("live", "dmos.mat")]:
        with pytest.raises(UniqaError, match=rf"expected dataset file not found: .*{expected}"):
            manifest(name, tmp_path)


def test_ava_comment_json_shapes(tmp_path):
    path = tmp_path / "CLEAN_AVA_FULL_AFTER_SUBJECTIVE_CLEANING.json"
    make_ava(tmp_path)
    path.write_text('{"images": [{"filename": "953619.jpg", "split": "train", '
                    '"sentences": [{"raw": null}, {"tokens": []}, {"raw": " ok "}]}]}')
    assert manifest("ava", tmp_path)["comments"][0] == ["", "", "ok"]  # never the text "None"
    path.write_text('{"images": [{"filename": "953619.jpg", "split": "train", "sentences": "nice"}]}')
    with pytest.raises(UniqaError, match=r"images\[0\] \(953619.jpg\): 'sentences' must be a list of objects"):
        manifest("ava", tmp_path)
    path.write_text('{"images": [{"filename": "953619.jpg", "split": "train", "sentences": [{"raw": 7}]}]}')
    with pytest.raises(UniqaError, match=r"images\[0\] \(953619.jpg\): sentence 'raw' must be a string, got 7"):
        manifest("ava", tmp_path)


@pytest.mark.parametrize("name, make, csv_name, header", [
    ("koniq10k", make_koniq, "koniq10k_scores_and_distributions.csv", ["image_name", "MOS_zscore"]),
    ("flive", make_flive, "labels_image.csv", ["name", "mos"]),
])
def test_csv_sources_name_an_empty_image_name(tmp_path, name, make, csv_name, header):
    make(tmp_path)
    write_csv(tmp_path / csv_name, header, [["a.jpg", 3], ["  ", 4]])
    with pytest.raises(UniqaError, match=rf"{csv_name}: row 3 column '{header[0]}' is empty"):
        manifest(name, tmp_path)
