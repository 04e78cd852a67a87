# Identity service image: the `identity-server` command and the `server` extra
# (boto3, pyjwt, cryptography, grpcio-health-checking, grpcio-reflection,
# prometheus-client), nothing else. The local Cognito (moto) and the dev tools
# are not in it. See docs/production.md.
#
# Build: docker build -t identity-service .

# --- builder: a venv with the project and its server extra -----------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY client/ client/
COPY server/ server/
COPY triggers/ triggers/
# constraints.txt pins every dependency to the versions CI tests with.
RUN /opt/venv/bin/pip install --no-cache-dir -c constraints.txt '.[server]'

# --- runtime: the venv only, as a non-root user -----------------------------
FROM python:3.11-slim-bookworm

RUN groupadd --system --gid 10001 identity \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin identity

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Configuration comes from the environment (docs/production.md lists it all):
#   COGNITO_USER_POOL_ID      required, e.g. eu-west-1_AbCdEf123
#   COGNITO_CLIENT_ID         required, the app client for the auth flows
#   COGNITO_CLIENT_SECRET_ID  optional, Secrets Manager id of the app client secret
#   IDENTITY_TLS_CERT, IDENTITY_TLS_KEY   PEM files mounted into the container;
#                             required here: on 0.0.0.0 the server refuses to
#                             start without TLS
#   IDENTITY_TLS_CLIENT_CA    optional; set it and every client needs a certificate
#                             from this CA (mTLS)
#   IDENTITY_METRICS_LISTEN   optional host:port for Prometheus /metrics; off if unset
# AWS credentials come from the platform (task role, IRSA, instance profile),
# never from the image.
ENV IDENTITY_LISTEN=0.0.0.0:50051

EXPOSE 50051

USER 10001:10001

# gRPC health check of the whole server (service ""), to localhost on the port
# of IDENTITY_LISTEN. With IDENTITY_TLS_CERT set it speaks TLS and trusts the
# certificate(s) in that file, so the server certificate must name "localhost"
# (a DNS SAN). With IDENTITY_TLS_CLIENT_CA set it presents IDENTITY_TLS_CERT/KEY
# as its client certificate, which passes only if that CA issued the server
# certificate and the certificate allows clientAuth. Without TLS it uses
# plaintext, which the server allows only on a loopback IDENTITY_LISTEN.
# tests/unit/test_tls.py runs this exact command against real TLS servers.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os,sys,grpc;from grpc_health.v1 import health_pb2 as h,health_pb2_grpc as g;e=os.environ.get;r=lambda n:open(e(n),'rb').read();port=e('IDENTITY_LISTEN','127.0.0.1:50051').rsplit(':',1)[1];c=grpc.secure_channel('localhost:'+port,grpc.ssl_channel_credentials(r('IDENTITY_TLS_CERT'),*((r('IDENTITY_TLS_KEY'),r('IDENTITY_TLS_CERT')) if e('IDENTITY_TLS_CLIENT_CA') else ()))) if e('IDENTITY_TLS_CERT') else grpc.insecure_channel('localhost:'+port);sys.exit(0 if g.HealthStub(c).Check(h.HealthCheckRequest(),timeout=5).status==h.HealthCheckResponse.SERVING else 1)"]

ENTRYPOINT ["identity-server"]
