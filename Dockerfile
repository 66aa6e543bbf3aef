# BN Lab: the dashboard, the CLI and a Ray node in one image.
#   docker build -t bn-lab .
#   docker run --rm -p 127.0.0.1:8501:8501 -v bn-lab-runs:/data/runs bn-lab   (this machine only)
# A Ray cluster from it: `docker compose --profile cluster up --scale ray-worker=2`, or by hand
# (other machines, Kubernetes): docs/CLUSTER.md. scripts/docker-entrypoint.sh picks the role.
# The base is a build argument so an offline mirror can stand in for the official image.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# 1 = download MNIST and Fashion-MNIST into the image at build time (offline use later).
ARG BAKE_DATASETS=0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BN_LAB_HOME=/data/runs \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    RAY_USAGE_STATS_ENABLED=0

# tini is PID 1: it forwards signals to Streamlit and reaps finished training workers.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 1000 bnlab \
 && useradd --system --uid 1000 --gid bnlab --create-home --home-dir /home/bnlab bnlab

WORKDIR /app
COPY requirements.txt ./
# TensorFlow's C++ headers (~290 MB) only serve to compile custom ops, and the test suites of
# numpy, pandas, scipy and pyarrow (~45 MB) only test those packages: not needed here.
RUN pip install --no-cache-dir -r requirements.txt \
 && find /usr/local/lib -path "*/tensorflow/include" -type d -prune -exec rm -rf {} + \
 && find /usr/local/lib -regextype posix-extended -type d \
      -regex ".*-packages/(numpy|pandas|scipy|pyarrow)(/.*)?/tests" -prune -exec rm -rf {} + \
 && find /usr/local/lib -name "__pycache__" -type d -prune -exec rm -rf {} +

# The Ray extra (the cluster backend): its own layer, so a change to it keeps the TensorFlow
# one; `-c requirements.txt` holds every package that both need at the runtime pins. Ray's
# jars (~33 MB) serve only Java workers (there is no Java here).
COPY requirements-ray.txt ./
RUN pip install --no-cache-dir -r requirements-ray.txt -c requirements.txt \
 && find /usr/local/lib -path "*-packages/ray/jars" -type d -prune -exec rm -rf {} + \
 && find /usr/local/lib -name "__pycache__" -type d -prune -exec rm -rf {} +

# The package itself, installed like any user would (`pip install .`); its dependencies are
# already there from requirements.txt (the same pins), so --no-deps fetches nothing new.
COPY pyproject.toml README.md requirements.txt requirements-dev.txt requirements-ray.txt \
     /tmp/src/
COPY bn_core /tmp/src/bn_core
RUN pip install --no-cache-dir --no-deps /tmp/src && rm -rf /tmp/src
COPY pages ./pages
COPY .streamlit ./.streamlit
COPY app.py ./
COPY scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh \
 && mkdir -p /data/runs /home/bnlab/.keras/datasets \
 && chown -R bnlab:bnlab /data /home/bnlab

USER bnlab
RUN if [ "$BAKE_DATASETS" = "1" ]; then \
      python -m bn_core datasets --fetch \
      || echo "BAKE_DATASETS: download failed (offline build?); datasets will be fetched at first use"; \
    else \
      echo "datasets not baked in: MNIST/Fashion-MNIST are downloaded at first use (or mount a folder and set BN_DATA_DIR)"; \
    fi

VOLUME ["/data/runs", "/home/bnlab/.keras/datasets"]
EXPOSE 8501
# Healthy: the dashboard answers on /_stcore/health; a Ray worker's raylet runs.
HEALTHCHECK --interval=10s --timeout=5s --start-period=40s --retries=3 \
  CMD ["docker-entrypoint.sh", "health"]
# tini is PID 1; the entrypoint starts Ray when asked to (BN_LAB_RAY_HEAD, `ray-worker`), then
# runs the CMD. Without those, exactly the CMD runs and nothing imports Ray.
ENTRYPOINT ["/usr/bin/tini", "--", "docker-entrypoint.sh"]
CMD ["streamlit", "run", "app.py"]
