# The app (Gradio UI) and the CPU consumer of the SAM2 mask-tracking app: one image, two commands.
#
#   docker build -t sam2-tracking .
#   docker run -p 7860:7860 -v sam2-data:/data -e SAM2T_ADMIN_PASSWORD=... sam2-tracking
#
# Alone it is the laptop trial in a container (embedded CPU consumer, SQLite). docker-compose.yml runs it as the
# app plus a separate CPU consumer (`python -m queues.consumer cpu`, its own volume) beside PostgreSQL, Redis and a
# GPU consumer (Dockerfile.gpu).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SAM2T_DATA_DIR=/data \
    SAM2T_HOST=0.0.0.0 \
    SAM2T_PORT=7860 \
    SAM2_BUILD_CUDA=0

WORKDIR /app

# torch first, then the rest without build isolation: sam2 ships as an sdist whose isolated build would pull an
# unpinned (newer, multi-gigabyte) torch; its optional CUDA extension stays off (SAM2_BUILD_CUDA=0, as in
# Dockerfile.gpu). Dependencies before code so a code change does not rebuild these layers.
COPY requirements.txt .
RUN grep -E '^(torch|torchvision)==' requirements.txt > /tmp/torch.txt \
    && pip install --no-cache-dir -r /tmp/torch.txt \
    && pip install --no-cache-dir --no-build-isolation -r requirements.txt

COPY app.py ./
COPY assets/ assets/
COPY sam2_tracking/ sam2_tracking/
COPY queues/ queues/
COPY ui/ ui/
COPY web/ web/

RUN useradd --create-home --uid 1000 sam2 && mkdir -p /data && chown sam2:sam2 /data
USER 1000
VOLUME ["/data"]
EXPOSE 7860

# Gradio answers / with its page (or its login page): an answer means the server and the store opened.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=8)"]

CMD ["python", "app.py"]
