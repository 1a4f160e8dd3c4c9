# One image for every sid-tokens process; docker-compose.yml picks the command.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH="/app/.venv/bin:$PATH"

RUN pip install --no-cache-dir uv \
    && useradd --create-home --uid 10001 sidtokens

WORKDIR /app

# Dependencies first, from the lock file alone, so code changes reuse this layer.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project

COPY shared ./shared
COPY web ./web
COPY worker ./worker
COPY simulator ./simulator
COPY gunicorn.conf.py Procfile ./
RUN uv sync --locked --no-dev && chown -R sidtokens /app

USER sidtokens
EXPOSE 5000 8700 9808
CMD ["gunicorn", "web:create_app()"]
