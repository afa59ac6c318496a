# The base image of datumflow's Kubeflow components: datumflow and kfp preinstalled, so a
# component pod installs nothing at start (no pip, no package index needed at run time).
# Build from the repository root:
#   docker build -f docker/kfp.Dockerfile -t <registry>/datumflow-kfp:<version> .
# and compile the components against it:
#   make kfp-components KFP_BASE_IMAGE=<registry>/datumflow-kfp:<version>
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
COPY requirements/kfp.txt ./requirements-kfp.txt
# The kfp pinned by the lock, the version the shipped YAML was compiled with.
RUN pip install -r requirements-kfp.txt . && rm -rf /src

RUN useradd --create-home --uid 10001 datumflow
USER 10001
WORKDIR /home/datumflow
