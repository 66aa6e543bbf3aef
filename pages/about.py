"""About: what Batch Normalization does, the formulas we implement, and how they were checked."""

import pandas as pd
import streamlit as st

from bn_core.config import field_spec
from bn_core.variants import SITES, VARIANTS
from pages._ui import store_banner, use_navigation

use_navigation()

st.title("About BN Lab")
store_banner()  # read-only, a full disk, damaged runs: said once
st.markdown(
    """
Batch Normalization (Ioffe & Szegedy, 2015) normalizes each feature of a layer's pre-activation
over the mini-batch, then lets the network rescale and shift it with two learned parameters,
γ and β. It keeps the distribution of every layer's inputs stable while the layers below keep
changing, which allows larger learning rates, makes training less sensitive to initialization,
and lets saturating activations such as the sigmoid (LeNet-5's) keep learning.
BN sits between a layer's linear op (which then needs no bias: β replaces it) and its
activation; for convolutions the statistics are per channel, over all N·H·W values.
"""
)

st.subheader("Training: Algorithm 1 (statistics of the current mini-batch)")
st.markdown("For a mini-batch $\\mathcal{B} = \\{x_1, \\dots, x_m\\}$ of one feature:")
st.latex(
    r"\mu_\mathcal{B} = \frac{1}{m}\sum_{i=1}^{m} x_i \qquad "
    r"\sigma^2_\mathcal{B} = \frac{1}{m}\sum_{i=1}^{m} (x_i - \mu_\mathcal{B})^2"
)
st.latex(
    r"\hat{x}_i = \frac{x_i - \mu_\mathcal{B}}{\sqrt{\sigma^2_\mathcal{B} + \epsilon}}"
    r"\qquad y_i = \gamma\,\hat{x}_i + \beta"
)
st.markdown(
    "Gradients flow through $\\mu_\\mathcal{B}$ and $\\sigma^2_\\mathcal{B}$. After each "
    "step the layer pushes $(\\mu_\\mathcal{B}, \\sigma^2_\\mathcal{B}, m)$ into a ring buffer "
    f"holding the last `window_size` batches (default {field_spec('window_size')['default']})."
)

st.subheader("Inference: Algorithm 2 over a finite window")
st.markdown(
    "With the buffer holding the statistics of the last $k$ = `window_size` training batches:"
)
st.latex(
    r"\mathrm{E}[x] = \frac{1}{k}\sum_{j=1}^{k} \mu_{\mathcal{B}_j} \qquad "
    r"\mathrm{Var}[x] = \frac{1}{k}\sum_{j=1}^{k} \frac{m}{m-1}\,\sigma^2_{\mathcal{B}_j}"
)
st.markdown("Both are folded into one affine map, applied to every sample on its own:")
st.latex(
    r"y = \frac{\gamma}{\sqrt{\mathrm{Var}[x] + \epsilon}}\, x + "
    r"\left(\beta - \frac{\gamma\,\mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}}\right)"
)
st.markdown(
    "so a test prediction never depends on the rest of its batch. The factor $m/(m-1)$ turns "
    "each biased batch variance into an unbiased estimate. Before any training step the layer "
    "uses $\\mathrm{E}[x]=0$, $\\mathrm{Var}[x]=1$."
)

st.subheader("The window versus Keras' moving average")
st.markdown(
    "Keras' `BatchNormalization` (the `lenet_keras_bn` reference variant) keeps exponential "
    "moving averages instead, updated after every batch with momentum 0.99:"
)
st.latex(
    r"\hat\mu \leftarrow 0.99\,\hat\mu + 0.01\,\mu_\mathcal{B} \qquad "
    r"\hat\sigma^2 \leftarrow 0.99\,\hat\sigma^2 + 0.01\,\sigma^2_\mathcal{B}"
)
st.markdown(
    "Every past batch keeps an exponentially decaying weight ($0.01 \\cdot 0.99^j$ for the "
    "batch $j$ steps ago: an effective memory of about 100 batches), the averages start from "
    "0 and 1, and Keras averages the biased batch variance. Our window weighs the last "
    "`window_size` batches equally and forgets everything older, so it follows the weights as "
    "they change during training and needs no warm-up from the initial values; a small window "
    "is noisier, a large one lags."
)

st.subheader("The variants")
table = pd.DataFrame(
    [
        {
            "variant": v.name,
            **{site: ("✓" if site in v.bn_sites else "") for site in SITES},
            "implementation": {"none": "—", "ours": "ours", "keras": "Keras"}[v.bn_impl],
            "description": v.description,
        }
        for v in VARIANTS.values()
    ]
)
st.dataframe(table, hide_index=True, key="about-variants")
st.caption(
    "LeNet-5 on 32×32×1 input: C1 conv 6@5×5 → S2 avg-pool → C3 conv 16@5×5 → S4 avg-pool → "
    "F5 dense 120 → F6 dense 84 → dense 10 logits."
)

st.subheader("How our BN was validated")
st.markdown(
    """
- **Against Keras' own layer** (`tests/test_layers.py`): in training mode our `BatchNorm`'s
  forward pass and its gradients with respect to x, γ and β agree with
  `keras.layers.BatchNormalization` to 1e-5 relative, for dense and convolutional inputs.
- **Inference** equals an independent numpy implementation of Algorithm 2 over the same
  window of batch statistics, including the m/(m−1) correction and the folded affine map.
- The window buffers are layer weights: they work under `tf.function`/XLA and are saved in
  `.keras` files.
"""
)
