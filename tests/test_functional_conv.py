"""F.conv2d: forward against a loop-by-loop reference, gradients against central differences,
float32 against float64, and the same answer whatever memory layout the input has."""
import itertools

import numpy as np
import pytest
from hypothesis import given

import minivgg.functional as F
from functional_helpers import assert_float32_close, float32_pair, forward_backward
from minivgg import Tensor, gradcheck, kernels
from strategies import conv_cases, in_layout, memory_layouts


def conv2d_reference(x, w, b, stride, padding):
    """y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * x[n, c, s*i + u - p, s*j + v - p],
    terms outside the input being zero: one output element at a time, straight from the definition."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    xl, wl = x.tolist(), w.tolist()
    y = np.zeros((n, o, ho, wo))
    for ni, oi, i, j in itertools.product(range(n), range(o), range(ho), range(wo)):
        total = 0.0 if b is None else float(b[oi])
        for ci, u, v in itertools.product(range(c), range(kh), range(kw)):
            row, col = stride * i + u - padding, stride * j + v - padding
            if 0 <= row < h and 0 <= col < wd:
                total += wl[oi][ci][u][v] * xl[ni][ci][row][col]
        y[ni, oi, i, j] = total
    return y


def conv(case):
    return lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, stride=case.stride, padding=case.padding)


def inputs(case):
    return [case.x, case.w] + ([] if case.b is None else [case.b])


@given(conv_cases())
def test_forward_matches_reference(case):
    y = F.conv2d(Tensor(case.x), Tensor(case.w), None if case.b is None else Tensor(case.b),
                 stride=case.stride, padding=case.padding)
    expected = conv2d_reference(case.x, case.w, case.b, case.stride, case.padding)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)


@given(conv_cases())
def test_gradients_match_central_differences(case):
    assert gradcheck(conv(case), *[Tensor(a, requires_grad=True) for a in inputs(case)])


@given(conv_cases())
def test_float32_forward_agrees_with_float64(case):
    low, high = float32_pair(*inputs(case))
    y32 = conv(case)(*map(Tensor, low)).data
    y64 = conv(case)(*map(Tensor, high)).data
    # each output is a sum of C*kh*kw products: its rounding is relative to the sum of their sizes
    magnitudes = conv(case)(*(Tensor(np.abs(a)) for a in high)).data
    assert_float32_close(y32, y64, scale=magnitudes.max())


@given(conv_cases(), memory_layouts)
def test_every_memory_layout_gives_the_same_result(case, layout):
    reference_y, reference_grads = forward_backward(conv(case), inputs(case))
    arrays = [in_layout(case.x, layout)] + inputs(case)[1:]
    y, grads = forward_backward(conv(case), arrays)
    np.testing.assert_allclose(y, reference_y, rtol=1e-12, atol=1e-12)
    for grad, reference in zip(grads, reference_grads):
        np.testing.assert_allclose(grad, reference, rtol=1e-12, atol=1e-12)


@given(conv_cases())
def test_output_and_input_gradient_are_nchw_views_of_nhwc_memory(case):
    y, (dx, *_) = forward_backward(conv(case), inputs(case))
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous
    assert dx.transpose(0, 2, 3, 1).flags.c_contiguous


def test_an_input_that_needs_no_gradient_skips_dx_but_keeps_dw_and_db():
    import numpy as np
    from minivgg import Tensor
    from minivgg import functional as F
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    grads = []
    for x_needs_grad in (True, False):
        xt, wt, bt = Tensor(x, requires_grad=x_needs_grad), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
        F.conv2d(xt, wt, bt, padding=1).sum().backward()
        grads.append((xt.grad, wt.grad, bt.grad))
    assert grads[0][0] is not None and grads[1][0] is None
    np.testing.assert_array_equal(grads[0][1], grads[1][1])
    np.testing.assert_array_equal(grads[0][2], grads[1][2])


@pytest.mark.parametrize("algorithm", ["im2col", "winograd", "winograd4"])
@pytest.mark.parametrize("images_per_chunk", [1, 2])
def test_columns_made_again_in_the_backward_give_the_same_gradients(monkeypatch, algorithm, images_per_chunk):
    """Large im2col matrices are not kept for the backward, which makes them again a chunk of images at a time
    (a Winograd backward goes in chunks of the same size the same way; in one piece, it uses the input
    transform that its forward kept).

    The input gradient of an image does not depend on the others: it is the same
    bit for bit.  dW and db become sums over the chunks, so they agree to float64
    rounding (relative 1e-12: a few sums in another order).
    """
    import minivgg.functions.conv as conv_module
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((3, 5, 9, 9)), rng.standard_normal((4, 5, 3, 3))
    b, dy = rng.standard_normal(4), rng.standard_normal((3, 4, 9, 9))
    per_image = 9 * 9 * 3 * 3 * 5 * 8  # one image's columns, in bytes
    if algorithm != "im2col":           # its backward holds no columns but its transformed input and gradient
        per_image = conv_module.winograd_bytes_per_image(x.shape, w.shape, x.itemsize, algorithm)
    grads = []
    for limit in (conv_module.KEEP_COLUMNS_BYTES, images_per_chunk * per_image):
        monkeypatch.setattr(conv_module, "KEEP_COLUMNS_BYTES", limit)
        xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
        with conv_module.use_algorithm(algorithm):
            F.conv2d(xt, wt, bt, padding=1).backward(dy)
        grads.append((xt.grad, wt.grad, bt.grad))
    (dx, dw, db), (dx_chunked, dw_chunked, db_chunked) = grads
    assert np.array_equal(dx, dx_chunked)
    np.testing.assert_allclose(dw_chunked, dw, rtol=1e-12)
    np.testing.assert_allclose(db_chunked, db, rtol=1e-12)


@pytest.mark.parametrize("algorithm", ["winograd", "winograd4"])
def test_a_winograd_forward_keeps_its_input_transform_for_the_weight_gradient_where_it_fits(monkeypatch, algorithm):
    """In one piece, the backward takes V from the forward: x is transformed once a step.  In chunks (one
    image each here), the backward makes V again, once per chunk."""
    import minivgg.functions.conv as conv_module
    rng = np.random.default_rng(4)
    x, w, dy = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal((2, 4, 8, 8))
    transform = f"{algorithm}_input_transform"
    reference = kernels.NUMPY.functions[transform]
    calls = []

    def counted(a):
        calls.append(a.shape)
        return reference(a)
    per_image = conv_module.winograd_bytes_per_image(x.shape, w.shape, x.itemsize, algorithm)
    for limit, transforms_of_x in ((conv_module.KEEP_COLUMNS_BYTES, 1), (per_image, 1 + 2)):
        monkeypatch.setattr(conv_module, "KEEP_COLUMNS_BYTES", limit)
        calls.clear()
        with conv_module.use_algorithm(algorithm), kernels.override(**{transform: counted}):
            F.conv2d(Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), padding=1).backward(dy)
        # the input gradient transforms dy too (4 channels); x has 3
        assert sum(shape[1] == 3 for shape in calls) == transforms_of_x


@given(conv_cases())
def test_a_small_weight_gradient_made_as_its_transpose_matches_the_direct_product(case):
    """``weight_grad`` makes dW of at most SMALL_WEIGHT_GRAD entries as (cols.T @ dY).T: the same sums."""
    from minivgg.functions import conv as conv_module
    grads = []
    for small in (conv_module.SMALL_WEIGHT_GRAD, -1):   # every dW transposed, then none
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(conv_module, "SMALL_WEIGHT_GRAD", small)
            tensors = [Tensor(a, requires_grad=True) for a in inputs(case)]
            conv(case)(*tensors).sum().backward()
            grads.append(tensors[1].grad)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-12)
    assert grads[0].transpose(0, 2, 3, 1).flags.c_contiguous, "in the weight's (O, kh, kw, C) memory"
