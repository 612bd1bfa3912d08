# One image for the API and every worker; docker-compose.yml picks the command.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg libchromaprint1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY nexus nexus
COPY api api
COPY workflows workflows
COPY activities activities
COPY workers workers
COPY models models
COPY migrations migrations
# Editable, so the code runs from /app: `nexus migrate` finds alembic.ini and migrations/ next to the package
# (they are not part of the wheel, and a site-packages install fails with "Path doesn't exist").
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir -e .
# The compose health checks (no curl in the image, and workers serve no HTTP); after pip, so editing them
# does not reinstall everything.
COPY deploy/healthcheck.py deploy/healthcheck.py
ENV NEXUS_DATA_DIR=/data HF_HUB_OFFLINE=1 MEM0_TELEMETRY=False
ENTRYPOINT ["nexus"]
