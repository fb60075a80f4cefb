"""Local response normalisation across channels, differentiable.

Krizhevsky et al. 2012, section 3.3, used by the VGG paper's net A-LRN:

    d[n, c, h, w] = k + alpha * sum_{c' in win(c)} x[n, c', h, w]**2
    y = x * d**(-beta)

with win(c) the ``size`` channels c - size//2 .. c + (size-1)//2 that exist.
(PyTorch's LocalResponseNorm divides alpha by ``size``: its alpha is
``size`` times ours.)  Differentiating, with g = dL/dy,

    dx[c] = g[c] * d[c]**(-beta)
            - 2 * alpha * beta * x[c] * sum_{c'' : c in win(c'')} g[c''] * x[c''] * d[c'']**(-beta-1)

The second sum runs over the *transposed* window c - (size-1)//2 .. c + size//2.
"""
from ..autograd import Function
from ..kernels import kernels_for
from .checks import check_ndim


class LocalResponseNorm(Function):
    name = "local_response_norm"

    def forward(self, x, size, alpha, beta, k):
        self.kernels = kernels_for(x)
        y, self.d = self.kernels.lrn_forward(x, size, alpha, beta, k)
        self.x, self.size, self.alpha, self.beta = x, size, alpha, beta
        return y

    def backward(self, grad):
        return (self.kernels.lrn_backward(grad, self.x, self.d, self.size, self.alpha, self.beta),)


def local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """Normalise each activation by the energy of its ``size`` neighbouring channels."""
    check_ndim("local_response_norm", "an input", x, 4, "(N, C, H, W)")
    if not (isinstance(size, int) and size >= 1):
        raise ValueError(f"local_response_norm: expected an integer size >= 1, got {size!r}")
    if k <= 0 or alpha < 0:
        raise ValueError(f"local_response_norm: expected k > 0 and alpha >= 0, got k={k}, alpha={alpha}")
    return LocalResponseNorm.apply(x, size=size, alpha=alpha, beta=beta, k=k)
