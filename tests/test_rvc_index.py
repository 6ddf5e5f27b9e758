"""Feature retrieval from a faiss .index file, and the frame-indexed synthesizer noise."""

from __future__ import annotations

import numpy as np
import pytest

faiss = pytest.importorskip("faiss", reason="needs the rvc extra (faiss-cpu)")

from rtvc.errors import ModelError  # noqa: E402
from rtvc.rvc.index import FeatureIndex, write_index  # noqa: E402
from rtvc.rvc.noise import FrameNoise  # noqa: E402


@pytest.fixture
def index_file(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((2000, 32)).astype(np.float32)
    path = tmp_path / "voice.index"
    write_index(path, feats, n_lists=8)
    return path, feats


def test_retrieval_blends_the_nearest_training_features(index_file):
    path, feats = index_file
    idx = FeatureIndex.load(path, 32)
    assert idx.vectors.shape == (2000, 32)
    idx.index.nprobe = 8  # search every list: the exact nearest neighbours, to compare with brute force
    rng = np.random.default_rng(1)
    q = rng.standard_normal((50, 32)).astype(np.float32)
    # brute force: 8 nearest by squared L2, weights 1/d^4 normalised (RVC's 1/score^2 with score = d^2)
    d2 = ((q[:, None, :] - feats[None]) ** 2).sum(-1)
    nn = np.argsort(d2, axis=1)[:, :8]
    w = 1.0 / np.take_along_axis(d2, nn, 1) ** 2
    w /= w.sum(1, keepdims=True)
    expect = (w[..., None] * feats[nn]).sum(1)
    for rate in (0.0, 0.3, 1.0):
        got = idx.blend(q, rate)
        np.testing.assert_allclose(got, rate * expect + (1 - rate) * q, rtol=1e-4, atol=1e-4)


def test_a_training_feature_retrieves_itself(index_file):
    path, feats = index_file
    idx = FeatureIndex.load(path, 32)
    got = idx.blend(feats[:20], 1.0)  # distance 0 dominates the weights
    np.testing.assert_allclose(got, feats[:20], atol=1e-4)


def test_bad_index_files_name_the_file_and_the_problem(index_file, tmp_path):
    path, _ = index_file
    with pytest.raises(ModelError, match="holds 32-d features but the voice uses 768-d"):
        FeatureIndex.load(path, 768)
    with pytest.raises(ModelError, match=r"index file .*missing\.index not found"):
        FeatureIndex.load(tmp_path / "missing.index", 32)
    junk = tmp_path / "junk.index"
    junk.write_bytes(b"not an index at all" * 10)
    with pytest.raises(ModelError, match=r"junk\.index: not a faiss index"):
        FeatureIndex.load(junk, 32)
    cut = tmp_path / "cut.index"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ModelError, match=r"cut\.index: damaged index: it declares 2000 features of 32 values, more"):
        FeatureIndex.load(cut, 32)
    with pytest.raises(ModelError, match=r"is a folder, not a \.index file"):
        FeatureIndex.load(tmp_path, 32)


def test_an_index_that_cannot_be_read_is_named_with_the_reason(index_file, monkeypatch):
    from pathlib import Path

    path, _ = index_file

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refused)  # (as root, chmod 0 would not stop the read)
    with pytest.raises(ModelError, match=r"voice\.index: cannot be read \(Permission denied\)"):
        FeatureIndex.load(path, 32)


@pytest.mark.parametrize(
    ("offset", "value", "said"),
    [
        (8, 1 << 62, "it declares 4611686018427387904 features of 32 values, more than its"),
        (8, 2001, "it says 2001 features but holds 2000"),
        (90, 3_600_000_000, "its coarse quantizer does not match"),
    ],
    ids=["ntotal-huge", "ntotal-off-by-one", "centroid-count"],
)
def test_a_damaged_index_header_is_refused_before_faiss_allocates_what_it_declares(
    index_file, tmp_path, offset, value, said
):
    """A 2-byte corruption of the centroid count made faiss allocate and zero 14 GB and take a minute before it
    found the file short; a huge feature count raised numpy's ValueError as an internal error."""
    import struct

    path, _ = index_file
    data = bytearray(path.read_bytes())
    struct.pack_into("<q", data, offset, value)
    bad = tmp_path / "bad.index"
    bad.write_bytes(data)
    with pytest.raises(ModelError, match="bad\\.index: damaged index: " + said):
        FeatureIndex.load(bad, 32)


def test_a_flat_index_declaring_more_than_it_holds_is_refused_in_words(tmp_path):
    """A flat index (features alone, IxF2) with a huge feature count got faiss's C++ assertion as its error, cut
    off mid-expression; an IVF-Flat one was said in words (a review)."""
    import struct

    import faiss

    flat = faiss.IndexFlatL2(32)
    flat.add(np.random.default_rng(0).standard_normal((300, 32)).astype(np.float32))
    path = tmp_path / "flat.index"
    faiss.write_index(flat, str(path))
    assert FeatureIndex.load(path, 32).blend(np.zeros((2, 32), np.float32), 0.5).shape == (2, 32)  # (the intact one)
    data = bytearray(path.read_bytes())
    struct.pack_into("<q", data, 8, 10**11)
    path.write_bytes(data)
    with pytest.raises(ModelError, match=r"flat\.index: damaged index: it declares 100000000000 features of 32 values"):
        FeatureIndex.load(path, 32)


def test_noise_is_a_function_of_seed_and_absolute_frame():
    a = FrameNoise(seed=7, inter_channels=4, upp=10)
    flow, sine = a.frames(100, 110)
    assert flow.shape == (4, 10) and sine.shape == (100,)
    # any split of the frame range gives the same noise: what a streamed decode needs
    f1, s1 = FrameNoise(7, 4, 10).frames(100, 103)
    f2, s2 = FrameNoise(7, 4, 10).frames(103, 110)
    np.testing.assert_array_equal(np.concatenate([f1, f2], axis=1), flow)
    np.testing.assert_array_equal(np.concatenate([s1, s2]), sine)
    other, _ = FrameNoise(8, 4, 10).frames(100, 110)
    assert not np.allclose(other, flow)
    assert abs(float(sine.std()) - 1.0) < 0.2 and abs(float(sine.mean())) < 0.2
