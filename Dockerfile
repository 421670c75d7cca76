# Midas service image. Needs a PostgreSQL: set MIDAS_DATABASE_URL (the embedded
# server is for development machines, not containers). One image, three roles (the
# settings each needs: docs/deployment.md): service nodes run the default command, the
# worker runs `midas worker`, and `midas migrate` applies migrations ahead of a release.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MIDAS_HOST=0.0.0.0 MIDAS_PORT=8080 MIDAS_ENVIRONMENT=production
WORKDIR /app

COPY setup.cfg pyproject.toml README.md ./
COPY midas ./midas
COPY commands ./commands
COPY queries ./queries
COPY projections ./projections
COPY process_managers ./process_managers
COPY migrations ./migrations
RUN pip install --no-cache-dir -e . \
    && useradd --system --home /app midas
USER midas

EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health').status != 200)"
CMD ["midas", "serve", "--workers", "2"]
