"""The deployment files, validated as far as this machine allows (no Docker engine here): the compose
file parses and names real commands, variables and files; the Dockerfile copies what the package
needs; the systemd units pass `systemd-analyze verify` and start real commands; the Prometheus,
Alertmanager and Grafana files for compose are valid and equal to the repository's; the PostgreSQL
init script and the backup procedure of docs/operations.md run for real."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
import yaml
from conftest import drop_database, new_database
from factories import make_call
from systools import require

from ccanalytics.auth import logins
from ccanalytics.auth import users as auth
from ccanalytics.cli.root import main
from ccanalytics.core.config import Settings
from ccanalytics.db import sqlfiles
from ccanalytics.db.engine import create_engine
from ccanalytics.ingest.load import ingest_records

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OUR_IMAGE = "ccanalytics:latest"
IMAGE_ROOT = "/opt/ccanalytics"
SETTINGS = {f"CCA_{name.upper()}" for name in Settings.model_fields}
DOCS = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
# every table of the call processor's schema (sql/processor/schema.sql), which ccanalytics does not own
CALL_PROCESSOR_TABLES = set(re.findall(r"^CREATE TABLE (\w+)", sqlfiles.processor_schema(), re.M))


# ------------------------------------------------------------------------------------- helpers
def resolve_cli(args: list[str]) -> click.Command:
    """The ``ccanalytics`` command ``args`` names; its options are parsed, so an unknown option or
    a bad value fails here as it would at start."""
    command: click.Command = main
    rest = list(args)
    name = "ccanalytics"
    while isinstance(command, click.Group):
        assert rest, f"{args}: no subcommand"
        name = rest.pop(0)
        assert name in command.commands, f"{args}: no command {name!r} (have {sorted(command.commands)})"
        command = command.commands[name]
    command.make_context(name, rest)
    return command


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def image_files() -> dict[str, Path]:
    """Image path → repository path of everything the Dockerfile COPYs."""
    workdir, files = "/", {}
    for instruction, args in dockerfile():
        if instruction == "WORKDIR":
            workdir = args
        elif instruction == "COPY" and not args.startswith("--from"):
            *sources, dest = args.split()
            base = dest if dest.startswith("/") else os.path.normpath(os.path.join(workdir, dest))
            for src in sources:
                target = base if len(sources) == 1 and not dest.endswith("/") else os.path.join(base, src)
                files[target] = ROOT / src
    return files


def in_image(path: str) -> Path | None:
    """The repository file behind an image path, or None."""
    for target, source in image_files().items():
        if path == target:
            return source
        if path.startswith(target + "/") and source.is_dir():
            return source / path[len(target) + 1 :]
    return None


def env_example() -> tuple[dict[str, str], dict[str, str]]:
    """(assigned, commented-out) variables of deploy/env.example, quotes removed."""
    assigned, commented = {}, {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        m = re.match(r"^(#?)([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            value = m.group(3)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            (commented if m.group(1) else assigned)[m.group(2)] = value
    return assigned, commented


def documented(name: str) -> bool:
    return f"`{name}`" in DOCS


def is_ours(service: dict) -> bool:
    return service.get("image") == OUR_IMAGE


def compose_variables() -> set[str]:
    """Every variable compose passes to a container or interpolates."""
    names = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (DEPLOY / "docker-compose.yml").read_text()))
    for service in SERVICES.values():
        env = service.get("environment") or {}
        names |= set(env) if isinstance(env, dict) else {e.split("=", 1)[0] for e in env}
    return names


# ---------------------------------------------------------------------------------- compose
def test_compose_has_the_production_services():
    assert set(SERVICES) == {
        "postgres",
        "admin",
        "scheduler",
        "exporter",
        "prometheus",
        "alertmanager-config",
        "alertmanager",
        "grafana",
    }
    for name in ("admin", "scheduler", "exporter", "alertmanager-config"):
        service = SERVICES[name]
        assert is_ours(service) and service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert service["env_file"] == [".env"], name  # secrets from the environment file only
    for name, service in SERVICES.items():
        assert (":" in service["image"] and not service["image"].endswith(":latest")) or is_ours(service), name
        assert service.get("restart") in ("unless-stopped", "no"), name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} must stay behind the proxy"
    # nothing waits for a healthy database: the processes wait by themselves (tests/test_db_down.py)
    for name in ("admin", "scheduler", "exporter"):
        assert SERVICES[name]["depends_on"] == {"postgres": {"condition": "service_started"}}


def test_every_command_is_a_real_ccanalytics_command_or_image_binary():
    entrypoint = json.loads(next(a for i, a in dockerfile() if i == "ENTRYPOINT"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["ccanalytics"] and "ccanalytics" in scripts
    seen = set()
    for name, service in SERVICES.items():
        if not is_ours(service):
            continue
        if "entrypoint" in service:
            binary, script = service["entrypoint"]
            assert binary == "python", name
            assert in_image(script) is not None and in_image(script).is_file(), f"{name}: {script} is not in the image"
            for arg in service["command"]:
                if arg.startswith(IMAGE_ROOT + "/prometheus/"):
                    assert in_image(arg).is_file(), f"{name}: {arg}"
            continue
        command = resolve_cli(service["command"])
        seen.add(command.name)
    assert seen == {"serve", "scheduler", "exporter"}


def test_official_images_get_flags_their_binaries_know():
    for service, binary in (("prometheus", "prometheus"), ("alertmanager", "prometheus-alertmanager")):
        res = subprocess.run([require(binary), "--help"], capture_output=True, text=True)
        help_text = res.stdout + res.stderr
        for arg in SERVICES[service]["command"]:
            flag = arg.split("=", 1)[0]
            assert re.search(rf"\s{re.escape(flag)}[=\s]", help_text), f"{service}: unknown flag {flag}"
    pg_isready = shutil.which("pg_isready") or str(Path(sys.executable).parent / "pg_isready")
    test = SERVICES["postgres"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    if os.path.exists(pg_isready):
        help_text = subprocess.run([pg_isready, "--help"], capture_output=True, text=True).stdout
        for arg in test[2:]:
            if arg.startswith("--"):
                assert arg in help_text, arg


def test_healthchecks_probe_real_endpoints(engine):
    from webapp import create_app

    app = create_app({"ENGINE": engine, "TESTING": True})
    client = app.test_client()
    for name, path in (("admin", "/healthz"),):
        check = SERVICES[name]["healthcheck"]["test"]
        assert check[:3] == ["CMD", "python", "-c"] and f":8050{path}'" in check[3]
        assert client.get(path).status_code == 200
    assert ":9108/metrics'" in SERVICES["exporter"]["healthcheck"]["test"][3]


def test_mounted_files_exist_and_volumes_are_declared():
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_every_variable_is_a_setting_or_documented():
    assigned, commented = env_example()
    names = compose_variables() | set(assigned) | set(commented)
    undocumented = sorted(n for n in names if n not in SETTINGS and not documented(n))
    assert not undocumented, f"document these in docs/deployment.md: {undocumented}"
    # what compose requires (${X:?…}) and what the Alertmanager template needs is in env.example
    text = (DEPLOY / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    template = set(re.findall(r"\$\{([A-Z0-9_]+)\}", (ROOT / "prometheus" / "alertmanager.yml.tmpl").read_text()))
    assert required | template <= set(assigned)


def test_env_example_lists_every_setting_with_valid_values(monkeypatch):
    assigned, commented = env_example()
    missing = sorted(SETTINGS - set(assigned) - set(commented))
    assert not missing, f"add these settings to deploy/env.example: {missing}"
    for name in [n for n in os.environ if n.startswith("CCA_")]:
        monkeypatch.delenv(name)
    for name, value in assigned.items():
        monkeypatch.setenv(name, value)
    settings = Settings()  # every value given parses
    assert settings.cookie_secure and settings.trusted_proxies == 1 and settings.email_to == ["ops@shop.example"]

    # a commented-out line shows the default, unless the default is empty (then it is an example)
    def default(name: str):
        return Settings.model_fields[name[4:].lower()].get_default(call_default_factory=True)

    shown = {n: v for n, v in commented.items() if n in SETTINGS and n not in assigned and default(n) is not None}
    for name, value in shown.items():
        monkeypatch.setenv(name, value)
    parsed = Settings()
    for name, value in shown.items():
        assert getattr(parsed, name[4:].lower()) == default(name), f"env.example shows {name}={value}: not the default"
    # placeholders only: nothing that looks like a real secret
    for name in ("CCA_SECRET_KEY", "CCA_SMTP_PASSWORD", "CCA_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert "change-me" in assigned[name], name
    assert "change-me" in assigned["CCA_TELEGRAM_BOT_TOKEN"] and assigned["CCA_JUDGE_API_KEY"] == ""


# ---------------------------------------------------------------------------------- Dockerfile
def test_dockerfile_copies_what_the_package_needs():
    steps = dockerfile()
    base = next(a for i, a in steps if i == "FROM")
    assert re.match(r"^python:3\.1[1-9]-slim", base), base
    install = next(n for n, (i, a) in enumerate(steps) if i == "RUN" and "pip install ." in a)
    copied = {}
    for n, (instruction, args) in enumerate(steps):
        if instruction == "COPY":
            *sources, _ = args.split()
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
                copied[src.rstrip("/")] = n
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    roots = {p.split(".")[0] for p in setuptools["packages"]} - set(setuptools.get("package-dir", {}))
    roots |= set(setuptools.get("package-dir", {}).values())
    roots |= {"pyproject.toml", pyproject["project"]["readme"]}
    for root in roots:
        assert root in copied and copied[root] < install, f"{root} must be copied before pip install"
    user = [a for i, a in steps if i == "USER"]
    assert user and user[-1] not in ("root", "0")
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".ccanalytics", "deploy/.env"} <= set(ignore)


# ------------------------------------------------------------------------- monitoring configuration
def test_compose_prometheus_config_is_the_repository_one_with_service_targets(tmp_path):
    ours = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    repo = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    targets = {"127.0.0.1:9093": "alertmanager:9093", "127.0.0.1:9108": "exporter:9108"}

    def retarget(cfg):
        text = json.dumps(cfg)
        for a, b in targets.items():
            text = text.replace(a, b)
        return json.loads(text.replace("127.0.0.1:9109", "host.docker.internal:9109"))

    assert retarget(repo) == ours
    shutil.copy(DEPLOY / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(ROOT / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    res = subprocess.run(
        [require("promtool"), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_compose_grafana_datasources_differ_only_in_sslmode():
    ours = yaml.safe_load((DEPLOY / "grafana-datasources.yml").read_text())
    repo = yaml.safe_load((ROOT / "grafana" / "provisioning" / "datasources" / "ccanalytics.yml").read_text())
    assert repo["datasources"][1]["jsonData"]["sslmode"] == "require"
    repo["datasources"][1]["jsonData"]["sslmode"] = "disable"
    assert ours == repo
    grafana_env = SERVICES["grafana"]["environment"]
    used = set(re.findall(r"\$\{([A-Z0-9_]+)\}", (DEPLOY / "grafana-datasources.yml").read_text()))
    assert used <= set(grafana_env)
    provider = yaml.safe_load((ROOT / "grafana" / "provisioning" / "dashboards" / "ccanalytics.yml").read_text())
    mounts = dict(
        v.rsplit(":", 2)[:2] if v.endswith(":ro") else v.split(":", 1) for v in SERVICES["grafana"]["volumes"]
    )
    assert mounts["../grafana/dashboards"] == provider["providers"][0]["options"]["path"]


def test_alertmanager_config_renders_from_env_example_and_is_valid(tmp_path):
    assigned, _ = env_example()
    service = SERVICES["alertmanager-config"]
    script = in_image(service["entrypoint"][1])
    template = in_image(service["command"][0])
    out = tmp_path / "rendered" / "alertmanager.yml"
    res = subprocess.run(
        [sys.executable, str(script), str(template), str(out)], env={"PATH": os.environ["PATH"], **assigned}, text=True
    )
    assert res.returncode == 0 and out.is_file()
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    check = subprocess.run([require("amtool"), "check-config", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "change-me" in out.read_text() and "${" not in out.read_text()
    # the rendered path is what Alertmanager reads
    volume = next(v for v in SERVICES["alertmanager"]["volumes"] if v.startswith("alertmanager-config:"))
    mounted_at = volume.split(":")[1]
    assert f"--config.file={mounted_at}/alertmanager.yml" in SERVICES["alertmanager"]["command"]
    assert service["command"][1] == service["volumes"][0].split(":")[1] + "/alertmanager.yml"
    # a missing variable stops it, naming every one
    partial = {k: v for k, v in assigned.items() if k not in ("CCA_SMTP_SMARTHOST", "CCA_TELEGRAM_CHAT_ID")}
    res = subprocess.run(
        [sys.executable, str(script), str(template), str(tmp_path / "x.yml")],
        env={"PATH": os.environ["PATH"], **partial},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "CCA_SMTP_SMARTHOST, CCA_TELEGRAM_CHAT_ID" in res.stderr
    assert not (tmp_path / "x.yml").exists()


# ------------------------------------------------------------------------------------- systemd
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read(path)
    return parser


def test_units_start_real_commands():
    started = {}
    for path in UNITS:
        unit = read_unit(path)
        service = unit["Service"]
        argv = shlex.split(service["ExecStart"])
        assert argv[0] == "/opt/ccanalytics/.venv/bin/ccanalytics", path.name
        started[path.name] = resolve_cli(argv[1:]).name
        assert service["User"] == "cca" and service["EnvironmentFile"] == "/etc/ccanalytics/ccanalytics.env"
        assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGINT"
        assert "Requires" not in unit["Unit"]  # they start without their database
        assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert started == {
        "ccanalytics-admin.service": "serve",
        "ccanalytics-exporter.service": "exporter",
        "ccanalytics-scheduler.service": "scheduler",
    }


def test_units_pass_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze not found: install the Debian package systemd")
    cli = str(Path(sys.executable).parent / "ccanalytics")
    for path in UNITS:  # the real binary instead of /opt/…, the environment file optional
        text = path.read_text().replace("/opt/ccanalytics/.venv/bin/ccanalytics", cli)
        (tmp_path / path.name).write_text(text.replace("EnvironmentFile=", "EnvironmentFile=-"))
    res = subprocess.run(
        [tool, "verify", *(str(tmp_path / p.name) for p in UNITS)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and not res.stderr.strip() and not res.stdout.strip(), res.stdout + res.stderr


# ------------------------------------------------------------------------- PostgreSQL for real
def _psql_env(url: str) -> tuple[str, str]:
    """(socket directory, database name) of a test database URL."""
    m = re.match(r"^postgresql\+psycopg://postgres:?@/(?P<db>[^?]+)\?host=(?P<host>.+)$", url)
    assert m, url
    return m["host"], m["db"]


def _pg_bin(name: str) -> str:
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)


# Grafana's database role (the init script and the documented grant): tests/test_grafana_grants.py


def _board(name: str) -> dict:
    return json.loads((ROOT / "grafana" / "dashboards" / name).read_text(encoding="utf-8"))


def test_every_panel_on_daily_figures_or_calls_follows_the_tenant_variable(tmp_path):
    """The dashboards scope their daily figures and calls by the tenant variable «Сеть» («Все сети» = '*',
    or a tenant's slug); a panel that ignores it, one that reads the every-tenant table, or a dashboard
    without the variable fails the check."""
    from ccanalytics.ops import dashtenants

    boards = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
    assert dashtenants.tenant_problems(boards) == []
    analytics = _board("cca-analytics.json")
    variable = analytics["templating"]["list"][0]
    assert (variable["name"], variable["label"], variable["current"]) == (
        "tenant",
        "Сеть",
        {"text": "Все сети", "value": "*"},
    )
    sql_panels = [p for p in analytics["panels"] if p["datasource"]["type"] == "postgres"]
    assert len(sql_panels) == 13 and all("$tenant" in t["rawSql"] for p in sql_panels for t in p["targets"])

    def problems_of(board: dict) -> list[str]:
        path = tmp_path / "board.json"
        path.write_text(json.dumps(board, ensure_ascii=False), encoding="utf-8")
        return [p.message for p in dashtenants.tenant_problems([path])]

    ignoring = json.loads(json.dumps(analytics))
    target = ignoring["panels"][0]["targets"][0]
    target["rawSql"] = target["rawSql"].replace("tenant = '$tenant' AND ", "")
    assert problems_of(ignoring) == ["reads daily figures or calls but ignores the tenant variable ($tenant)"]
    commented = json.loads(json.dumps(ignoring))
    commented["panels"][0]["targets"][0]["rawSql"] += " -- tenant = '$tenant'"
    assert problems_of(commented) == problems_of(ignoring)  # a comment is no filter
    every_only = json.loads(json.dumps(analytics))
    target = every_only["panels"][1]["targets"][0]
    target["rawSql"] = target["rawSql"].replace("FROM cca_daily_stats_by_tenant", "FROM cca_daily_stats")
    assert problems_of(every_only) == ["reads cca_daily_stats (every tenant only): read cca_daily_stats_by_tenant"]
    calls = json.loads(json.dumps(analytics))
    target = calls["panels"][-1]["targets"][0]
    target["rawSql"] = target["rawSql"].replace(" AND ('$tenant' = '*' OR c.tenant = '$tenant')", "")
    assert problems_of(calls) == ["reads daily figures or calls but ignores the tenant variable ($tenant)"]
    no_variable = json.loads(json.dumps(analytics))
    no_variable["templating"]["list"] = []
    assert problems_of(no_variable) == ["the dashboard reads daily figures or calls but has no tenant variable"]
    multi = json.loads(json.dumps(analytics))
    multi["templating"]["list"][0].update(multi=True, current={"text": "All", "value": "$__all"})
    assert problems_of(multi) == [
        "the tenant variable must be one value at a time (no multi, no «All»); current value «Все сети» = '*'"
    ]


def _documented_backup_tables() -> list[str]:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    block = text.split("<!-- our-tables -->", 1)[1].split("<!-- /our-tables -->", 1)[0]
    return re.findall(r"-t (\w+)", block)


def test_the_documented_table_list_is_every_table_ccanalytics_writes(engine):
    with engine.connect() as conn:
        tables = set(
            conn.execute(
                sa.text(
                    "SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace(current_schema()) "
                    "AND relkind IN ('r', 'p') AND NOT relispartition"
                )
            ).scalars()
        )
    documented_tables = _documented_backup_tables()
    assert len(documented_tables) == len(set(documented_tables))
    assert set(documented_tables) == tables - CALL_PROCESSOR_TABLES - {"cca_schema_migrations"}, (
        "docs/operations.md: the -t list of our tables must name every table the migrations create, "
        "except the call processor's and cca_schema_migrations"
    )


def test_backup_and_restore_as_documented(pg_server, template_db, engine, db_url, tmp_path):
    """Whole database: pg_dump -Fc, pg_restore into a new database. Our tables only: a data-only dump
    restored into a freshly migrated database."""
    ingest_records(engine, [make_call(caller_id=None) for _ in range(3)])
    auth.add_user(engine, "olena", "correct horse battery staple", "admin")
    host, db = _psql_env(db_url)
    env = {**os.environ, "PGHOST": host, "PGUSER": "postgres"}
    dump = tmp_path / "ccanalytics.dump"
    subprocess.run([_pg_bin("pg_dump"), "-Fc", "--no-owner", "-d", db, "-f", str(dump)], env=env, check=True)
    restored = "r_" + db[2:]
    subprocess.run([_pg_bin("createdb"), restored], env=env, check=True)
    try:
        subprocess.run([_pg_bin("pg_restore"), "--no-owner", "-d", restored, str(dump)], env=env, check=True)
        url = db_url.replace(f"/{db}?", f"/{restored}?")
        res = subprocess.run(
            [str(Path(sys.executable).parent / "ccanalytics"), "db", "status"],
            env={**os.environ, "CCA_DATABASE_URL": url},
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        other = create_engine(url, pool_size=1)
        with other.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one() == 3
        assert logins.login(other, "olena", "correct horse battery staple").username == "olena"
        other.dispose()
    finally:
        drop_database(pg_server, restored)

    # our tables only (a database shared with the call processor)
    tables = _documented_backup_tables()
    ours = tmp_path / "ours.dump"
    args = [a for t in tables for a in ("-t", t)]
    subprocess.run(
        [_pg_bin("pg_dump"), "-Fc", "--data-only", "--no-owner", *args, "-d", db, "-f", str(ours)], env=env, check=True
    )
    name, fresh_url = new_database(pg_server, template_db)  # what `ccanalytics db migrate` leaves
    try:
        subprocess.run([_pg_bin("pg_restore"), "--data-only", "--no-owner", "-d", name, str(ours)], env=env, check=True)
        fresh = create_engine("postgresql+psycopg" + fresh_url[len("postgresql") :], pool_size=1)
        assert logins.login(fresh, "olena", "correct horse battery staple").username == "olena"
        with fresh.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 1
        fresh.dispose()
    finally:
        drop_database(pg_server, name)
