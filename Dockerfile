# syntax=docker/dockerfile:1
# The Consentry image: `docker build -t consentry:0.1.0 .` (BuildKit, the default since Docker 23).
# Stage one builds the project's wheel and the wheels of everything it depends on; stage two
# installs them into a virtualenv on a slim base and runs as a fixed non-root user.

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the wheel is made of: a change to the tests or the docs does not rebuild it.
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
# The migrations go inside the wheel (pyproject.toml, force-include), so the image needs no
# source tree to run `consentry migrate`.
RUN python -m pip wheel --wheel-dir /wheels .


FROM python:${PYTHON_VERSION}-slim AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="consentry" \
      org.opencontainers.image.description="Consent and tracking service for education platforms" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/consentry \
    PATH=/opt/consentry/bin:$PATH

# A fixed uid and gid, so that Kubernetes can check runAsNonRoot and volumes can be owned by it.
RUN groupadd --system --gid 10001 consentry \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/consentry --no-create-home \
        --shell /usr/sbin/nologin consentry \
 && install --directory --owner 10001 --group 10001 --mode 0750 /var/lib/consentry

# Offline, from the wheels of the first stage only (mounted, so no wheel stays in a layer); the
# virtualenv gets no pip of its own. pip compiles the bytecode here, so a read-only root
# filesystem costs nothing at start.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv --without-pip "$VIRTUAL_ENV" \
 && python -m pip --python "$VIRTUAL_ENV/bin/python" install --no-index --find-links /wheels \
        consentry \
 && consentry --help > /dev/null

# The working directory holds the embedded SQLite database when no CONSENTRY_DATABASE_URL is set
# (a trial run); in production the database is PostgreSQL and the root filesystem read-only.
WORKDIR /var/lib/consentry
USER 10001:10001
EXPOSE 8000

# Liveness only (the process answers); readiness, which needs the database, is /readyz.
# The slim base has no curl: Python's own urllib fails on anything but a 2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# No ENTRYPOINT: `docker run IMAGE consentry migrate` and Kubernetes `args` name the whole command.
# `serve` migrates first; the Helm chart migrates in a hook and passes --no-migrate instead.
CMD ["consentry", "serve", "--host", "0.0.0.0", "--port", "8000"]
