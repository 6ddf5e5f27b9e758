"""Feature retrieval from an RVC `.index` file (faiss).

An RVC voice often ships with a faiss index of its training speaker's content features. Each frame's
features are replaced, in part, by a weighted mean of their k nearest training features, which pulls the
timbre towards the target speaker: weights 1 / d² (d² the squared L2 distance faiss returns), normalised;
blended as rate * retrieved + (1 - rate) * own.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtvc.errors import ModelError
from rtvc.rvc.model_files import CHUNK

K = 8  # neighbours, as RVC uses
HEADER_BYTES = 4096  # what _check_ivf_flat reads: the index's header and its quantizer's (about 100 bytes)
DAMAGED_FIX = "use the voice's .index file again (download it again), or remove it"


@dataclass
class FeatureIndex:
    path: Path
    index: object  # faiss.Index
    vectors: np.ndarray  # (ntotal, dim) float32: the stored features, to average the neighbours

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @classmethod
    def load(cls, path: Path, dim: int) -> FeatureIndex:
        try:
            import faiss
        except ImportError as e:
            raise ModelError(f"{path}: reading .index files needs faiss-cpu", 'pip install "rtvc[rvc]"') from e
        if path.is_dir():
            raise ModelError(f"{path}: is a folder, not a .index file", "point `index` at the voice's .index file")
        if not path.is_file():
            raise ModelError(
                f"index file {path} not found",
                "put the voice's .index file there, fix `index` in the profile's [model] table, or remove it",
            )
        fix = DAMAGED_FIX
        try:
            with path.open("rb", buffering=0) as f:
                _check_ivf_flat(path, f.read(HEADER_BYTES), os.fstat(f.fileno()).st_size, dim)
                f.seek(0)
                # faiss parses the file as it reads it, with the GIL released, asking for a chunk at a time
                index = faiss.read_index(faiss.PyCallbackIOReader(f.read, CHUNK))
        except OSError as e:
            raise ModelError(f"{path}: cannot be read ({e.strerror or e})", "check the file's permissions") from None
        except (RuntimeError, ValueError, MemoryError) as e:
            said = str(e).strip()
            if "read error" in said:
                raise ModelError(f"{path}: damaged index: the file ends early (truncated)", fix) from None
            first = said.splitlines()[-1] if said else type(e).__name__
            raise ModelError(f"{path}: not a faiss index ({first[:200]})", fix) from None
        if index.d != dim:
            raise ModelError(
                f"{path}: the index holds {index.d}-d features but the voice uses {dim}-d "
                f"({'v1' if dim == 256 else 'v2'} model)",
                "use the .index that came with this voice",
            )
        stored = _stored_features(faiss, index)
        if stored is not None and stored != index.ntotal:
            raise ModelError(f"{path}: damaged index: it says {index.ntotal} features but holds {stored}", fix)
        if index.ntotal < K:
            raise ModelError(f"{path}: the index holds only {index.ntotal} features", "it needs at least 8")
        try:
            vectors = np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)  # (float32 already: no copy)
        except (RuntimeError, ValueError, MemoryError) as e:
            raise ModelError(f"{path}: damaged index: its features cannot be read ({type(e).__name__})", fix) from None
        return cls(path, index, vectors)

    def blend(self, feats: np.ndarray, rate: float) -> np.ndarray:
        """feats: (T, dim) float32 -> (T, dim): rate * retrieved + (1 - rate) * feats."""
        if rate <= 0.0 or len(feats) == 0:
            return feats
        x = np.ascontiguousarray(feats, dtype=np.float32)
        dist, ix = self.index.search(x, K)  # (T, K) squared L2, (T, K)
        found = ix >= 0  # an IVF list probed may hold fewer than K features
        w = np.where(found, 1.0 / np.maximum(dist, 1e-12) ** 2, 0.0)
        total = w.sum(axis=1, keepdims=True)
        w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        retrieved = np.einsum("tk,tkd->td", w, self.vectors[np.where(found, ix, 0)]).astype(np.float32)
        rate_t = np.where(total > 0, rate, 0.0).astype(np.float32)  # nothing found: keep own features
        return rate_t * retrieved + (1.0 - rate_t) * x


# RVC writes IVF-Flat indexes (faiss index_io: the fourcc, then d (int32), ntotal (int64), two int64s, is_trained
# (uint8), metric_type (int32; a float32 metric_arg after it for metrics above 1); then nlist and nprobe (uint64);
# then the quantizer, a flat index with the same header, then its centroids: a uint64 count and that many float32s.
_IVF_FLAT = (b"IwFl", b"IvFl")
_FLAT = (b"IxF2", b"IxFI")
_HEAD = struct.Struct("<4siqqqBi")


def _check_ivf_flat(path: Path, data: bytes, size: int, dim: int) -> None:
    """ModelError where an IVF-Flat index declares more than its file (`size` bytes, `data` its first ones)
    holds: faiss allocates (and zero-fills) what the header declares before it finds the file short (a 2-byte
    corruption asked for 14 GB and took a minute). A flat index is checked the same way; other index types go to
    faiss unchecked."""
    fix = DAMAGED_FIX
    if len(data) >= _HEAD.size and data[:4] in _FLAT:  # a flat index (features alone): its codes, ntotal x d floats
        _, d, ntotal, *_ = _HEAD.unpack_from(data, 0)
        if (d == dim or not 0 < d < 100_000) and (d <= 0 or ntotal < 0 or ntotal * d * 4 > size):
            bad = f"it declares {ntotal} features of {d} values, more than its {size} bytes hold"
            raise ModelError(f"{path}: damaged index: {bad}", fix)  # (faiss: its C++ assertion, cut mid-expression)
        return
    if len(data) < _HEAD.size + 16 + _HEAD.size + 8 + 8 or data[:4] not in _IVF_FLAT:
        return
    _, d, ntotal, _, _, _, metric = _HEAD.unpack_from(data, 0)
    at = _HEAD.size + (4 if metric > 1 else 0)
    nlist, _ = struct.unpack_from("<QQ", data, at)
    at += 16
    qtype, qd, qtotal, _, _, _, qmetric = _HEAD.unpack_from(data, at)
    at += _HEAD.size + (4 if qmetric > 1 else 0)
    (centroids,) = struct.unpack_from("<Q", data, at)
    if d != dim and 0 < d < 100_000:
        return  # (a wrong dimension is said below, in the words a user can act on)
    bad = ""
    if d <= 0 or ntotal < 0 or ntotal * d * 4 > size:
        bad = f"it declares {ntotal} features of {d} values, more than its {size} bytes hold"
    elif bytes(qtype) not in _FLAT or qd != d or qtotal != nlist or centroids != nlist * d:
        bad = f"its coarse quantizer does not match ({nlist} lists of {d} values declared)"
    elif centroids * 4 > size - at:
        bad = f"it declares {centroids} centroid values, more than its {size} bytes hold"
    if bad:
        raise ModelError(f"{path}: damaged index: {bad}", fix)


def _stored_features(faiss: object, index: object) -> int | None:
    """Features in an IVF index's lists (None for other kinds)."""
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        return None
    return sum(ivf.invlists.list_size(i) for i in range(ivf.nlist))


def write_index(path: Path, feats: np.ndarray, n_lists: int | None = None) -> None:
    """Build an index the way RVC's training does (IVF, flat lists) from (N, dim) features."""
    import faiss

    feats = np.ascontiguousarray(feats, dtype=np.float32)
    n = len(feats)
    n_lists = n_lists or max(1, min(int(16 * np.sqrt(n)), n // 39))
    index = faiss.index_factory(feats.shape[1], f"IVF{n_lists},Flat")
    index.train(feats)
    index.add(feats)
    faiss.write_index(index, str(path))
