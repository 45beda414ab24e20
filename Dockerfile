# The updraft binary in an image: `docker build -t updraft .` at the repository's root.
# The runtime image carries the interpreters Lambda functions run on (python3, node);
# a node that runs only wasm functions needs neither.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p updraft \
    && cp target/release/updraft /usr/local/bin/updraft

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install --yes --no-install-recommends ca-certificates python3 nodejs \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/updraft /usr/local/bin/updraft
VOLUME /var/lib/updraft
EXPOSE 7070
ENV UPDRAFT_LISTEN=0.0.0.0:7070
ENTRYPOINT ["updraft"]
CMD ["server", "--data-dir", "/var/lib/updraft"]
