"""The packaged catalog is complete and consistent, and malformed catalogs fail loudly with the place named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from srpipe.data.catalog import CatalogError, UnknownDatasetError, get_dataset, load_catalog

BENCHMARKS = ("Set5", "Set14", "B100", "Urban100")


def test_catalog_holds_every_dataset() -> None:
    names = load_catalog().names()
    for name in ("sample", "DIV2K", *BENCHMARKS, "T91", "General100", "BSD200", "Flickr2K", "Manga109"):
        assert name in names
    assert load_catalog() is load_catalog()  # parsed once per process


def test_benchmarks_come_from_the_one_edsr_bundle() -> None:
    archives = {get_dataset(n).sources[0].archive for n in BENCHMARKS}
    assert len(archives) == 1
    (bundle,) = archives
    assert bundle.file == "benchmark.tar" and bundle.urls[0] == "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"
    assert bundle.size == 250112000 and bundle.checksum.startswith("sha256:80c21c33")
    for name in BENCHMARKS:
        spec = get_dataset(name)
        assert spec.default_split == "test"
        assert [r.split for r in spec.sources[0].layout] == ["test", "test_lr_x2", "test_lr_x3", "test_lr_x4"]
        assert all(r.globs[0].startswith(f"benchmark/{name}/") for r in spec.sources[0].layout)


def test_div2k_has_hr_and_official_bicubic_lr_for_train_and_valid() -> None:
    spec = get_dataset("DIV2K")
    splits = {r.split: r.count for s in spec.sources for r in s.layout}
    assert splits == {
        "train": 800,
        "valid": 100,
        **{f"train_lr_x{s}": 800 for s in (2, 3, 4)},
        **{f"valid_lr_x{s}": 100 for s in (2, 3, 4)},
    }
    # every DIV2K zip has a published size and sha256 (tensorflow/datasets' checksum list)
    assert all(s.archive.size and s.archive.checksum.startswith("sha256:") for s in spec.sources)
    train_hr = spec.sources[0].archive
    assert train_hr.size == 3530603713 and train_hr.urls[0].startswith("https://data.vision.ee.ethz.ch/cvl/DIV2K/")


def test_every_downloadable_dataset_has_urls_and_counts() -> None:
    for spec in load_catalog().datasets.values():
        if spec.embedded or spec.local_only:
            assert spec.sources == ()
            continue
        for source in spec.sources:
            assert source.archive.urls and all(u.startswith(("https://", "http://")) for u in source.archive.urls)
            assert all(rule.count for rule in source.layout), spec.name


def test_special_datasets() -> None:
    manga = get_dataset("Manga109")
    assert manga.local_only and "--local Manga109=DIR" in manga.note
    assert get_dataset("sample").embedded and get_dataset("sample").default_split == "train"
    assert get_dataset("General100").sources[0].archive.checksum is None  # none published: trust on first use


def test_lookup_is_case_insensitive_and_unknown_names_list_the_known_ones() -> None:
    assert get_dataset("urban100").name == "Urban100"
    with pytest.raises(UnknownDatasetError, match=r"'Set6'.*known datasets: sample, DIV2K, Set5"):
        get_dataset("Set6")


def test_importing_the_catalog_reads_nothing() -> None:
    code = "import sys, srpipe.data.catalog; print('yaml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


GOOD_ARCHIVE = "a.zip: {urls: [http://x/a.zip], size: 10, checksum: null}"
GOOD_DATASET = "D: {description: d, licence: l, homepage: h, default_split: train, sources: [%s]}"
GOOD_SOURCE = "{archive: a.zip, layout: {train: {glob: '*'}}}"


@pytest.mark.parametrize(
    ("archives", "source", "error"),
    [
        ("a.zip: {urls: [http://x/a.zip], size: 10, checksum: 'md5:abc'}", GOOD_SOURCE, r"archives\.a\.zip\.checksum"),
        ("a.zip: {urls: [http://x/a.zip], size: -1, checksum: null}", GOOD_SOURCE, r"a\.zip\.size"),
        ("a.zip: {urls: [http://x/a.zip], checksum: null}", GOOD_SOURCE, r"missing keys \['size'\]"),
        ("a.zip: {urls: [http://x/a.zip], size: 1, checksum: null, sha: 1}", GOOD_SOURCE, r"unknown keys \['sha'\]"),
        (GOOD_ARCHIVE, "{archive: b.zip, layout: {train: {glob: '*'}}}", "unknown archive 'b.zip'"),
        (GOOD_ARCHIVE, "{archive: a.zip, layout: {train: {pattern: '*'}}}", r"layout\.train: missing keys"),
        (GOOD_ARCHIVE, f"{GOOD_SOURCE}, {GOOD_SOURCE}", "split 'train' comes from more than one source"),
        (GOOD_ARCHIVE, "{archive: a.zip, layout: {train: {glob: '*', count: 0}}}", r"count: expected a positive"),
    ],
)
def test_malformed_catalogs_are_rejected(catalog_for, archives: str, source: str, error: str) -> None:
    text = f"archives:\n  {archives}\ndatasets:\n  {GOOD_DATASET % source}\n"
    with pytest.raises(CatalogError, match=error):
        catalog_for(text)


def test_a_valid_small_catalog_parses(catalog_for) -> None:
    catalog = catalog_for(f"archives:\n  {GOOD_ARCHIVE}\ndatasets:\n  {GOOD_DATASET % GOOD_SOURCE}\n")
    rule = catalog.get("D").sources[0].layout[0]
    assert (rule.split, rule.globs, rule.count) == ("train", ("*",), None)


def test_folder_copies_of_set5_set14_and_t91_can_be_checked_image_by_image() -> None:
    counts = {name: len(get_dataset(name).images) for name in ("Set5", "Set14", "T91", "DIV2K")}
    assert counts == {"Set5": 5, "Set14": 14, "T91": 91, "DIV2K": 0}
    assert dict(get_dataset("Set14").images)["test/bridge"].startswith("sha256:")


@pytest.mark.parametrize(
    ("images", "error"),
    [
        ("[a]", r"D\.images: expected a mapping"),
        ("{baby: 'sha256:%s'}" % ("0" * 64), r"D\.images\.baby: expected <split>/<image>"),
        ("{test/baby: 'md5:%s'}" % ("0" * 32), r"D\.images\.test/baby: expected"),
        ("{test/baby: 'sha256:abc'}", r"D\.images\.test/baby: expected"),
    ],
)
def test_malformed_image_checksums_are_rejected(catalog_for, images: str, error: str) -> None:
    dataset = GOOD_DATASET.removesuffix("}") % GOOD_SOURCE + f", images: {images}}}"
    with pytest.raises(CatalogError, match=error):
        catalog_for(f"archives:\n  {GOOD_ARCHIVE}\ndatasets:\n  {dataset}\n")
