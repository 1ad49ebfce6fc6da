# The gpusched image: the extender (`gpusched serve`), the webhook and the node agent (`gpusched agent`).
#   docker build -t ghcr.io/gpusched/gpusched:0.1.0 .
# (Not built in this repository's CI: its machines have no container engine.)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scheduler ./scheduler
COPY simulator ./simulator
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
# Non-root, read-only root filesystem friendly: nothing is written at run time.
USER 65532:65532
ENTRYPOINT ["gpusched"]
CMD ["serve", "--in-cluster"]
