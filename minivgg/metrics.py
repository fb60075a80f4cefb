"""Top-k error, the paper's measure: the fraction of images whose true class
is not among the k classes with the highest scores (k=1 and k=5)."""
import numpy as np


def top_k_error(scores, labels, k):
    """Top-``k`` error of (N, K) ``scores`` (logits or posteriors) against integer ``labels`` (N,)."""
    scores = scores.get() if hasattr(scores, "get") else np.asarray(scores)
    labels = labels.get() if hasattr(labels, "get") else np.asarray(labels)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"top_k_error: expected scores (N, classes) for {labels.shape[0]} labels, "
                         f"got shape {scores.shape}")
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(1.0 - (best == labels[:, None]).any(axis=1).mean())
