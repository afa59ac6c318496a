# The datumflow service image: `datumflow serve` with PostgreSQL, S3 and the Kubernetes executor.
# Build from the repository root:
#   docker build -f docker/service.Dockerfile -t <registry>/datumflow:<version> .
# The same pins as the test suite (requirements/service.txt, made by `make lock`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY requirements/service.txt ./requirements/service.txt
RUN pip install -r requirements/service.txt
COPY pyproject.toml README.md ./
COPY datumflow ./datumflow
COPY storage_service ./storage_service
COPY plugin ./plugin
COPY operators ./operators
COPY sensors ./sensors
COPY kfp_components ./kfp_components
RUN pip install --no-deps . && rm -rf /src

# Never root: the store root (SQLite, local packs) is a volume owned by this user.
RUN useradd --create-home --uid 10001 datumflow && mkdir -p /data && chown 10001:10001 /data
USER 10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8765
ENV DATUMFLOW_ROOT=/data DATUMFLOW_LOG_FORMAT=json

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/livez', timeout=2)"]

ENTRYPOINT ["datumflow"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8765"]
