"""F.relu and F.dropout: forwards against references written from their definitions, gradients
against central differences, and dropout's mask recomputed here from the hash with plain integers."""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minivgg.functional as F
from functional_helpers import forward_backward
from minivgg import Tensor, gradcheck
from minivgg.kernels import activation as kernels_for_relu
from minivgg.kernels import dropout as kernels
from strategies import away_from_zero, dropout_cases, in_layout, memory_layouts, nchw_shapes, values

# --- ReLU ---------------------------------------------------------------------------------------


def relu_reference(x):
    y = np.empty_like(x)
    for index in itertools.product(*map(range, x.shape)):
        y[index] = x[index] if x[index] > 0 else 0.0
    return y


def test_relu_backward_keeps_the_memory_order_of_the_output_it_masks_with():
    """Inside a network y is an NCHW view of NHWC memory: dx follows it, whatever order dy comes in."""
    rng = np.random.default_rng(0)
    y = np.maximum(rng.standard_normal((2, 5, 4, 3)), 0).transpose(0, 3, 1, 2)     # NHWC memory
    for dy in (np.ascontiguousarray(rng.standard_normal(y.shape)), rng.standard_normal((2, 5, 4, 3)).transpose(0, 3, 1, 2)):
        dx = kernels_for_relu.relu_backward(dy, y)
        assert dx.strides == y.strides
        np.testing.assert_array_equal(dx, np.where(y > 0, dy, 0.0))


@given(nchw_shapes().flatmap(values))
def test_relu_forward_matches_reference(x):
    np.testing.assert_array_equal(F.relu(Tensor(x)).data, relu_reference(x))


@given(nchw_shapes().flatmap(away_from_zero))
def test_relu_gradients_match_central_differences(x):
    assert gradcheck(F.relu, Tensor(x, requires_grad=True))


@given(nchw_shapes().flatmap(values), memory_layouts)
def test_relu_every_memory_layout_gives_the_same_result(x, layout):
    reference_y, (reference_dx,) = forward_backward(F.relu, [x])
    y, (dx,) = forward_backward(F.relu, [in_layout(x, layout)])
    np.testing.assert_array_equal(y, reference_y)
    np.testing.assert_array_equal(dx, reference_dx)


def test_relu_keeps_an_nchw_view_of_nhwc_memory_and_float32():
    x = in_layout(np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32), "nhwc_view")
    y = F.relu(Tensor(x)).data
    assert y.dtype == np.float32
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous


# --- dropout: the hash, recomputed with Python integers ---------------------------------------------

MASK32 = 2 ** 32 - 1


def mix32_reference(h):
    """lowbias32, on a Python int, every product reduced modulo 2**32."""
    h ^= h >> 16
    h = (h * 0x7FEB352D) & MASK32
    h ^= h >> 15
    h = (h * 0x846CA68B) & MASK32
    return h ^ (h >> 16)


def coin_reference(seed, step, layer, sample, element):
    h = mix32_reference(seed)
    for key in (step, layer, sample, element):
        h = mix32_reference(h ^ key)
    return h


def dropout_mask_reference(shape, p, seed, step, layer, sample_offset):
    """keep[n, e] <=> (hash(seed, step, layer, sample_offset + n, e) >> 8) >= round(p * 2**24),
    with e the element's index inside its sample in NCHW order."""
    threshold = round(p * 2 ** 24)
    per_sample = int(np.prod(shape[1:]))
    keep = np.zeros((shape[0], per_sample), dtype=bool)
    for n, e in itertools.product(range(shape[0]), range(per_sample)):
        keep[n, e] = (coin_reference(seed, step, layer, sample_offset + n, e) >> 8) >= threshold
    return keep.reshape(shape)


def dropout_of(case, **changes):
    options = dict(p=case.p, seed=case.seed, step=case.step, layer=case.layer, sample_offset=case.sample_offset)
    options.update(changes)
    return lambda x: F.dropout(x, **options)


@given(dropout_cases())
def test_dropout_mask_matches_the_hash_reference(case):
    expected = dropout_mask_reference(case.x.shape, case.p, case.seed, case.step, case.layer, case.sample_offset)
    mask = kernels.dropout_mask(case.x.shape, case.p, case.seed, case.step, case.layer, case.sample_offset)
    np.testing.assert_array_equal(mask, expected)


@given(dropout_cases(), st.integers(0, 3))
def test_dropout_threshold_rounds_p_times_2_to_the_24(case, element):
    """An element whose (hash >> 8) is t is kept for round(p * 2**24) <= t: kept at p = (t + 0.4) / 2**24,
    dropped at p = (t + 0.6) / 2**24 (a truncating threshold would keep it)."""
    size = int(np.prod(case.x.shape[1:]))
    element %= size
    t = coin_reference(case.seed, case.step, case.layer, case.sample_offset, element) >> 8
    for fraction, kept in ((0.4, True), (0.6, False)):
        p = (t + fraction) / 2 ** 24
        if p >= 1.0:
            continue
        mask = kernels.dropout_mask(case.x.shape, p, case.seed, case.step, case.layer, case.sample_offset)
        assert mask.reshape(mask.shape[0], -1)[0, element] == kept, (t, p)


