"""Feature retrieval from an RVC `.index` file (faiss).

An RVC voice often ships with a faiss index of its training speaker's content features. Each frame's
features are replaced, in part, by a weighted mean of their k nearest training features, which pulls the
timbre towards the target speaker: weights 1 / d² (d² the squared L2 distance faiss returns), normalised;
blended as rate * retrieved + (1 - rate) * own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtvc.errors import ModelError
from rtvc.rvc.quiet_io import read_chunked

K = 8  # neighbours, as RVC uses


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
        if not path.is_file():
            raise ModelError(
                f"index file {path} not found",
                "put the voice's .index file there, fix `index` in the profile's [model] table, or remove it",
            )
        try:
            index = faiss.deserialize_index(np.frombuffer(read_chunked(path), dtype=np.uint8))
        except RuntimeError as e:
            first = str(e).strip().splitlines()[-1] if str(e).strip() else "unreadable"
            raise ModelError(
                f"{path}: not a faiss index ({first})", "use the voice's .index file, or remove it"
            ) from None
        if index.d != dim:
            raise ModelError(
                f"{path}: the index holds {index.d}-d features but the voice uses {dim}-d "
                f"({'v1' if dim == 256 else 'v2'} model)",
                "use the .index that came with this voice",
            )
        if index.ntotal < K:
            raise ModelError(f"{path}: the index holds only {index.ntotal} features", "it needs at least 8")
        vectors = index.reconstruct_n(0, index.ntotal).astype(np.float32)
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
