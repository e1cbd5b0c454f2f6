"""Official files: loading the three formats, checksums remembered, and bad files refused."""

import os
import warnings

import numpy as np
import pytest
from dataset_fakes import DSPRITES_NPZ, SHAPES3D_H5, fake_shapes3d_labels

from benchmarks.datasets import DatasetFileError, OfficialFileMissingError, checksums
from benchmarks.datasets.dsprites import DSprites
from benchmarks.datasets.shapes3d import Shapes3D


def _cache_files(root):
    cache = root / "cache"
    return (
        sorted(p.name for p in cache.glob("*") if not p.name.endswith((".verified.json", ".lock")))
        if cache.exists()
        else []
    )


def test_npz_with_pickled_metadata_loads_in_grid_order(write_dsprites_npz, trust, data_root):
    path, arrays = write_dsprites_npz()
    checksum = trust(path)
    ds = DSprites(source="official", progress=False).prepare()
    assert ds.source == "official"
    factors = ds.grid.all_factors()
    assert np.array_equal(ds.images(factors)[:, 0], arrays["imgs"] * 255)  # 0/1 -> 0/255, same order
    provenance = ds.provenance()
    assert provenance["source"] == "official" and provenance["checksum"] == str(checksum)
    assert provenance["official_file"] == str(path)
    assert (data_root / "cache" / "dsprites-official.npy").is_file()
    # binary pixels are stored bit-packed (cache.py): 64 * 64 bits = 512 bytes per image
    assert np.load(data_root / "cache" / "dsprites-official.npy", mmap_mode="r").shape == (len(ds), 512)


def test_hdf5_layout_loads(write_dsprites_hdf5, trust):
    path, arrays = write_dsprites_hdf5()
    trust(path)
    ds = DSprites(source="official", progress=False).prepare()
    rng = np.random.default_rng(0)
    factors = ds.sample_factors(50, rng)
    flat = ds.grid.factors_to_indices(factors)
    assert np.array_equal(ds.images(factors)[:, 0], arrays["imgs"][flat] * 255)


@pytest.mark.parametrize("shuffle", [False, True])
def test_shapes3d_float_labels_map_to_indices_by_nearest_value(write_shapes3d_h5, trust, shuffle):
    path, arrays = write_shapes3d_h5(shuffle=shuffle)
    trust(path)
    ds = Shapes3D(source="official", progress=False).prepare()
    # rows are placed by their labels, so a shuffled file gives the same dataset
    labels_as_factors = np.stack(
        [
            np.argmin(np.abs(arrays["labels"][:, [j]] - v[None]), axis=1)
            for j, v in enumerate(ds.factor_values())
        ],
        axis=1,
    )
    expected = arrays["images"].transpose(0, 3, 1, 2)
    assert np.array_equal(ds.images(labels_as_factors), expected)
    assert ds.images(labels_as_factors[:3]).shape == (3, 3, 64, 64)


def test_checksum_is_verified_once_then_remembered_by_size_and_mtime(write_dsprites_npz, trust, monkeypatch):
    path, _ = write_dsprites_npz()
    trust(path)
    calls = []
    real_digest = checksums.file_digest
    monkeypatch.setattr(checksums, "file_digest", lambda *a, **k: calls.append(a[0]) or real_digest(*a, **k))
    DSprites(source="official", progress=False).prepare()
    DSprites(source="official", progress=False).prepare()
    assert len(calls) == 1  # the stamp vouched the second time
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file "changed"
    DSprites(source="official", progress=False).prepare()
    assert len(calls) == 2


def test_wrong_checksum_is_refused_and_leaves_nothing_in_the_cache(write_dsprites_npz, trust, data_root):
    path, _ = write_dsprites_npz()
    expected = trust(path)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # same size, different bytes
    with pytest.raises(DatasetFileError) as excinfo:
        DSprites(source="official", progress=False).prepare()
    message = str(excinfo.value)
    assert str(path) in message and expected.hexdigest in message and "found sha256" in message
    assert _cache_files(data_root) == []
    assert not list((data_root / "cache").glob("*.verified.json"))


def test_truncated_file_is_refused_naming_the_file(write_dsprites_npz, trust, data_root):
    path, _ = write_dsprites_npz()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    trust(path)  # the checksum matches the truncated bytes: the reader itself must notice
    with pytest.raises(DatasetFileError, match=str(path)):
        DSprites(source="official", progress=False).prepare()
    assert _cache_files(data_root) == []


