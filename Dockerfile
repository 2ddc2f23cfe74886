# repmon daemon image. Build: docker build -t repmon .   Run with compose.yaml (PostgreSQL 15).
# Secrets (Slack tokens, source credentials, the database password) come from the environment at
# run time; none is baked into the image. The configuration is mounted at /etc/repmon/repmon.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REPMON_CONFIG=/etc/repmon/repmon.yaml \
    REPMON_DEMO_DIR=/usr/share/repmon/demo

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY monitor ./monitor
COPY sources ./sources
COPY classifiers ./classifiers
COPY alerts ./alerts
COPY config ./config
# The sample week of `repmon demo` (the installed package does not carry examples/).
COPY examples/demo /usr/share/repmon/demo
# The embedded classifier runs multilingual-e5-small on torch: take the CPU build from PyTorch's
# index (PyPI's Linux wheel pulls CUDA libraries); constraints.txt pins its version.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt '.[postgres]' \
 && rm -rf /src

# The digests and models folders exist (owned by repmon) so volumes mounted there start out
# writable; models holds heads retrained with the team's feedback (repmon train --out).
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/repmon repmon \
 && mkdir -p /etc/repmon /var/lib/repmon/digests /var/lib/repmon/models \
 && chown repmon /var/lib/repmon/digests /var/lib/repmon/models
USER repmon
WORKDIR /var/lib/repmon

# /healthz and /metrics (daemon.health_host must be 0.0.0.0 in the mounted configuration).
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]

# SIGTERM (docker stop) finishes in-flight work within daemon.shutdown_timeout.
STOPSIGNAL SIGTERM
CMD ["repmon", "run", "--config", "/etc/repmon/repmon.yaml"]
