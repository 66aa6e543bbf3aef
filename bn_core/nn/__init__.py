"""The only room that imports TensorFlow/Keras: the from-scratch BatchNorm layer, the LeNet-5
builder that reads the variant table, the training engine, probes, and window replay's model
half. Import its modules explicitly (``bn_core.nn.training``); importing this package alone
loads nothing heavy."""
