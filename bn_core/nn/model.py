"""LeNet-5 with Batch Normalization at chosen depths, built from one row of the variant table."""

from __future__ import annotations

import keras
from keras import layers

from bn_core.config import ACTIVATIONS, OUTPUT_SIZE
from bn_core.nn.batchnorm import BatchNorm
from bn_core.variants import VARIANTS, Variant

INPUT_SHAPE = (32, 32, 1)  # 28x28 images zero-padded by 2, as in LeCun et al. (1998)

# The four BN sites in network order: (site, kind, width). Pooling follows each conv site.
_ARCHITECTURE = (("C1", "conv", 6), ("C3", "conv", 16), ("F5", "dense", 120), ("F6", "dense", 84))


def build_model(
    variant: str | Variant,
    *,
    activation: str = "sigmoid",
    epsilon: float = 1e-8,
    window_size: int = 5,
    history_size: int = 0,
    output_size: int = OUTPUT_SIZE,
) -> keras.Model:
    """LeNet-5 returning logits, with BN between the linear op and the activation at the
    variant's sites. A linear op followed by BN has no bias: BN's beta takes its place.

    Shapes: C1 conv 6@5x5 (N,32,32,1)->(N,28,28,6), S2 avg-pool ->(N,14,14,6),
    C3 conv 16@5x5 ->(N,10,10,16), S4 avg-pool ->(N,5,5,16), flatten ->(N,400),
    F5 dense 120, F6 dense 84, output dense ``output_size`` (logits).

    Layer names follow the sites: "C1" (linear), "C1_bn", "C1_act", "S2", ..., "output",
    so probes and tests can find each site's tensors. ``history_size`` > 0 makes our BN layers
    also keep that many batches' statistics for ``bn_core.nn.replay`` (Keras' layer has none).
    Weights are initialised from Keras' global seed: call ``keras.utils.set_random_seed``
    first for a reproducible model.
    """
    spec = VARIANTS[variant] if isinstance(variant, str) else variant
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}. Received: {activation!r}")
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = inputs
    for site, kind, width in _ARCHITECTURE:
        has_bn = site in spec.bn_sites
        if kind == "conv":
            x = layers.Conv2D(width, 5, use_bias=not has_bn, name=site)(x)
        else:
            if len(x.shape) > 2:
                x = layers.Flatten(name="flatten")(x)  # (N, 5, 5, 16) -> (N, 400)
            x = layers.Dense(width, use_bias=not has_bn, name=site)(x)
        if has_bn:
            x = _bn_layer(spec.bn_impl, epsilon, window_size, history_size, f"{site}_bn")(x)
        x = layers.Activation(activation, name=f"{site}_act")(x)
        if kind == "conv":
            pool = {"C1": "S2", "C3": "S4"}[site]
            x = layers.AveragePooling2D(2, name=pool)(x)
    logits = layers.Dense(output_size, name="output")(x)
    return keras.Model(inputs, logits, name=spec.name)


def _bn_layer(
    impl: str, epsilon: float, window_size: int, history_size: int, name: str
) -> keras.layers.Layer:
    if impl == "ours":
        return BatchNorm(
            epsilon=epsilon, window_size=window_size, history_size=history_size, name=name
        )
    if impl == "keras":
        return layers.BatchNormalization(epsilon=epsilon, name=name)
    raise ValueError(f"unknown BN implementation {impl!r}; expected 'ours' or 'keras'")
