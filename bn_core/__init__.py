"""BN Lab core: a from-scratch Batch Normalization layer, LeNet-5 variants, data, training.

This package never imports Streamlit. Importing ``bn_core`` itself is cheap and does not
load TensorFlow: the TF-heavy modules (``layers``, ``models``, ``training``) are imported
explicitly by whoever needs them, so a UI process can read configs and variant tables
without paying for (or crashing with) TensorFlow.
"""

import os

__version__ = "0.1.0"

# TensorFlow reads these once, when it is first imported; every module that imports it is
# inside this package, so setting them here is early enough. setdefault keeps user choices.
# Most C++ INFO/WARNING start-up chatter off. Not all: what TensorFlow prints before absl's
# logging is initialised (its own warning about that, oneDNN's notice) ignores this; the CLI
# sends those to a log file (bn_core.cli.common.native_output_to_log).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
