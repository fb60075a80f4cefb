"""Shape operations, differentiable: flatten."""
import math

from ..autograd import as_tensor
from .checks import check_ndim


def flatten(x):
    """(N, C, H, W) -> (N, C*H*W) in NCHW order, as PyTorch flattens (so FC weights interchange).

    The width is computed, not inferred with -1, so an empty batch gives (0, C*H*W).
    """
    if x.ndim < 2:
        check_ndim("flatten", "an input", x, 2, "(N, ...)")
    return as_tensor(x).reshape(x.shape[0], math.prod(x.shape[1:]))
