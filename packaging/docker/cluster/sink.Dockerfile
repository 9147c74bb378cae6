# The demo cluster's downstream: Debian with python3, running the recording
# SMTP sink tests/docker/sink.py (mounted by packaging/docker-compose.cluster.yml).
# Builds FROM the same base image as mxgate, so it needs no image registry
# where packaging/docker/build-base-images.sh made that base locally.
#
#   docker build --network host -t mxgate-test-sink \
#       -f packaging/docker/cluster/sink.Dockerfile packaging/docker/cluster
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="mxgate-test-sink"
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3; \
    rm -rf /var/lib/apt/lists/*; \
    install -d -o 65534 -g 65534 -m 0755 /srv/mail
# Any user may bind port 2525; the sink needs no privilege at all.
USER 65534:65534
VOLUME /srv/mail
EXPOSE 2525
CMD ["python3", "/usr/local/bin/sink.py", "--listen", "0.0.0.0", "--port", "2525", "--dir", "/srv/mail"]
