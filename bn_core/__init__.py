"""BN Lab core: a from-scratch Batch Normalization layer, LeNet-5 variants, data, training.

This package never imports Streamlit. Importing ``bn_core`` itself is cheap and does not
load TensorFlow: the TF-heavy modules (``layers``, ``models``, ``training``) are imported
explicitly by whoever needs them, so a UI process can read configs and variant tables
without paying for (or crashing with) TensorFlow.
"""

__version__ = "0.1.0"
