"""Every NumPy twin under one roof: the CPU kernel set.

``minivgg.functions`` picks this module for NumPy arrays and its GPU twin,
``kernels/cuda.py`` (same names, same arguments), for CuPy arrays.
"""
from .activation import relu_backward, relu_forward
from .conv import bias_grad, col2im, conv2d_backward, conv2d_forward, im2col
from .dropout import dropout_backward, dropout_forward, dropout_mask
from .loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .lrn import lrn_backward, lrn_forward
from .pool import max_pool_backward, max_pool_forward
from .sgd import sgd_update

__all__ = [
    "bias_grad", "col2im", "conv2d_backward", "conv2d_forward", "dropout_backward", "dropout_forward",
    "dropout_mask", "im2col", "lrn_backward", "lrn_forward", "max_pool_backward", "max_pool_forward",
    "relu_backward", "relu_forward", "sgd_update", "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
]