@given(dropout_cases())
def test_dropout_forward_zeroes_dropped_and_scales_kept(case):
    expected_mask = dropout_mask_reference(case.x.shape, case.p, case.seed, case.step, case.layer,
                                           case.sample_offset)
    scale = 1.0 / (1.0 - case.p)
    y = dropout_of(case)(Tensor(case.x)).data
    np.testing.assert_allclose(y, np.where(expected_mask, case.x * scale, 0.0), rtol=1e-15, atol=0)
    # with an input of ones, the output *is* the scaled mask (zeros in x cannot hide a wrong coin)
    ones = dropout_of(case)(Tensor(np.ones_like(case.x))).data
    np.testing.assert_allclose(ones, expected_mask * scale, rtol=1e-15, atol=0)


def dropout_and_input_grad(case, x, sample_offset, dy):
    t = Tensor(x, requires_grad=True)
    y = dropout_of(case, sample_offset=sample_offset)(t)
    y.backward(dy)
    return y.data, t.grad


@given(dropout_cases(), st.data())
def test_dropout_does_not_depend_on_how_the_batch_is_split(case, data):
    """Samples [0:k] at sample_offset o and [k:] at o + k draw the same coins as the whole batch at o,
    in the forward and in the backward."""
    k = data.draw(st.integers(0, case.x.shape[0]), label="k")
    o = case.sample_offset
    dy = np.random.default_rng(0).standard_normal(case.x.shape)
    whole_y, whole_dx = dropout_and_input_grad(case, case.x, o, dy)
    first_y, first_dx = dropout_and_input_grad(case, case.x[:k], o, dy[:k])
    second_y, second_dx = dropout_and_input_grad(case, case.x[k:], o + k, dy[k:])
    np.testing.assert_array_equal(np.concatenate([first_y, second_y]), whole_y)
    np.testing.assert_array_equal(np.concatenate([first_dx, second_dx]), whole_dx)
    mask = dropout_mask_reference(case.x.shape, case.p, case.seed, case.step, case.layer, o)
    np.testing.assert_allclose(whole_dx, np.where(mask, dy / (1 - case.p), 0.0), rtol=1e-15, atol=0)


@given(dropout_cases())
def test_dropout_gradients_match_central_differences(case):
    assert gradcheck(dropout_of(case), Tensor(case.x, requires_grad=True))


@given(dropout_cases(), memory_layouts)
def test_dropout_every_memory_layout_gives_the_same_result(case, layout):
    if case.x.ndim != 4:
        return
    reference_y, (reference_dx,) = forward_backward(dropout_of(case), [case.x])
    y, (dx,) = forward_backward(dropout_of(case), [in_layout(case.x, layout)])
    np.testing.assert_array_equal(y, reference_y)
    np.testing.assert_array_equal(dx, reference_dx)


@given(dropout_cases())
def test_dropout_is_the_identity_when_not_training_or_p_is_zero(case):
    x = Tensor(case.x)
    assert F.dropout(x, p=case.p, training=False, seed=case.seed) is x
    assert dropout_of(case, p=0.0)(x) is x


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_about_one_minus_p(p):
    x = np.ones((64, 4096), dtype=np.float32)
    y = F.dropout(Tensor(x), p=p, seed=3, step=1, layer=2).data
    assert y.dtype == np.float32
    kept = np.count_nonzero(y) / y.size
    sigma = np.sqrt(p * (1 - p) / y.size)
    assert abs(kept - (1 - p)) < 5 * sigma
    np.testing.assert_allclose(y[y != 0], np.float32(1 / (1 - p)))


def test_dropout_masks_change_with_seed_step_layer_and_sample():
    shape, base = (4, 256), dict(p=0.5, seed=1, step=2, layer=3, sample_offset=0)
    reference = kernels.dropout_mask(shape, **base)
    for key in ("seed", "step", "layer", "sample_offset"):
        other = kernels.dropout_mask(shape, **{**base, key: base[key] + 1})
        assert 0.3 < np.mean(other != reference) < 0.7, key
    # different samples of one batch get different masks
    assert 0.3 < np.mean(reference[0] != reference[1]) < 0.7


def test_dropout_of_a_0d_tensor_is_one_sample_of_one_element():
    x = Tensor(np.float32(3.0), requires_grad=True)
    outputs = [F.dropout(x, p=0.5, seed=seed) for seed in range(16)]
    assert all(y.shape == () and y.dtype == np.float32 for y in outputs)
    values = {y.item() for y in outputs}
    assert values == {0.0, 6.0}  # dropped, or kept and scaled by 1 / (1 - p)
    kept = next(y for y in outputs if y.item() == 6.0)
    kept.backward()
    assert x.grad == np.float32(2.0)
    # the same coin as element 0 of sample 0 of a batch
    mask = kernels.dropout_mask((1,), 0.5, seed=1, step=0, layer=0)
    assert F.dropout(Tensor(np.float32(1.0)), p=0.5, seed=1).item() == (2.0 if mask[0] else 0.0)
