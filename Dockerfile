# The credmesh image: the one `credmesh` binary on a distroless base, run as non-root.
# Every service is `credmesh serve <service>` from this image (see helm/credmesh).
#
#   docker build -t credmesh .
#   docker run --rm credmesh --help
#
# Builder and runtime are both Debian 12 (bookworm), so the binary's glibc matches.

# The toolchain rust-toolchain.toml pins, preinstalled: RUSTUP_TOOLCHAIN keeps rustup
# from fetching the clippy/rustfmt components the file also lists (not needed to build).
FROM rust:1.95.0-bookworm AS build
ENV RUSTUP_TOOLCHAIN=1.95.0
WORKDIR /src
COPY . .
RUN cargo build --release -p credmesh --locked \
 && install -D -m 0755 target/release/credmesh /out/credmesh

# glibc, libgcc and CA certificates, no shell, no package manager; user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="credmesh" \
      org.opencontainers.image.description="Ed25519-signed credential services: identity, license, entcode, certificate, inspection, verify" \
      org.opencontainers.image.source="https://github.com/credmesh/credmesh"
COPY --from=build /out/credmesh /usr/local/bin/credmesh
USER 65532:65532
# Listen on every interface inside the container; the chart sets these too.
# MIMALLOC_ALLOW_THP=0: no transparent huge pages for the allocator even on nodes whose
# THP setting is "always" (they double idle RSS; the binary already skips madvise).
ENV CREDMESH_GRPC_ADDR=0.0.0.0:50051 \
    CREDMESH_HTTP_ADDR=0.0.0.0:8080 \
    MIMALLOC_ALLOW_THP=0
EXPOSE 50051 8080
ENTRYPOINT ["/usr/local/bin/credmesh"]
CMD ["--help"]
