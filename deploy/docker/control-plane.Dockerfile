# warden-control-plane and wardenctl, non-root; the store lives on a volume at /data.
#   docker build -f deploy/docker/control-plane.Dockerfile -t warden-control-plane .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p warden-control-plane

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/warden-control-plane /usr/local/bin/warden-control-plane
COPY --from=build /src/target/release/wardenctl /usr/local/bin/wardenctl
USER 65532:65532
ENV WARDEN_DATA_DIR=/data WARDEN_LISTEN=0.0.0.0:7070 WARDEN_HTTP=0.0.0.0:7071
VOLUME ["/data"]
EXPOSE 7070 7071
ENTRYPOINT ["/usr/local/bin/warden-control-plane"]
