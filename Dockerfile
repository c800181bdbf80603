# syntax=docker/dockerfile:1
# One image for every xfer job kind (plan, build, intermediate, target, retrieval, aggregate);
# `xfer` is the entry point. Two variants from one file:
#   GPU clusters (default): CUDA runtime base, CUDA build of torch from PyPI
#       docker build -t xfer:0.1.0 .
#   kind and laptops: plain Ubuntu base, CPU build of torch
#       docker build --build-arg VARIANT=cpu -t xfer:0.1.0-cpu .
# Dependencies come pinned from requirements.lock. No credentials are baked in: S3 keys reach the
# pods at run time from the xfer-s3-credentials Secret (or workload identity).
# Bases are pinned by version and overridable: --build-arg CUDA_IMAGE=... / CPU_IMAGE=... / UV_IMAGE=...

ARG CUDA_IMAGE=nvidia/cuda:13.0.2-runtime-ubuntu24.04
ARG CPU_IMAGE=ubuntu:24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.0
ARG VARIANT=cuda

FROM ${UV_IMAGE} AS uv

# torch 2.13 on PyPI is the CUDA 13.0 build; the CPU build lives on the PyTorch CPU index
FROM ${CUDA_IMAGE} AS base-cuda
ENV XFER_TORCH_INDEX_URL=https://pypi.org/simple

FROM ${CPU_IMAGE} AS base-cpu
ENV XFER_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# base-cuda or base-cpu: a stage of this file, not an untagged image (hence the DL3006 exception)
# hadolint ignore=DL3006
FROM base-${VARIANT} AS runtime
ARG PYTHON_VERSION=3.11
ARG TORCH_VERSION=2.13.0
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/cache/huggingface \
    MPLBACKEND=Agg

COPY --from=uv /uv /usr/local/bin/uv

# Python (a standalone build: no compiler, no apt) and the virtual environment
RUN uv python install "${PYTHON_VERSION}" \
    && uv venv --python "${PYTHON_VERSION}" /opt/venv

# The largest and slowest-changing layer first: torch from the variant's index ...
RUN uv pip install --python /opt/venv --index-url "${XFER_TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# ... then every other runtime dependency at its pinned version (torch is in place already) ...
COPY requirements.lock /tmp/requirements.lock
RUN grep -v '^torch==' /tmp/requirements.lock > /tmp/requirements.txt \
    && uv pip install --python /opt/venv --no-deps -r /tmp/requirements.txt \
    && rm /tmp/requirements.lock /tmp/requirements.txt

# ... and the source last, so that a code change rebuilds only these layers.
# .dockerignore allow-lists what `COPY .` takes: pyproject.toml, README.md, xfer/, jobs/, configs/.
WORKDIR /opt/xfer
COPY . .
RUN uv pip install --python /opt/venv --no-deps . \
    && rm -rf build ./*.egg-info

# Non-root user; the numeric id lets Kubernetes check runAsNonRoot
RUN groupadd --gid 10001 xfer \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/xfer --shell /usr/sbin/nologin xfer \
    && mkdir -p /scratch /cache/huggingface \
    && chown 10001:10001 /scratch /cache/huggingface
USER 10001:10001
WORKDIR /scratch

ENTRYPOINT ["xfer"]
CMD ["--help"]
