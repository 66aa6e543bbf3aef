"""Quiet TensorFlow's C++ start-up logging; import this before anything that loads Keras.

TensorFlow reads these variables once, when it is first imported, so they must be set
before. ``setdefault`` keeps any value the user chose.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
