"""Every variant builds LeNet-5 with BN exactly at its documented sites and returns logits."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bn_core.nn.batchnorm import BatchNorm
from bn_core.nn.model import build_model
from bn_core.variants import SITES, VARIANTS
from tests.conftest import f32_atol

EXPECTED_SITES = {
    "lenet": (),
    "lenet_bn1": ("C1",),
    "lenet_bn2": ("C1", "C3"),
    "lenet_fc_bn1": ("C1", "C3", "F5"),
    "lenet_fc_bn2": ("C1", "C3", "F5", "F6"),
    "lenet_keras_bn": ("C1", "C3", "F5", "F6"),
}
WIDTHS = {"C1": 6, "C3": 16, "F5": 120, "F6": 84}


def test_variant_table_is_the_documented_one():
    assert set(VARIANTS) == set(EXPECTED_SITES)
    for name, sites in EXPECTED_SITES.items():
        assert VARIANTS[name].bn_sites == sites
        assert VARIANTS[name].description  # human-readable text for CLI/UI


@pytest.mark.parametrize("name", list(EXPECTED_SITES))
def test_bn_sites_shapes_and_biases(name):
    model = build_model(name)
    bn_type = keras.layers.BatchNormalization if name == "lenet_keras_bn" else BatchNorm
    for site in SITES:
        linear = model.get_layer(site)
        has_bn = site in EXPECTED_SITES[name]
        # A linear op followed by BN has no bias: beta replaces it.
        assert linear.use_bias is (not has_bn)
        names = [layer.name for layer in model.layers]
        if has_bn:
            bn = model.get_layer(f"{site}_bn")
            assert isinstance(bn, bn_type)
            assert tuple(bn.gamma.shape) == (WIDTHS[site],)  # one gamma per channel/feature
            assert tuple(bn.beta.shape) == (WIDTHS[site],)
            # BN sits between the linear op and its activation.
            assert names.index(site) + 1 == names.index(f"{site}_bn")
            assert names.index(f"{site}_bn") + 1 == names.index(f"{site}_act")
        else:
            assert f"{site}_bn" not in names
    n_bn = sum(
        isinstance(layer, (BatchNorm, keras.layers.BatchNormalization)) for layer in model.layers
    )
    assert n_bn == len(EXPECTED_SITES[name])


def test_lenet5_shapes():
    model = build_model("lenet")
    shapes = {
        name: model.get_layer(name).output.shape
        for name in ("C1", "S2", "C3", "S4", "F5", "F6", "output")
    }
    assert shapes == {
        "C1": (None, 28, 28, 6),
        "S2": (None, 14, 14, 6),
        "C3": (None, 10, 10, 16),
        "S4": (None, 5, 5, 16),
        "F5": (None, 120),
        "F6": (None, 84),
        "output": (None, 10),
    }
    assert model.input.shape == (None, 32, 32, 1)
    assert model.count_params() == 61706  # LeNet-5 with 6/16 maps, 120/84 units, 10 outputs


@pytest.mark.parametrize("name", list(EXPECTED_SITES))
def test_output_is_logits(name):
    keras.utils.set_random_seed(0)
    model = build_model(name)
    assert model.get_layer("output").activation is keras.activations.linear
    x = np.random.default_rng(0).uniform(size=(5, 32, 32, 1)).astype("float32")
    logits = model.predict(x, verbose=0)
    assert logits.shape == (5, 10)
    assert (logits < 0).any()  # probabilities would all be positive and sum to 1
    # float32 probabilities (each at most 1) would sum to 1 within a few roundings per class.
    assert not np.allclose(logits.sum(axis=1), 1.0, rtol=0, atol=f32_atol(1.0, logits.shape[1]))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_activation_option(activation):
    model = build_model("lenet_bn1", activation=activation)
    assert model.get_layer("C1_act").activation is getattr(keras.activations, activation)


def test_bn_hyperparameters_reach_the_layers():
    model = build_model("lenet_fc_bn2", epsilon=1e-3, window_size=9)
    bn = model.get_layer("F6_bn")
    assert (bn.epsilon, bn.window_size) == (1e-3, 9)
    assert model.get_layer("F6_bn").mean_window.shape == (9, 84)


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation must be one of"):
        build_model("lenet", activation="softmax")
