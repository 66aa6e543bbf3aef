"""The LeNet-5 variants of the study, described as data (no TensorFlow import here).

LeNet-5 has four learned layers with an activation, the BN *sites*:

    C1  conv 6@5x5   32x32x1 -> 28x28x6    (then S2 avg-pool 2 -> 14x14x6)
    C3  conv 16@5x5  14x14x6 -> 10x10x16   (then S4 avg-pool 2 -> 5x5x16)
    F5  dense 120
    F6  dense 84
    output dense 10 (logits, never normalised)

A variant is just the set of sites that get Batch Normalization and which implementation
does it. ``bn_core.nn.model.build_model`` turns one row of this table into a Keras model.
"""

from __future__ import annotations

from dataclasses import dataclass

SITES: tuple[str, ...] = ("C1", "C3", "F5", "F6")


@dataclass(frozen=True)
class Variant:
    """One row of the study: where BN goes and which implementation provides it."""

    name: str
    bn_sites: tuple[str, ...]
    bn_impl: str  # "none", "ours" (bn_core.nn.batchnorm.BatchNorm) or "keras" (the reference)
    description: str


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("lenet", (), "none", "Plain LeNet-5, no Batch Normalization (the baseline)."),
        Variant("lenet_bn1", ("C1",), "ours", "BN after the first convolution (C1) only."),
        Variant("lenet_bn2", ("C1", "C3"), "ours", "BN after both convolutions (C1, C3)."),
        Variant(
            "lenet_fc_bn1",
            ("C1", "C3", "F5"),
            "ours",
            "BN after both convolutions and the first dense layer (C1, C3, F5).",
        ),
        Variant(
            "lenet_fc_bn2",
            SITES,
            "ours",
            "BN at every hidden layer (C1, C3, F5, F6): the deepest use of our BN.",
        ),
        Variant(
            "lenet_keras_bn",
            SITES,
            "keras",
            "Reference: BN at every hidden layer with Keras' own BatchNormalization "
            "(moving-average inference statistics).",
        ),
    )
}

VARIANT_NAMES: tuple[str, ...] = tuple(VARIANTS)
