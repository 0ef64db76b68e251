# jenkins-sei-agent: `run` as a long-running container beside Jenkins.
#   docker build -t jenkins-sei-agent .
#   docker run -d --env-file agent.env -v sei-agent-state:/var/lib/jenkins-sei-agent \
#     -p 9464:9464 jenkins-sei-agent
# Settings come from the environment (README, "Settings"); secrets too, never baked in.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the agent and every dependency as wheels ------------------------------------------
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# -- run: wheels installed offline, no compilers, no build tools, not root ---------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AGENT_STATE_FILE=/var/lib/jenkins-sei-agent/agent-state.json \
    AGENT_HTTP_PORT=9464 \
    AGENT_LOG_FORMAT=json
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/jenkins_sei_agent-*.whl \
    && groupadd --system --gid 10001 agent \
    && useradd --system --uid 10001 --gid agent --no-create-home \
        --home-dir /var/lib/jenkins-sei-agent agent \
    && mkdir -p /var/lib/jenkins-sei-agent \
    && chown agent:agent /var/lib/jenkins-sei-agent
WORKDIR /var/lib/jenkins-sei-agent
USER 10001:10001
VOLUME ["/var/lib/jenkins-sei-agent"]
EXPOSE 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "agent.service.healthcheck"]
ENTRYPOINT ["jenkins-sei-agent"]
CMD ["run"]
