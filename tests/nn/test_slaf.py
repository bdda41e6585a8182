"""The SLAF layer: init, both paths, gradients, normalisation, curve and penalty."""

import pytest
import torch
from torch.func import functional_call

from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases import build_basis
from slaf_cli.nn.slaf import SLAF

STREAMING_BASES = ["monomial", "chebyshev", "legendre", "fourier", "rbf"]
SHAPES = {2: (6, 4), 3: (3, 4, 5), 4: (2, 4, 3, 3)}


def make_slaf(name="monomial", degree=3, dtype=torch.float64, seed=0, **kwargs):
    """Return a SLAF with random coefficients, so every term matters."""
    torch.manual_seed(seed)
    layer = SLAF(4, build_basis(name, degree=degree), dtype=dtype, **kwargs)
    with torch.no_grad():
        layer.coefficients.normal_(0.0, 0.5)
        layer.bias.normal_(0.0, 0.5)
    return layer


def as_function(layer):
    """Return f(x, coefficients, bias) that calls the layer with those parameters."""

    def function(x, coefficients, bias):
        parameters = {"coefficients": coefficients, "bias": bias}
        return functional_call(layer, parameters, (x,))

    return function


@pytest.mark.parametrize("rank", [2, 3, 4])
@pytest.mark.parametrize("fast", [True, False])
def test_monomial_identity_init_exact(rank, fast):
    layer = SLAF(4, build_basis("monomial", degree=5), fast=fast)
    x = torch.randn(SHAPES[rank]) * 2
    assert layer.bias.eq(0).all()
    assert layer.coefficients[:, 0].eq(1).all()
    assert layer.coefficients[:, 1:].eq(0).all()
    assert torch.equal(layer(x), x)
    assert layer.init_fit_error["max"] == 0.0


@pytest.mark.parametrize("name", ["chebyshev", "legendre", "bspline"])
def test_bounded_identity_init_inside_range(name):
    basis = build_basis(name, degree=4, input_range=(-3.0, 3.0))
    layer = SLAF(4, basis, dtype=torch.float64)
    x = torch.linspace(-3.0, 3.0, 40, dtype=torch.float64).reshape(10, 4)
    assert torch.allclose(layer(x), x, atol=1e-12)
    assert layer.init_fit_error["max"] < 1e-9


def test_fitted_init_records_error():
    layer = SLAF(8, build_basis("chebyshev", degree=8), init="gelu")
    grid = torch.linspace(-3.0, 3.0, 50)
    curve = layer.curve(grid, [0])[:, 0]
    assert layer.init_fit_error["max"] < 0.01
    assert layer.init_fit_error["rms"] <= layer.init_fit_error["max"]
    assert torch.allclose(curve, torch.nn.functional.gelu(grid), atol=0.01)


@pytest.mark.parametrize(
    ("sharing", "rows"), [("channel", 4), ("neuron", 4), ("layer", 1)]
)
def test_parameter_shapes_per_sharing(sharing, rows):
    layer = SLAF(4, build_basis("fourier", degree=3), sharing=sharing)
    assert layer.coefficients.shape == (rows, 6)
    assert layer.bias.shape == (rows,)


def test_normalized_buffer_shapes():
    layer = SLAF(4, build_basis("legendre", degree=3), sharing="layer", normalize=True)
    assert layer.running_mean.shape == (4, 3)
    assert layer.running_var.shape == (4, 3)
    assert layer.num_batches_tracked.item() == 0


