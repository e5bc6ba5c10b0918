import numpy as np
import pytest

from clipforge.index.vectors import VectorSegments


def unit(n, d, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_append_and_read_across_segments(tmp_path):
    store = VectorSegments(tmp_path, dim=8, committed_rows=0, segment_rows=5)
    data = unit(12, 8)
    assert store.append(data[:7]) == 0
    assert store.append(data[7:]) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg-00000.f16", "seg-00001.f16", "seg-00002.f16"]
    back = store.read([11, 0, 5, 4])
    assert np.allclose(back, data[[11, 0, 5, 4]], atol=1e-3)


def test_float16_cosine_error_is_below_1e_3(tmp_path):
    store = VectorSegments(tmp_path, dim=512, committed_rows=0)
    data = unit(200, 512, seed=3)
    store.append(data)
    back = store.read(np.arange(200))
    assert np.allclose(np.linalg.norm(back, axis=1), 1, atol=1e-6)  # renormalised after float16
    cosine = (back * data).sum(1)
    assert np.max(1 - cosine) < 1e-3


def test_uncommitted_rows_are_cut_by_the_next_writer(tmp_path):
    store = VectorSegments(tmp_path, dim=4, committed_rows=0, segment_rows=3)
    store.append(unit(2, 4))          # committed: 2 rows
    store.append(unit(4, 4, seed=1))  # never committed: a crash before the SQLite commit
    assert (tmp_path / "seg-00001.f16").exists()
    again = VectorSegments(tmp_path, dim=4, committed_rows=2, segment_rows=3)
    again.discard_uncommitted(2)
    assert (tmp_path / "seg-00000.f16").stat().st_size == 2 * 4 * 2
    assert not (tmp_path / "seg-00001.f16").exists()
    assert again.append(unit(1, 4, seed=2)) == 2


def test_out_of_range_and_wrong_shape(tmp_path):
    store = VectorSegments(tmp_path, dim=4, committed_rows=0)
    store.append(unit(2, 4))
    with pytest.raises(IndexError):
        store.read([2])
    with pytest.raises(ValueError):
        store.append(unit(2, 5))
