"""Small numpy analyses of posterior means (no scipy): a PCA shared by all datasets."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np

from ..exceptions import DataError

__all__ = ["SharedPCA", "shared_pca"]


@attrs.frozen(kw_only=True, eq=False)
class SharedPCA:
    """Principal components fitted on the condition averages of all datasets together.

    Attributes
    ----------
    components : ndarray, (k, factors)
        Unit principal axes; each one's largest-magnitude loading is positive.
    mean : ndarray, (factors,)
        Mean removed before projecting.
    explained_variance_ratio : ndarray, (k,)
        Fraction of the total variance along each axis.
    projections : dict of str to ndarray
        Each dataset's input projected: ``[..., k]`` with the input's leading shape.
    """

    components: np.ndarray
    mean: np.ndarray
    explained_variance_ratio: np.ndarray
    projections: dict[str, np.ndarray]

    def project(self, values: np.ndarray) -> np.ndarray:
        """Project any ``[..., factors]`` array onto the shared axes."""
        return (np.asarray(values, dtype=np.float64) - self.mean) @ self.components.T


def shared_pca(arrays: Mapping[str, np.ndarray], n_components: int = 2) -> SharedPCA:
    """PCA of the concatenation of every dataset's ``[..., factors]`` array.

    Used for the stitching figure: with condition-averaged factors
    ``[conditions, T, factors]`` per dataset, one set of axes shows whether the
    datasets share their latent trajectories. Rows with NaN are left out of the fit.

    Raises
    ------
    DataError
        No arrays, differing factor counts, or fewer finite rows than needed.
    """
    if not arrays:
        msg = "shared_pca needs at least one dataset"
        raise DataError(msg)
    dims = {name: np.asarray(a).shape[-1] for name, a in arrays.items()}
    if len(set(dims.values())) != 1:
        msg = f"shared_pca: all datasets need the same number of factors, got {dims}"
        raise DataError(msg)
    (n_features,) = set(dims.values())
    rows = np.concatenate(
        [np.asarray(a, dtype=np.float64).reshape(-1, n_features) for a in arrays.values()]
    )
    rows = rows[np.isfinite(rows).all(axis=1)]
    k = int(n_components)
    if k < 1 or k > n_features or rows.shape[0] <= k:
        msg = (
            f"shared_pca: cannot fit {k} components to {rows.shape[0]} finite rows of "
            f"{n_features} factors"
        )
        raise DataError(msg)
    mean = rows.mean(axis=0)
    _, s, vt = np.linalg.svd(rows - mean, full_matrices=False)
    components = vt[:k]
    flip = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components = components * flip[:, None]
    total = (s**2).sum()
    ratio = (s[:k] ** 2) / total if total > 0 else np.zeros(k)
    pca = SharedPCA(
        components=components, mean=mean, explained_variance_ratio=ratio, projections={}
    )
    pca.projections.update({name: pca.project(a) for name, a in arrays.items()})
    return pca
