# volley's container image, for distributed runs on Kubernetes (`volley k8s`):
#   docker build -t registry.example/volley:0.1 . && docker push registry.example/volley:0.1
# Stage 1 builds the release binary; stage 2 is a slim Debian with it, CA certificates
# (https targets) and sh (the coordinator's Job runs `sh -c`).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin volley

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /volley volley \
 && mkdir -p /volley/reports && chown volley /volley/reports
COPY --from=build /src/target/release/volley /usr/local/bin/volley
COPY --from=build /src/stdlib /volley/stdlib
USER volley
WORKDIR /volley
EXPOSE 7700 6565
ENTRYPOINT ["volley"]
CMD ["agent", "--listen", "0.0.0.0:7700", "--once"]
