# One image for every process: worker, beat, flower, webhook (and the sandbox for demos).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY worker worker
COPY tasks tasks
COPY sandbox sandbox
RUN pip install . && useradd --system --home-dir /app app && mkdir -p /data/audio \
    && chown app /data/audio
COPY flowerconfig.py Procfile ./
USER app
ENV AUDIO_DIR=/data/audio
