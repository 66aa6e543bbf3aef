"""What the dashboard pages and reports draw: plotly figures, each page's data shaping and the
self-contained HTML report. No TensorFlow, no Streamlit."""
