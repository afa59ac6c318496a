# The datumflow worker image: the init ("fetch") and "uploader" containers of every datum pod.
# Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t <registry>/datumflow-worker:<version> .
#   docker push <registry>/datumflow-worker:<version>
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY datumflow ./datumflow
COPY storage_service ./storage_service
COPY plugin ./plugin
COPY operators ./operators
COPY sensors ./sensors
COPY kfp_components ./kfp_components
# The core distribution only: the worker talks HTTP to the service; no Airflow, no Kubeflow.
RUN pip install . && rm -rf /src

# The pod's containers run as this user; /pfs is the pod's emptyDir.
RUN useradd --create-home --uid 10001 datumflow
USER 10001
WORKDIR /pfs

ENTRYPOINT ["datumflow", "worker"]
CMD ["--help"]