def test_truncated_array_inside_a_valid_zip_is_refused(write_dsprites_npz, trust, data_root):
    import zipfile

    path, arrays = write_dsprites_npz()
    # rewrite imgs.npy with a header that promises more rows than it holds
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members["imgs.npy"] = members["imgs.npy"][: len(members["imgs.npy"]) - 4096 * 10]
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    trust(path)
    with pytest.raises(DatasetFileError, match=r"truncated"):
        DSprites(source="official", progress=False).prepare()
    assert _cache_files(data_root) == []


def test_unexpected_keys_are_refused_listing_expected_and_found(data_root, tiny_dsprites, trust):
    data_root.mkdir(parents=True)
    path = data_root / DSPRITES_NPZ
    with path.open("wb") as f:
        np.savez(f, images=np.zeros((4, 64, 64), np.uint8))
    trust(path)
    with pytest.raises(DatasetFileError) as excinfo:
        DSprites(source="official", progress=False).prepare()
    message = str(excinfo.value)
    assert "'imgs'" in message and "'latents_classes'" in message and "found 'images'" in message


def test_wrong_shapes_are_refused_with_expected_and_found(write_dsprites_npz, trust):
    path, arrays = write_dsprites_npz(imgs=np.zeros((216, 32, 32), np.uint8))
    trust(path)
    with pytest.raises(
        DatasetFileError, match=r"'imgs' should be .*\(216, 64, 64\); found uint8 shaped \(216, 32, 32\)"
    ):
        DSprites(source="official", progress=False).prepare()


def test_shapes3d_labels_off_the_grid_are_refused(write_shapes3d_h5, trust):
    labels = fake_shapes3d_labels()
    labels[5, 3] = 0.9  # scale 0.9 lies between the tiny grid's two values (0.75, 1.25)
    path, _ = write_shapes3d_h5(labels=labels)
    trust(path)
    with pytest.raises(DatasetFileError, match=r"factor 'scale' in row 5 is 0.9"):
        Shapes3D(source="official", progress=False).prepare()


def test_rows_that_do_not_cover_the_grid_are_refused(write_shapes3d_h5, trust):
    labels = fake_shapes3d_labels()
    labels[1] = labels[0]  # one combination twice, another missing
    path, _ = write_shapes3d_h5(labels=labels)
    trust(path)
    with pytest.raises(DatasetFileError, match=r"1 missing and 1 repeated"):
        Shapes3D(source="official", progress=False).prepare()


def test_missing_official_file_says_where_to_put_it(data_root, tiny_dsprites):
    with pytest.raises(OfficialFileMissingError) as excinfo:
        DSprites(source="official", progress=False).prepare()
    message = str(excinfo.value)
    assert str(data_root / DSPRITES_NPZ) in message and "--source procedural" in message


def test_auto_prefers_a_verified_official_file_and_records_the_source(write_shapes3d_h5, trust):
    assert Shapes3D(source="auto", progress=False).prepare().source == "procedural"
    path, _ = write_shapes3d_h5()
    trust(path)
    ds = Shapes3D(source="auto", progress=False).prepare()
    assert ds.source == "official" and ds.provenance()["official_file"].endswith(SHAPES3D_H5)


def test_auto_falls_back_to_procedural_when_the_official_file_is_corrupt(write_shapes3d_h5, trust):
    path, _ = write_shapes3d_h5()
    trust(path)
    path.write_bytes(b"not what it was")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = Shapes3D(source="auto", progress=False).prepare()
    assert ds.source == "procedural"
    assert any("checksum mismatch" in str(w.message) and "procedural" in str(w.message) for w in caught)


def test_a_verified_conversion_outlives_the_official_file(write_dsprites_npz, trust):
    path, arrays = write_dsprites_npz()
    checksum = trust(path)
    DSprites(source="official", progress=False).prepare()
    path.unlink()  # e.g. deleted to save space once converted
    for source in ("official", "auto"):
        ds = DSprites(source=source, progress=False).prepare()
        assert ds.source == "official" and ds.provenance()["checksum"] == str(checksum)
        assert np.array_equal(ds.images(ds.grid.all_factors())[:, 0], arrays["imgs"] * 255)
