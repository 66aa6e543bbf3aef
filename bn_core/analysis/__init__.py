"""Pure functions over stored results: per-run summaries, statistics over seeds, comparisons
of variants and study presets/sweeps. No TensorFlow, no Streamlit, no figures."""
