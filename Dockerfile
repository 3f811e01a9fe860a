# The hub on its embedded backend; set FHIRCAST_HUB_REDIS_URL to share state.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && rm -rf /app/src

ENV FHIRCAST_HUB_HOST=0.0.0.0 \
    FHIRCAST_HUB_PORT=8000
EXPOSE 8000
USER nobody

HEALTHCHECK --interval=10s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"

ENTRYPOINT ["fhircast-hub"]
CMD ["serve"]