@pytest.mark.parametrize("rank", [2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_shape_and_dtype(rank, dtype):
    layer = make_slaf("chebyshev", dtype=dtype, normalize=True)
    y = layer(torch.randn(SHAPES[rank], dtype=dtype))
    assert y.shape == SHAPES[rank]
    assert y.dtype == dtype


@pytest.mark.parametrize("name", STREAMING_BASES)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("fast", [True, False])
def test_gradcheck_rank4_per_channel(name, normalize, fast):
    layer = make_slaf(name, normalize=normalize, fast=fast)
    x = torch.randn(SHAPES[4], dtype=torch.float64, requires_grad=True)
    inputs = (x, layer.coefficients.detach().clone(), layer.bias.detach().clone())
    for tensor in inputs:
        tensor.requires_grad_(True)
    assert torch.autograd.gradcheck(as_function(layer), inputs)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("rank", [2, 3])
def test_gradcheck_shared_layer_coefficients(normalize, rank):
    layer = make_slaf("monomial", degree=4, sharing="layer", normalize=normalize)
    x = torch.randn(SHAPES[rank], dtype=torch.float64, requires_grad=True)
    inputs = (x, layer.coefficients.detach().clone(), layer.bias.detach().clone())
    for tensor in inputs:
        tensor.requires_grad_(True)
    assert torch.autograd.gradcheck(as_function(layer), inputs)


def test_gradcheck_eval_running_stats():
    layer = make_slaf("chebyshev", normalize=True)
    layer(torch.randn(SHAPES[4], dtype=torch.float64))
    layer.eval()
    x = torch.randn(SHAPES[4], dtype=torch.float64, requires_grad=True)
    inputs = (x, layer.coefficients.detach().clone(), layer.bias.detach().clone())
    for tensor in inputs:
        tensor.requires_grad_(True)
    assert torch.autograd.gradcheck(as_function(layer), inputs)


@pytest.mark.parametrize("name", STREAMING_BASES)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("sharing", ["channel", "layer"])
def test_fast_matches_reference_float32(name, normalize, sharing):
    fast = make_slaf(name, 4, torch.float32, normalize=normalize, sharing=sharing)
    reference = make_slaf(name, 4, torch.float32, normalize=normalize, sharing=sharing)
    reference.fast = False
    x = torch.randn(8, 4, 5, 5) * 1.5
    upstream = torch.randn(8, 4, 5, 5)
    results = []
    for layer in (fast, reference):
        inputs = x.clone().requires_grad_(True)
        output = layer(inputs)
        output.backward(upstream)
        results.append((output, inputs.grad, layer.coefficients.grad, layer.bias.grad))

    (out_f, dx_f, dc_f, db_f), (out_r, dx_r, dc_r, db_r) = results
    assert torch.allclose(out_f, out_r, rtol=1e-4, atol=1e-4)
    assert torch.allclose(dx_f, dx_r, rtol=1e-3, atol=1e-3)
    assert torch.allclose(dc_f, dc_r, rtol=1e-3, atol=1e-3)
    assert torch.allclose(db_f, db_r, rtol=1e-4, atol=1e-3)
    if normalize:
        assert torch.allclose(fast.running_mean, reference.running_mean, rtol=1e-4)
        assert torch.allclose(fast.running_var, reference.running_var, rtol=1e-3)


def test_bspline_fast_uses_reference_path():
    fast = make_slaf("bspline")
    reference = make_slaf("bspline", fast=False)
    x = torch.randn(SHAPES[4], dtype=torch.float64)
    assert torch.equal(fast(x), reference(x))


def _standardized_output(layer, x, mean, variance):
    """Compute the normalised SLAF by hand from stacked terms in float64."""
    terms = layer.basis(x.double())  # (N, C, H, W, K)
    shape = (1, layer.num_features, 1, 1, -1)
    standardized = (terms - mean.double().reshape(shape)) / torch.sqrt(
        variance.double().reshape(shape) + layer.eps
    )
    weights = layer.coefficients.double().reshape(shape)
    return (standardized * weights).sum(-1) + layer.bias.double().reshape(1, -1, 1, 1)


@pytest.mark.parametrize("fast", [True, False])
def test_eval_uses_running_statistics(fast):
    layer = make_slaf("monomial", degree=3, dtype=torch.float32, normalize=True)
    layer.fast = fast
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)
    for _ in range(5):
        optimizer.zero_grad()
        layer(torch.randn(16, 4, 3, 3) + 0.5).square().mean().backward()
        optimizer.step()
    layer.eval()
    x = torch.randn(16, 4, 3, 3)
    dims = [0, 2, 3]
    batch_var, batch_mean = torch.var_mean(
        layer.basis(x.double()), dim=dims, correction=0
    )

    with torch.no_grad():
        output = layer(x).double()
        expected = _standardized_output(layer, x, layer.running_mean, layer.running_var)
        batch = _standardized_output(layer, x, batch_mean, batch_var)
    assert layer.num_batches_tracked.item() == 5
    assert torch.allclose(output, expected, atol=1e-4)
    assert not torch.allclose(output, batch, atol=1e-2)


@pytest.mark.parametrize("fast", [True, False])
def test_running_stats_follow_momentum(fast):
    layer = SLAF(4, build_basis("chebyshev", degree=2), normalize=True, fast=fast)
    layer.momentum = 0.25
    x = torch.randn(32, 4, dtype=torch.float64).float()
    layer(x)
    terms = layer.basis(x.double())
    variance, mean = torch.var_mean(terms, dim=0, correction=1)
    assert torch.allclose(layer.running_mean.double(), 0.25 * mean, atol=1e-5)
    assert torch.allclose(layer.running_var.double(), 0.75 + 0.25 * variance, atol=1e-4)


def test_eval_does_not_update_buffers():
    layer = make_slaf("fourier", normalize=True).eval()
    layer(torch.randn(SHAPES[2], dtype=torch.float64))
    assert layer.num_batches_tracked.item() == 0
    assert torch.isinf(layer.input_min)


def test_input_range_tracked_in_training():
    layer = make_slaf("monomial")
    layer.range_interval = 1
    layer(torch.tensor([[-2.0, 0.0, 1.0, 3.0]], dtype=torch.float64))
    layer(torch.tensor([[-1.0, 0.0, 1.0, 5.0]], dtype=torch.float64))
    assert layer.input_min.item() == -2.0
    assert layer.input_max.item() == 5.0


def test_input_range_sampled_every_interval():
    layer = make_slaf("monomial")
    layer.range_interval = 3
    for step in range(7):
        value = float(step + 1)
        layer(torch.tensor([[-value, 0.0, 0.0, value]], dtype=torch.float64))
    # Batches 0, 3 and 6 are sampled, with ranges of +-1, +-4 and +-7.
    assert layer.input_min.item() == -7.0
    assert layer.input_max.item() == 7.0
    layer(torch.tensor([[-100.0, 0.0, 0.0, 100.0]], dtype=torch.float64))
    assert layer.input_max.item() == 7.0


def test_input_range_first_batch_and_reset():
    layer = make_slaf("monomial")
    layer(torch.tensor([[-2.0, 0.0, 1.0, 3.0]], dtype=torch.float64))
    assert layer.input_min.item() == -2.0
    assert layer.input_max.item() == 3.0
    layer.reset_parameters()
    layer(torch.tensor([[-1.0, 0.0, 1.0, 1.5]], dtype=torch.float64))
    assert layer.input_max.item() == 1.5


def test_penalty_l1_and_l2():
    layer = SLAF(2, build_basis("monomial", degree=2))
    with torch.no_grad():
        layer.coefficients.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
        layer.bias.fill_(10.0)
    assert layer.penalty("l1").item() == pytest.approx(3.5)
    assert layer.penalty("l2").item() == pytest.approx(5.25)
    assert layer.penalty().requires_grad


def test_penalty_rejects_unknown_kind():
    layer = SLAF(2, build_basis("monomial", degree=2))
    with pytest.raises(ConfigError, match=r"'l3' is invalid.*l1, l2"):
        layer.penalty("l3")


def test_curve_matches_per_feature_polynomial():
    layer = make_slaf("monomial", degree=2)
    grid = torch.linspace(-2.0, 2.0, 11, dtype=torch.float64)
    curve = layer.curve(grid, [1, 3])
    c, b = layer.coefficients.detach(), layer.bias.detach()
    expected_1 = b[1] + c[1, 0] * grid + c[1, 1] * grid**2
    expected_3 = b[3] + c[3, 0] * grid + c[3, 1] * grid**2
    assert curve.shape == (11, 2)
    assert torch.allclose(curve[:, 0], expected_1)
    assert torch.allclose(curve[:, 1], expected_3)


def test_curve_keeps_mode_and_buffers():
    layer = make_slaf("chebyshev", normalize=True)
    layer(torch.randn(SHAPES[2], dtype=torch.float64))
    before = {name: value.clone() for name, value in layer.named_buffers()}
    curve = layer.curve(torch.linspace(-1, 1, 5))
    assert curve.shape == (5, 4)
    assert layer.training
    for name, value in layer.named_buffers():
        assert torch.equal(value, before[name]), name


def test_curve_rejects_bad_feature():
    with pytest.raises(ValueError, match=r"features \[7\]"):
        make_slaf().curve(torch.zeros(3), [0, 7])


def test_forward_rejects_wrong_features():
    with pytest.raises(ValueError, match=r"expects input \(N, 4"):
        make_slaf()(torch.zeros(2, 5, dtype=torch.float64))


def test_invalid_sharing_rejected():
    with pytest.raises(ConfigError, match=r"sharing 'row' is invalid.*layer"):
        SLAF(4, build_basis("monomial", degree=2), sharing="row")


def test_invalid_init_target_rejected():
    with pytest.raises(ConfigError, match=r"'swish' is not known"):
        SLAF(4, build_basis("monomial", degree=2), init="swish")


def test_extra_repr_names_configuration():
    text = repr(SLAF(4, build_basis("legendre", degree=3), normalize=True))
    assert "basis=legendre" in text
    assert "degree=3" in text
    assert "sharing=channel" in text
    assert "normalize=True" in text


def test_state_dict_round_trip():
    source = make_slaf("rbf", normalize=True)
    source(torch.randn(SHAPES[3], dtype=torch.float64))
    target = SLAF(4, build_basis("rbf", degree=3), normalize=True, dtype=torch.float64)
    target.load_state_dict(source.state_dict())
    x = torch.randn(SHAPES[3], dtype=torch.float64)
    assert torch.equal(source.eval()(x), target.eval()(x))
