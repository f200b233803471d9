# The action's image. GitHub builds it from this file with no arguments (the last stage), so
# the default path compiles the release binary and copies it into a small glibc runtime.
#
# It runs as root: on GitHub runners /var/run/docker.sock is owned by root and mounted into the
# action's container, and a non-root user could not reach the Docker Engine.
#
# Other paths:
#   - `--target prebuilt` packages a binary built elsewhere: the build context is a folder that
#     holds just `ecr-multiarch` (the release workflow and the tests use it);
#   - `--build-arg RUNTIME_IMAGE=...` swaps the runtime base (the testbed makes one from the
#     machine's own Debian files, since no image can be pulled there).
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG RUST_IMAGE=docker.io/library/rust:1-bookworm

# A binary built on the host. Listed first so the classic builder stops here with --target.
FROM ${RUNTIME_IMAGE} AS prebuilt
COPY ecr-multiarch /usr/local/bin/ecr-multiarch
USER 0:0
ENTRYPOINT ["/usr/local/bin/ecr-multiarch"]

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && cp target/release/ecr-multiarch /ecr-multiarch

# The default: what `runs: using: docker, image: Dockerfile` builds.
FROM ${RUNTIME_IMAGE} AS action
COPY --from=build /ecr-multiarch /usr/local/bin/ecr-multiarch
USER 0:0
ENTRYPOINT ["/usr/local/bin/ecr-multiarch"]
