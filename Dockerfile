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
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir .
ENV NEXUS_DATA_DIR=/data HF_HUB_OFFLINE=1 MEM0_TELEMETRY=False
ENTRYPOINT ["nexus"]
