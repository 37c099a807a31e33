"""Layer names, the weight parser and the α schema/sampler (adjustable_style.layers)."""

from __future__ import annotations

import math

import pytest
import torch

from adjustable_style.checks import InputError
from adjustable_style.layers import (
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_STYLE_LAYERS,
    VGG19_LAYERS,
    LayerSchema,
    check_layer,
    layer_channels,
    parse_weights,
    sort_layers,
)

# ---------------------------------------------------------------------------------------------------------
# Layer names


def test_vgg19_layer_names_in_network_order() -> None:
    assert len(VGG19_LAYERS) == 16
    assert VGG19_LAYERS[:4] == ("relu1_1", "relu1_2", "relu2_1", "relu2_2")
    assert VGG19_LAYERS[-1] == "relu5_4"
    assert [layer_channels(n) for n in ("relu1_2", "relu2_1", "relu3_4", "relu4_1", "relu5_4")] == [
        64,
        128,
        256,
        512,
        512,
    ]
    assert sort_layers(["relu4_4", "relu2_2", "relu4_4", "relu1_1"]) == ("relu1_1", "relu2_2", "relu4_4")


@pytest.mark.parametrize("bad", ["relu9_9", "conv1_1", "relu2_3", "", "RELU1_1"])
def test_check_layer_rejects_unknown_names_listing_valid_ones(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown layer") as err:
        check_layer(bad)
    assert "relu1_1" in str(err.value) and "relu5_4" in str(err.value)


# ---------------------------------------------------------------------------------------------------------
# parse_weights


def test_parse_weights_good() -> None:
    assert parse_weights("relu2_2=1,relu3_4=0.5") == {"relu2_2": 1.0, "relu3_4": 0.5}
    # Spaces, a trailing comma, scientific notation and zero are all fine; order of entries is kept.
    got = parse_weights(" relu4_4 = 1e-2 , relu2_2=0 ,")
    assert got == {"relu4_4": 0.01, "relu2_2": 0.0}
    assert list(got) == ["relu4_4", "relu2_2"]
    assert all(isinstance(v, float) for v in parse_weights("relu1_1=3").values())


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("relu2_2", "malformed weight 'relu2_2'"),
        ("=1", "malformed weight '=1'"),
        ("relu2_2=", "malformed"),
        ("relu2_2=abc", "weight for relu2_2 must be a number, got 'abc'"),
        ("relu9_9=1", "unknown layer 'relu9_9'"),
        ("relu2_2=1,relu2_2=2", "relu2_2 is given twice"),
        ("relu2_2=-0.5", r"finite number >= 0, got -0.5"),
        ("relu2_2=nan", "finite number >= 0, got nan"),
        ("relu2_2=inf", "finite number >= 0, got inf"),
        ("relu2_2=-inf", "finite number >= 0, got -inf"),
        ("", "no weights"),
        (" , ,", "no weights"),
    ],
)
def test_parse_weights_bad(text: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as err:
        parse_weights(text)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------------------
# LayerSchema: keys, order, dict <-> tensor


def test_schema_defaults_are_the_papers() -> None:
    schema = LayerSchema()
    assert schema.content == DEFAULT_CONTENT_LAYERS == ("relu3_4",)
    assert schema.style == DEFAULT_STYLE_LAYERS == ("relu2_2", "relu3_4", "relu4_4")
    assert schema.keys == ("content/relu3_4", "style/relu2_2", "style/relu3_4", "style/relu4_4")
    assert schema.deepest == "relu4_4"


def test_schema_keys_follow_given_order_content_first() -> None:
    schema = LayerSchema(content=("relu4_2", "relu2_1"), style=("relu5_1", "relu1_1", "relu3_1"))
    assert schema.keys == (
        "content/relu4_2",
        "content/relu2_1",
        "style/relu5_1",
        "style/relu1_1",
        "style/relu3_1",
    )
    assert schema.n_layers == 5
    # The set of layers VGG must compute is in network order, without repeats.
    assert schema.all_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1")
    assert schema.deepest == "relu5_1"
    assert schema.content_slice == slice(0, 2) and schema.style_slice == slice(2, 5)
    assert LayerSchema.from_dict(schema.to_dict()) == schema


def test_schema_to_tensor_places_each_weight_in_its_column() -> None:
    schema = LayerSchema(content=("relu3_4",), style=("relu2_2", "relu3_4", "relu4_4"))
    row = schema.to_tensor({"relu4_4": 0.25, "relu2_2": 3.0}, content={"relu3_4": 0.5}, default=7.0)
    assert row.shape == (1, 4) and row.dtype == torch.float32
    assert row.tolist() == [[0.5, 3.0, 7.0, 0.25]]


def test_schema_to_dicts_round_trip() -> None:
    schema = LayerSchema(content=("relu4_2", "relu2_1"), style=("relu1_1", "relu5_1", "relu3_1"))
    style = {"relu1_1": 0.125, "relu5_1": 2.0, "relu3_1": 0.0}
    content = {"relu4_2": 1.5, "relu2_1": 0.75}
    row = schema.to_tensor(style, content=content, default=None)
    assert schema.to_dicts(row) == (style, content)
    # and the other way: tensor -> dicts -> tensor
    alpha = torch.tensor([[0.5, 0.25, 1.0, 0.0, 4.0]])
    s, c = schema.to_dicts(alpha)
    assert torch.equal(schema.to_tensor(s, content=c, default=None), alpha)
    with pytest.raises(ValueError, match="expected 5 weights, got 4"):
        schema.to_dicts(torch.ones(4))


def test_schema_missing_layer_with_default_none_names_it() -> None:
    schema = LayerSchema()
    with pytest.raises(ValueError, match="missing style weight for relu3_4"):
        schema.to_tensor({"relu2_2": 1.0, "relu4_4": 1.0}, content={"relu3_4": 1.0}, default=None)
    with pytest.raises(ValueError, match="missing content weight for relu3_4"):
        schema.to_tensor({"relu2_2": 1.0, "relu3_4": 1.0, "relu4_4": 1.0}, default=None)


def test_schema_to_tensor_rejects_layers_not_in_schema_and_bad_values() -> None:
    schema = LayerSchema()
    with pytest.raises(ValueError, match=r"'relu1_1' is not a style layer .*relu2_2, relu3_4, relu4_4"):
        schema.to_tensor({"relu1_1": 1.0})
    with pytest.raises(ValueError, match="'relu2_2' is not a content layer"):
        schema.to_tensor(content={"relu2_2": 1.0})
    with pytest.raises(ValueError, match="relu4_4"):
        schema.to_tensor({"relu4_4": -1.0})
    with pytest.raises(ValueError, match="relu4_4"):
        schema.to_tensor({"relu4_4": math.nan})


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"content": ("relu9_9",)}, "unknown layer 'relu9_9'"),
        ({"style": ("relu2_2", "conv3_1")}, "unknown layer 'conv3_1'"),
        ({"style": ("relu2_2", "relu2_2")}, "style layers repeat a name"),
        ({"style": ()}, "at least one style layer"),
    ],
)
def test_schema_rejects_bad_layer_lists(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        LayerSchema(**kwargs)


def test_schema_without_content_layers() -> None:
    schema = LayerSchema(content=(), style=("relu1_1",))
    assert schema.keys == ("style/relu1_1",)
    assert schema.sample(3).shape == (3, 1)


# ---------------------------------------------------------------------------------------------------------
# The α sampler


def test_sample_shape_and_range() -> None:
    schema = LayerSchema()
    alpha = schema.sample(64, generator=torch.Generator().manual_seed(0))
    assert alpha.shape == (64, 4) and alpha.dtype == torch.float32
    assert float(alpha.min()) >= 0.0 and float(alpha.max()) <= 1.0
    shifted = schema.sample(64, generator=torch.Generator().manual_seed(0), low=0.5, high=2.0)
    style = shifted[:, schema.style_slice]
    assert float(style.min()) >= 0.5 and float(style.max()) <= 2.0
    assert float(style.max()) > 1.0  # the range really is [low, high], not [0, 1]


def test_sample_is_independent_per_sample_and_per_layer() -> None:
    schema = LayerSchema(content=("relu3_4",), style=("relu1_1", "relu2_2", "relu3_4", "relu4_4"))
    alpha = schema.sample(4000, generator=torch.Generator().manual_seed(1))
    style = alpha[:, schema.style_slice]  # (4000, 4)
    # Every row is its own draw: no two samples share a weight vector, and no layer copies another.
    assert torch.unique(style, dim=0).shape[0] == 4000
    assert not torch.equal(style[:, 0], style[:, 1])
    # U(0, 1) per entry: mean 1/2, variance 1/12, and no correlation between layers.
    assert torch.allclose(style.mean(0), torch.full((4,), 0.5), atol=0.03)
    assert torch.allclose(style.var(0), torch.full((4,), 1 / 12), atol=0.01)
    corr = torch.corrcoef(style.T)
    off_diagonal = corr[~torch.eye(4, dtype=torch.bool)]
    assert float(off_diagonal.abs().max()) < 0.06


def test_stratified_sample_puts_one_draw_in_each_stratum() -> None:
    """A Latin hypercube: with n draws, every layer has exactly one value in each n-th of [low, high]; over many seeds
    each entry is still U(low, high), and layers stay uncorrelated."""
    schema = LayerSchema()
    for n in (1, 6, 13):
        alpha = schema.sample(n, torch.Generator().manual_seed(n), low=0.5, high=2.0, stratified=True)
        style = alpha[:, schema.style_slice]
        strata = ((style - 0.5) / 1.5 * n).floor().long()
        assert torch.equal(strata.sort(0).values, torch.arange(n)[:, None].expand(n, 3)), strata
        assert torch.equal(alpha[:, 0], torch.ones(n))
    draws = torch.cat([schema.sample(6, torch.Generator().manual_seed(k), stratified=True) for k in range(2000)])
    style = draws[:, schema.style_slice]
    assert torch.allclose(style.mean(0), torch.full((3,), 0.5), atol=0.02)
    assert torch.allclose(style.var(0), torch.full((3,), 1 / 12), atol=0.006)
    corr = torch.corrcoef(style.T)
    assert float(corr[~torch.eye(3, dtype=torch.bool)].abs().max()) < 0.05
    # Six draws cover more of each slider's range than independent ones (expected range 5/7 of it).
    iid = torch.cat([schema.sample(6, torch.Generator().manual_seed(k)) for k in range(2000)])
    covered = {}
    for name, a in (("iid", iid), ("stratified", draws)):
        sheets = a[:, schema.style_slice].reshape(2000, 6, 3)
        covered[name] = float((sheets.amax(1) - sheets.amin(1)).mean())
    assert abs(covered["iid"] - 5 / 7) < 0.02 and covered["stratified"] > covered["iid"] + 0.05, covered


def test_sample_fixes_single_content_weight_only() -> None:
    one = LayerSchema(content=("relu3_4",), style=("relu2_2", "relu4_4"))
    alpha = one.sample(32, generator=torch.Generator().manual_seed(2))
    assert torch.equal(alpha[:, 0], torch.ones(32))
    assert alpha[:, 1:].std(0).min() > 0.1  # style weights still vary
    free = one.sample(32, generator=torch.Generator().manual_seed(2), fix_single_content=False)
    assert free[:, 0].std() > 0.1

    two = LayerSchema(content=("relu3_4", "relu4_2"), style=("relu2_2",))
    alpha2 = two.sample(32, generator=torch.Generator().manual_seed(2))
    assert alpha2[:, 0].std() > 0.1 and alpha2[:, 1].std() > 0.1
    assert not torch.equal(alpha2[:, 0], torch.ones(32))


def test_sample_is_reproducible_with_a_seeded_generator() -> None:
    schema = LayerSchema()
    a = schema.sample(8, generator=torch.Generator().manual_seed(123))
    b = schema.sample(8, generator=torch.Generator().manual_seed(123))
    c = schema.sample(8, generator=torch.Generator().manual_seed(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # Without a generator it draws from the global RNG, so torch.manual_seed makes it reproducible too.
    torch.manual_seed(5)
    d = schema.sample(8)
    torch.manual_seed(5)
    assert torch.equal(d, schema.sample(8))


# ---------------------------------------------------------------------------------------------------------
# check_alphas: the one check of a weight batch


def test_check_alphas_checks_every_row_at_once_and_names_the_layer() -> None:
    schema = LayerSchema()
    good = torch.tensor([[1.0, 0.0, 0.5, 1.0], [1.0, 1.0, 1.0, 0.25]], dtype=torch.float64)
    got = schema.check_alphas(good, 0.0, 1.0, fixed_content=True)
    assert got.dtype == torch.float32 and torch.equal(got, good.float())
    cases = [
        (
            torch.tensor([[1.0, 0.5, 0.5, 0.5], [1.0, 0.5, math.nan, 0.5]]),
            r"weight for relu3_4 must be a number .* nan",
        ),
        (torch.tensor([[1.0, 0.5, 0.5, 1.5]]), r"^weight for relu4_4 must be in \[0, 1\] \(the range .*\), got 1.5$"),
        (torch.tensor([[1.0, -0.5, 0.5, 1.0]]), r"weight for relu2_2 must be in \[0, 1\]"),
        (torch.tensor([[1.0, 0.5, 0.5, math.inf]]), r"weight for relu4_4 .* got inf"),
        (torch.tensor([[0.5, 0.5, 0.5, 1.0]]), r"content weight for relu3_4 is fixed at 1"),
        (torch.ones(2, 3), r"alphas must have shape \(N, 4\) in the order content/relu3_4, style/relu2_2"),
        (torch.ones(0, 4), r"alphas must have shape \(N, 4\)"),
        ([[1.0, 1.0, 1.0, 1.0]], r"alphas must have shape \(N, 4\) .* got list"),
    ]
    for alphas, pattern in cases:
        with pytest.raises(InputError, match=pattern):
            schema.check_alphas(alphas, 0.0, 1.0, fixed_content=True)
    # content weights other than 1 are fine when the content weight is not fixed; the range is the caller's
    assert schema.check_alphas(torch.tensor([[0.5, 2.0, 0.0, 0.0]]), 0.0, 2.0).shape == (1, 4)


def test_to_tensor_without_check_only_converts() -> None:
    schema = LayerSchema()
    assert schema.to_tensor({"relu2_2": -1}, check=False).tolist() == [[1.0, -1.0, 1.0, 1.0]]
    with pytest.raises(InputError, match="weight for relu2_2 must be a number, got 'x'"):
        schema.to_tensor({"relu2_2": "x"}, check=False)
