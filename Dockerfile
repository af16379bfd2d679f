# The eclipse-mosquitto image (Alpine, musl) with mqttguard:
#
#   docker build -t mosquitto-mqttguard .                                     # Mosquitto 2.1
#   docker build --build-arg MOSQUITTO_VERSION=2.0-openssl -t mosquitto-mqttguard:2.0 .
#
# Plugin at /usr/lib/libmqttguard.so, `mqttguard` on PATH, a default /mosquitto/config that uses
# the plugin (examples/docker/config), user mosquitto (uid/gid 1883, the image's own).
#
# The plugin is built on the very image it goes into, with Alpine's own Rust and clang: the
# build and the final stage are the same Alpine release whatever MOSQUITTO_VERSION is, and the
# plugin links the same musl and libcrypto as the broker (a glibc build does not load into
# musl's Mosquitto: "__sprintf_chk: symbol not found"). Alpine's Rust links the C runtime
# dynamically (which also lets bindgen's build script dlopen libclang; a static musl build
# cannot: "Dynamic loading not supported"), so the plugin needs libgcc_s.so.1 (package libgcc)
# at run time, which the eclipse-mosquitto image does not ship: it is installed below. The
# final stage's self-test fails the build if the plugin or the command would not load there,
# or if the broker does not load the plugin with the default configuration.
#
# NOT built here: the machine this project is tested on cannot reach Docker Hub or Alpine's
# package mirrors. Dockerfile.debian (the same layout on Debian) is built and tested end to end
# by scripts/image.sh. See the README's "Docker" section for what was and was not verified.
ARG MOSQUITTO_VERSION=2

FROM eclipse-mosquitto:${MOSQUITTO_VERSION} AS build
USER root
# Alpine's rust package is recent enough from Alpine 3.21 on (mqttguard needs Rust >= 1.82).
RUN apk add --no-cache cargo rust clang-dev llvm-dev musl-dev mosquitto-dev openssl-dev pkgconf
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY include include
COPY csrc csrc
COPY src src
COPY benches benches
COPY mosquitto-test mosquitto-test
RUN cargo build --release --lib --bin mqttguard \
 && mkdir /out && cp target/release/libmqttguard.so target/release/mqttguard /out/ \
 && strip --strip-debug /out/libmqttguard.so /out/mqttguard \
 && cp /etc/alpine-release /out/alpine-release

FROM eclipse-mosquitto:${MOSQUITTO_VERSION}
USER root
# libgcc: libgcc_s.so.1 (unwinding); libcrypto3: the certificate shim (cert.c); musl-utils:
# ldd, for the self-test (normally there already).
RUN apk add --no-cache libgcc libcrypto3 musl-utils
COPY --from=build /out/libmqttguard.so /usr/lib/libmqttguard.so
COPY --from=build /out/mqttguard /usr/bin/mqttguard
COPY --from=build /out/alpine-release /tmp/build-alpine-release
COPY examples/docker/config/ /mosquitto/config/
COPY examples/docker/selftest.sh /usr/local/lib/mqttguard-selftest.sh
RUN if [ "$(cut -d. -f1,2 /tmp/build-alpine-release)" != "$(cut -d. -f1,2 /etc/alpine-release)" ]; then \
      echo "plugin built on Alpine $(cat /tmp/build-alpine-release), image is $(cat /etc/alpine-release)" >&2; \
      exit 1; \
    fi \
 && rm /tmp/build-alpine-release \
 && chmod 0755 /usr/lib/libmqttguard.so /usr/bin/mqttguard \
 && mkdir -p /mosquitto/data /mosquitto/log \
 && chown -R mosquitto:mosquitto /mosquitto \
 && chmod 0600 /mosquitto/config/passwd
USER 1883:1883
# Fails the build unless the plugin and the command load here and the default config is clean.
RUN sh /usr/local/lib/mqttguard-selftest.sh
# The eclipse-mosquitto entrypoint and CMD are kept: mosquitto -c /mosquitto/config/mosquitto.conf
