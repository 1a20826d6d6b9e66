# Multi-stage images for the config manager and the two workers (compose.yml picks a target).
# Every runtime image runs as the unprivileged user `app` (uid 1883, the same uid as the
# eclipse-mosquitto image's user, so files generated for the broker are readable by it).

# The web editor's bundle (editor/ -> config_manager/static), packaged into the wheel.
FROM node:20-bookworm-slim AS editor
WORKDIR /src/editor
COPY editor/package.json editor/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY editor ./
RUN npm run build

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY config_lib config_lib
COPY config_manager config_manager
COPY --from=editor /src/config_manager/static config_manager/static
COPY workers workers
RUN pip install --no-cache-dir -c constraints.txt --upgrade pip \
 && pip wheel --no-cache-dir -c constraints.txt --build-constraint constraints.txt \
    --wheel-dir /wheels ".[manager,stt,orchestrator]"

FROM python:3.11-slim AS runtime
ARG EXTRAS=manager
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    CONFIG_MANAGER_MOSQUITTO_TEMPLATES=/app/mosquitto
RUN useradd --uid 1883 --user-group --create-home app \
 && mkdir -p /data /export/broker /export/stt /export/orchestrator /app \
 && chown -R app:app /data /export /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "signed-config[${EXTRAS}]" \
 && rm -rf /wheels
COPY --chown=app:app mosquitto /app/mosquitto
WORKDIR /app
USER app

FROM runtime AS manager
EXPOSE 8081
CMD ["python", "-m", "config_manager", "serve"]

FROM runtime AS stt
CMD ["python", "-m", "workers.stt"]

FROM runtime AS orchestrator
CMD ["python", "-m", "workers.orchestrator"]
