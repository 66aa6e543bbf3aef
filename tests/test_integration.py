"""One real-data check: on Fashion-MNIST, full BN beats plain LeNet after the same short run.

It needs Debian's dataset-fashion-mnist (installed by scripts/test.sh); a missing dataset is
a failure here, not a skip, because this is the test that proves the study's claim holds.
"""

from __future__ import annotations

import pytest

from bn_core import data
from bn_core.config import TrainConfig
from bn_core.nn.training import train

pytestmark = pytest.mark.integration


def test_full_bn_beats_plain_lenet_on_fashion_mnist():
    base = TrainConfig(dataset="fashion_mnist", epochs=2, train_limit=6000, val_size=2000, seed=1)
    splits = data.load(
        "fashion_mnist", val_size=base.val_size, train_limit=base.train_limit, seed=1
    )
    assert len(splits.x_train) == 6000 and len(splits.x_test) == 10000  # official test set

    plain = train(base.replace(variant="lenet"), splits=splits)
    bn = train(base.replace(variant="lenet_fc_bn2"), splits=splits)

    assert plain.status == bn.status == "completed"
    # Sigmoid LeNet barely starts learning in 2 short epochs; BN at every layer does.
    assert bn.test_accuracy > 0.70
    assert bn.test_accuracy > plain.test_accuracy + 0.05, (plain.test_accuracy, bn.test_accuracy)
    assert bn.history["val_accuracy"][0] > plain.history["val_accuracy"][0]
