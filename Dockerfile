# syntax=docker/dockerfile:1
# The bot as a container: `docker compose up` (compose.yaml) runs it with PostgreSQL.
# No secret is baked in: every setting (docs/CONFIGURATION.md) comes from the environment.

# Build stage: install the package and its dependencies into a virtual environment.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY catalog ./catalog
COPY storage ./storage
RUN /opt/venv/bin/pip install --no-cache-dir .

# Run stage: the interpreter, the virtual environment, a user without privileges.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=3000
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /app bot
COPY --from=build /opt/venv /opt/venv
# The working directory is the user's own: the default DATABASE_URL (SQLite, gpu_bot.db) is
# written here; compose.yaml uses PostgreSQL instead.
WORKDIR /app
USER 10001:10001
EXPOSE 3000
# GET /healthz answers 200 when the bot can serve (docs/CONFIGURATION.md); python, since the
# slim image has no curl. urlopen raises on a 503, so the check fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
CMD ["python", "-m", "bot"]
