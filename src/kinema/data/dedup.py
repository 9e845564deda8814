"""Near-duplicate removal and k-means concept clusters over clip embeddings.

Shape legend: N clips, D embedding width, K clusters.
"""

from __future__ import annotations

import numpy as np


def find_duplicates(embeddings: np.ndarray, quality: np.ndarray, threshold: float) -> np.ndarray:
    """Mark near-duplicates, keeping the best-quality clip of each group.

    Clips are visited from best to worst quality; a clip whose cosine similarity to an already kept
    clip reaches `threshold` becomes a duplicate of the most similar kept one.

    Args:
        embeddings: (N, D) unit-length rows.
        quality: (N,) higher is better (ties broken by position, so results are deterministic).
        threshold: cosine similarity at which two clips count as the same.

    Returns:
        (N,) int64: index of the kept clip each row duplicates, or -1 for kept rows.
    """
    n = len(embeddings)
    out = np.full(n, -1, np.int64)
    if n == 0:
        return out
    order = np.lexsort((np.arange(n), -np.asarray(quality, np.float64)))
    kept: list[int] = []
    emb = np.asarray(embeddings, np.float32)
    for i in order:
        if kept:
            sims = emb[kept] @ emb[i]  # (len(kept),)
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                out[i] = kept[j]
                continue
        kept.append(int(i))
    return out


def kmeans(embeddings: np.ndarray, k: int, iters: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding (cosine geometry: rows are unit length).

    Args:
        embeddings: (N, D).
        k: clusters; reduced to N when there are fewer rows.

    Returns:
        labels (N,) int64 and centers (K, D) float32.
    """
    x = np.asarray(embeddings, np.float32)
    n = len(x)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, x.shape[1] if x.ndim == 2 else 0), np.float32)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centers = [x[int(rng.integers(n))]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.stack(centers)[None]) ** 2).sum(-1), axis=1)  # (N,)
        total = d2.sum()
        centers.append(x[int(rng.choice(n, p=d2 / total))] if total > 0 else x[int(rng.integers(n))])
    c = np.stack(centers)  # (K, D)
    labels = np.zeros(n, np.int64)
    for _ in range(iters):
        d2 = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None]  # (N, K)
        new = d2.argmin(1)
        if _ > 0 and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
    return labels, c
