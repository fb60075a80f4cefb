"""Floor 1: the hand-written kernels, arrays in and arrays out.

Each ``kernels/<op>.py`` is the NumPy twin of ``kernels/<op>.cu``: the same
algorithm under the same names.  Nothing here knows about autograd; the
functions in ``minivgg/functions/`` pair each forward with its backward.

Layout.  Callers see NCHW, as PyTorch does.  Inside, the kernels work on the
NHWC view ``x.transpose(0, 2, 3, 1)`` and hand back NCHW *views* of NHWC
memory.  A network that only ever passes these views between kernels never
pays for a transpose: the channels stay the fastest-moving axis, which turns
every 3x3 convolution into one large matrix product.
"""
