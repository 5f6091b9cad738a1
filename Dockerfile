# syntax=docker/dockerfile:1
# nodegc's container image: the `nodegc` console script in a virtualenv on Debian's slim Python.
#
#   docker build -t nodegc:0.1.0 .
#
# Two stages: the builder makes nodegc's wheel and installs it, with its dependencies (all of them
# pure Python or manylinux wheels: nothing is compiled), into the virtualenv /opt/nodegc; the
# final stage copies that virtualenv alone onto the same base, so no build tool, wheel cache or
# source tree reaches the image. For reproducible builds, pin the base by digest as well:
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
#
# Who it runs as. The image's default user is the unprivileged nodegc (uid and gid 65532), which
# owns /var/lib/nodegc. The engine sockets are root-owned 0660 (docker: root:docker;
# containerd and CRI-O: root:root), so that user reaches Docker's socket only through the
# socket's group, which differs between hosts:
#   docker run -d --name nodegc \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /var/lib/docker:/var/lib/docker:ro \
#     -v nodegc-state:/var/lib/nodegc \
#     nodegc:0.1.0
# (a named volume starts with the image's ownership of /var/lib/nodegc, so 65532 can write it).
# Where no group fits (containerd, CRI-O) run it as root: `--user 0:0`. The Helm chart runs it as
# uid 0 with every capability dropped: root reaches the sockets as their owner, needing none.
# Either way, access to the engine socket is root-equivalent on the host.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nodegc ./nodegc
RUN python -m venv /opt/nodegc \
    && /opt/nodegc/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && /opt/nodegc/bin/pip install --only-binary=:all: /tmp/wheels/nodegc-*.whl \
    && /opt/nodegc/bin/pip uninstall --yes pip setuptools \
    && /opt/nodegc/bin/nodegc --version

FROM ${PYTHON_IMAGE}
ARG NODEGC_UID=65532
LABEL org.opencontainers.image.title="nodegc" \
      org.opencontainers.image.description="Garbage collection of container images and dead containers, the kubelet's way" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid "${NODEGC_UID}" nodegc \
    && useradd --system --uid "${NODEGC_UID}" --gid nodegc --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin nodegc \
    && install -d -o nodegc -g nodegc -m 0700 /var/lib/nodegc
COPY --from=builder /opt/nodegc /opt/nodegc
ENV PATH=/opt/nodegc/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER ${NODEGC_UID}:${NODEGC_UID}
# The metrics/health listener's default port (metrics.address); the chart sets 0.0.0.0:9797.
EXPOSE 9797
ENTRYPOINT ["nodegc"]
CMD ["run"]
