# An eclipse-mosquitto image with mqttguard installed at /usr/lib/libmqttguard.so.
#
#   docker build -t mosquitto-mqttguard .
#   docker run -p 1883:1883 -v $PWD/examples/drop-in:/mosquitto/config mosquitto-mqttguard
#
# The official image is Alpine (musl): the plugin is built on Alpine as a musl cdylib with a
# dynamic C runtime, against Alpine's Mosquitto headers and OpenSSL, so it shares the broker's
# libc and libcrypto.
ARG MOSQUITTO_VERSION=2.0
FROM rust:alpine AS build
RUN apk add --no-cache musl-dev clang-dev llvm-dev mosquitto-dev openssl-dev pkgconf
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY include include
COPY csrc csrc
COPY src src
COPY benches benches
COPY mosquitto-test mosquitto-test
ENV RUSTFLAGS="-C target-feature=-crt-static"
RUN cargo build --release --lib --bin mqttguard

FROM eclipse-mosquitto:${MOSQUITTO_VERSION}
COPY --from=build /src/target/release/libmqttguard.so /usr/lib/libmqttguard.so
COPY --from=build /src/target/release/mqttguard /usr/bin/mqttguard
