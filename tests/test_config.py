"""Tests for bn_core.config: TrainConfig defaults, validation messages, conversions, field specs.

Pure Python (no TensorFlow): the whole file runs in well under a second.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from bn_core.config import (
    ACTIVATIONS,
    DEFAULT_LEARNING_RATES,
    OPTIMIZERS,
    ConfigError,
    TrainConfig,
    field_spec,
    parse_number,
)
from bn_core.data import DATASETS
from bn_core.variants import VARIANT_NAMES

FIELD_NAMES = (
    "variant",
    "dataset",
    "data_dir",
    "epochs",
    "batch_size",
    "optimizer",
    "learning_rate",
    "epsilon",
    "window_size",
    "activation",
    "seed",
    "val_size",
    "train_limit",
    "probe_every",
)


def error_of(**changes) -> str:
    """The ConfigError message of ``TrainConfig(**changes).validate()`` (it must raise)."""
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes).validate()
    return str(info.value)


# ----------------------------------------------------------------------------- defaults


def test_defaults_reproduce_the_original_study():
    c = TrainConfig()
    assert c.batch_size == 64
    assert c.epochs == 10
    assert c.optimizer == "adam"
    assert c.epsilon == 1e-8
    assert c.window_size == 5
    assert c.variant == "lenet"
    assert c.dataset == "mnist"
    assert c.val_size == 9000
    assert c.seed == 0
    assert c.activation == "sigmoid"
    assert c.learning_rate is None
    assert c.data_dir is None
    assert c.train_limit is None


def test_fields_are_the_documented_ones_in_order():
    assert tuple(f.name for f in dataclasses.fields(TrainConfig)) == FIELD_NAMES


def test_defaults_have_no_errors_and_validate_returns_self():
    c = TrainConfig()
    assert c.errors() == []
    assert c.validate() is c


def test_valid_non_default_values_pass():
    c = TrainConfig(
        variant="lenet_keras_bn",
        dataset="fashion_mnist",
        data_dir="/some/folder",
        epochs=200,
        batch_size=2,
        optimizer="rmsprop",
        learning_rate=10,  # an int is a fine number for a float field
        epsilon=1e-12,
        window_size=1000,
        activation="relu",
        seed=2**31 - 1,
        val_size=0,
        train_limit=60000,
    )
    assert c.errors() == []


@pytest.mark.parametrize(
    ("field", "low", "high"),
    [
        ("epochs", 1, 200),
        ("batch_size", 2, 4096),
        ("learning_rate", 1e-6, 10.0),
        ("epsilon", 1e-12, 1e-1),
        ("window_size", 1, 1000),
        ("seed", 0, 2**31 - 1),
        ("val_size", 0, 59000),
        ("train_limit", 2, 60000),
    ],
)
def test_limits_are_inclusive(field, low, high):
    # Each field's own limits; a batch larger than the training images is tested apart.
    assert TrainConfig(**{field: low}).field_errors() == []
    assert TrainConfig(**{field: high}).field_errors() == []


# ----------------------------------------------------------------------------- messages


def test_window_size_message_exact_format():
    assert error_of(window_size=0) == "window_size must be between 1 and 1000. Received: 0"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be between 1 and 200. Received: 0"),
        ("epochs", 201, "epochs must be between 1 and 200. Received: 201"),
        ("batch_size", 1, "batch_size must be between 2 and 4096. Received: 1"),
        ("batch_size", 4097, "batch_size must be between 2 and 4096. Received: 4097"),
        ("learning_rate", 0.0, "learning_rate must be between 1e-06 and 10. Received: 0.0"),
        ("learning_rate", -1.0, "learning_rate must be between 1e-06 and 10. Received: -1.0"),
        ("learning_rate", 10.5, "learning_rate must be between 1e-06 and 10. Received: 10.5"),
        ("epsilon", 1e-13, "epsilon must be between 1e-12 and 0.1. Received: 1e-13"),
        ("epsilon", 0.2, "epsilon must be between 1e-12 and 0.1. Received: 0.2"),
        ("window_size", 1001, "window_size must be between 1 and 1000. Received: 1001"),
        ("val_size", -1, "val_size must be between 0 and 59000. Received: -1"),
        ("val_size", 59001, "val_size must be between 0 and 59000. Received: 59001"),
        ("train_limit", 1, "train_limit must be between 2 and 60000. Received: 1"),
        ("train_limit", 60001, "train_limit must be between 2 and 60000. Received: 60001"),
        ("seed", -1, "seed must be between 0 and "),
    ],
)
def test_limit_errors(field, value, message):
    text = error_of(**{field: value})
    assert text.startswith(message)
    assert text.endswith(f"Received: {value!r}")
    assert "\n" not in text


def test_seed_upper_limit_is_printed_exactly():
    assert error_of(seed=2**31) == "seed must be between 0 and 2147483647. Received: 2147483648"


@pytest.mark.parametrize(
    ("field", "choices"),
    [
        ("variant", VARIANT_NAMES),
        ("dataset", DATASETS),
        ("optimizer", OPTIMIZERS),
        ("activation", ACTIVATIONS),
    ],
)
def test_choice_errors_list_every_choice(field, choices):
    assert error_of(**{field: "bogus"}) == (
        f"{field} must be one of {', '.join(choices)}. Received: 'bogus'"
    )


def test_choice_lists_are_the_expected_ones():
    assert OPTIMIZERS == ("adam", "sgd", "rmsprop")
    assert ACTIVATIONS == ("sigmoid", "tanh", "relu")
    assert DATASETS == ("mnist", "fashion_mnist")
    assert VARIANT_NAMES == (
        "lenet",
        "lenet_bn1",
        "lenet_bn2",
        "lenet_fc_bn1",
        "lenet_fc_bn2",
        "lenet_keras_bn",
    )


@pytest.mark.parametrize(
    "field", ["epochs", "batch_size", "window_size", "seed", "val_size", "train_limit"]
)
def test_bool_is_refused_for_int_fields(field):
    # True == 1 is inside most ranges: it must be refused for its type, not its value.
    assert error_of(**{field: True}) == f"{field} must be an integer. Received: True"


@pytest.mark.parametrize("field", ["learning_rate", "epsilon"])
def test_bool_is_refused_for_float_fields(field):
    assert error_of(**{field: True}) == f"{field} must be a number. Received: True"


@pytest.mark.parametrize("value", [2.0, "5", 2.5])
def test_non_integers_are_refused_for_int_fields(value):
    assert error_of(epochs=value) == f"epochs must be an integer. Received: {value!r}"


@pytest.mark.parametrize("field", ["learning_rate", "epsilon"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "0.1"])
def test_nan_inf_and_strings_are_refused_for_float_fields(field, value):
    assert error_of(**{field: value}) == f"{field} must be a number. Received: {value!r}"


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nan_inf_are_refused_for_int_fields(value):
    assert error_of(window_size=value) == f"window_size must be an integer. Received: {value!r}"


@pytest.mark.parametrize("value", ["", "   ", 5])
def test_data_dir_must_be_a_non_blank_string(value):
    assert error_of(data_dir=value) == f"data_dir must be a folder path. Received: {value!r}"


@pytest.mark.parametrize("field", ["variant", "epochs", "epsilon", "seed"])
def test_none_is_refused_for_fields_with_a_default(field):
    assert error_of(**{field: None}) == f"{field} is required. Received: None"


def test_none_is_allowed_for_optional_fields():
    assert TrainConfig(learning_rate=None, train_limit=None, data_dir=None).errors() == []


def test_several_problems_are_joined_on_one_line_in_field_order():
    c = TrainConfig(variant="foo", epochs=0, batch_size=1, window_size=0)
    assert c.errors() == [
        "variant must be one of " + ", ".join(VARIANT_NAMES) + ". Received: 'foo'",
        "epochs must be between 1 and 200. Received: 0",
        "batch_size must be between 2 and 4096. Received: 1",
        "window_size must be between 1 and 1000. Received: 0",
    ]
    text = error_of(variant="foo", epochs=0, batch_size=1, window_size=0)
    assert text == "; ".join(c.errors())
    assert "\n" not in text


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# ----------------------------------------------------------------------------- from_dict


def test_from_dict_builds_a_validated_config():
    c = TrainConfig.from_dict({"epochs": 3, "optimizer": "sgd", "learning_rate": 0.5})
    assert c == TrainConfig(epochs=3, optimizer="sgd", learning_rate=0.5)


def test_from_dict_round_trips_to_dict():
    c = TrainConfig(variant="lenet_bn2", epochs=7, train_limit=1000, data_dir="/x")
    d = c.to_dict()
    assert set(d) == set(FIELD_NAMES)
    assert d["epochs"] == 7 and d["variant"] == "lenet_bn2" and d["data_dir"] == "/x"
    assert TrainConfig.from_dict(d) == c


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"epochs": 3, "zeta": 1, "alpha": 2})
    assert str(info.value) == (
        "unknown config keys: alpha, zeta. Valid keys: " + ", ".join(sorted(FIELD_NAMES))
    )


@pytest.mark.parametrize(
    ("values", "kind"), [([("epochs", 3)], "list"), ("epochs=3", "str"), (None, "NoneType")]
)
def test_from_dict_refuses_non_mappings(values, kind):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(values)
    assert str(info.value) == f"a config must be a mapping. Received: {kind}"


def test_from_dict_validates_values():
    with pytest.raises(ConfigError, match=r"^epochs must be between 1 and 200\. Received: 0$"):
        TrainConfig.from_dict({"epochs": 0})


# ----------------------------------------------------------------------------- conversions


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_effective_learning_rate_defaults_to_the_optimizers_own(optimizer):
    expected = {"adam": 1e-3, "sgd": 1e-2, "rmsprop": 1e-3}[optimizer]
    assert DEFAULT_LEARNING_RATES[optimizer] == expected
    assert TrainConfig(optimizer=optimizer).effective_learning_rate == expected


def test_effective_learning_rate_uses_an_explicit_value_as_float():
    lr = TrainConfig(optimizer="sgd", learning_rate=2).effective_learning_rate
    assert lr == 2.0 and type(lr) is float
    assert TrainConfig(learning_rate=0.25).effective_learning_rate == 0.25


def test_replace_returns_a_new_config():
    c = TrainConfig()
    d = c.replace(epochs=3, variant="lenet_bn1")
    assert (d.epochs, d.variant) == (3, "lenet_bn1")
    assert (c.epochs, c.variant) == (10, "lenet")


def test_config_is_frozen():
    c = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.epochs = 3  # type: ignore[misc]
    assert c.epochs == 10


def test_equal_configs_are_equal_and_hashable():
    assert TrainConfig(epochs=3) == TrainConfig(epochs=3)
    assert TrainConfig(epochs=3) != TrainConfig(epochs=4)
    assert len({TrainConfig(epochs=3), TrainConfig(epochs=3)}) == 1


# ----------------------------------------------------------------------------- field_spec


def test_field_spec_of_an_int_field():
    spec = field_spec("epochs")
    assert spec == {
        "default": 10,
        "type": int,
        "help": "passes over the training set",
        "min": 1,
        "max": 200,
        "choices": None,
        "log": False,
    }


def test_field_spec_of_an_optional_float_field():
    spec = field_spec("learning_rate")
    assert spec["default"] is None
    assert spec["type"] is float
    assert (spec["min"], spec["max"], spec["log"]) == (1e-6, 10.0, True)
    assert spec["choices"] is None


def test_field_spec_of_a_choice_field():
    spec = field_spec("variant")
    assert spec["default"] == "lenet"
    assert spec["type"] is str
    assert spec["choices"] == VARIANT_NAMES
    assert spec["min"] is None and spec["max"] is None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("data_dir", str),
        ("train_limit", int),
        ("epsilon", float),
        ("seed", int),
        ("optimizer", str),
        ("val_size", int),
    ],
)
def test_field_spec_types(name, kind):
    assert field_spec(name)["type"] is kind


def test_field_spec_defaults_match_the_dataclass():
    defaults = TrainConfig().to_dict()
    for name in FIELD_NAMES:
        spec = field_spec(name)
        assert spec["default"] == defaults[name]
        assert spec["help"] and isinstance(spec["help"], str)


def test_field_spec_unknown_name_raises():
    with pytest.raises(KeyError):
        field_spec("bogus")


# ----------------------------------------------------------------------------- numbers as text


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("12", int, 12),
        (" -3 ", int, -3),
        ("+7", int, 7),
        ("0.5", float, 0.5),
        (".5", float, 0.5),
        ("1e-3", float, 1e-3),
        ("2E+1", float, 20.0),
        ("10", float, 10.0),
    ],
)
def test_parse_number_reads_ascii_numbers(text, kind, value):
    parsed = parse_number(text, kind)
    assert parsed == value and type(parsed) is kind


def test_parse_number_keeps_nan_and_inf_for_the_limits_to_name():
    assert math.isnan(parse_number("nan", float)) and parse_number("-inf", float) == -math.inf


@pytest.mark.parametrize(
    "text, kind, note",
    [
        (
            "\uff11",
            int,
            " (U+FF11 FULLWIDTH DIGIT ONE is not one of the digits 0-9)",
        ),  # int() takes it
        ("\u0663", int, " (U+0663 ARABIC-INDIC DIGIT THREE is not one of the digits 0-9)"),
        ("\uff11.5", float, " (U+FF11 FULLWIDTH DIGIT ONE is not one of the digits 0-9)"),
        ("1_000", int, ""),  # int() and float() take underscores too
        ("1_0.5", float, ""),
        ("2.5", int, ""),
        ("", int, ""),
        ("1e", float, ""),
        ("1" * 500, int, ""),  # (int() itself refuses over 4,300 digits, in its own words)
    ],
)
def test_parse_number_refuses_what_is_not_ascii_digits_in_one_line(text, kind, note):
    with pytest.raises(ValueError) as caught:
        parse_number(text, kind)
    message = str(caught.value)
    assert message.startswith(f"invalid {kind.__name__} value: ") and message.endswith(note)
    assert "\n" not in message and len(message) < 120
