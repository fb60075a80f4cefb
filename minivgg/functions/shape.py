"""Shape operations, differentiable: flatten."""
from ..autograd import as_tensor
from .checks import check_ndim


def flatten(x):
    """(N, C, H, W) -> (N, C*H*W) in NCHW order, as PyTorch flattens (so FC weights interchange)."""
    if x.ndim < 2:
        check_ndim("flatten", "an input", x, 2, "(N, ...)")
    return as_tensor(x).reshape(x.shape[0], -1)
