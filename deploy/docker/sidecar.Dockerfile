# warden-sidecar: built in a Rust image, run as a static-free distroless image, non-root.
#   docker build -f deploy/docker/sidecar.Dockerfile -t warden-sidecar .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p warden-sidecar

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/warden-sidecar /usr/local/bin/warden-sidecar
USER 65532:65532
EXPOSE 15001 15000
ENTRYPOINT ["/usr/local/bin/warden-sidecar"]
