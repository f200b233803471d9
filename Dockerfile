# The action's image. GitHub builds it from this file with no arguments (the last stage), so
# the default path compiles the release binary and copies it, with the few shared libraries
# it links, onto a base that holds only CA certificates.
#
# It runs as root: on GitHub runners /var/run/docker.sock is owned by root and mounted into the
# action's container, and a non-root user could not reach the Docker Engine.
#
# Other paths:
#   - `--target prebuilt` packages a binary built elsewhere: the build context is the folder
#     `scripts/package-action BINARY DIR` lays out (the release workflow and the tests use it);
#   - `--build-arg RUNTIME_IMAGE=...` swaps the base (the testbed makes one from the machine's
#     own Debian files, since no image can be pulled there).
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12
ARG RUST_IMAGE=docker.io/library/rust:1-bookworm

# A binary built on the host. Listed first so the classic builder stops here with --target.
FROM ${RUNTIME_IMAGE} AS prebuilt
COPY . /
USER 0:0
ENTRYPOINT ["/usr/local/bin/ecr-multiarch"]

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && scripts/package-action target/release/ecr-multiarch /rootfs

# The default: what `runs: using: docker, image: Dockerfile` builds.
FROM ${RUNTIME_IMAGE} AS action
COPY --from=build /rootfs/ /
USER 0:0
ENTRYPOINT ["/usr/local/bin/ecr-multiarch"]
