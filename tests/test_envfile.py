"""`.env` is read by manage.py (so by `make run`): its values reach the settings, the
environment wins, a bare KEY= keeps the default, and .env.example itself is a working .env."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prepaid import envfile

ROOT = Path(__file__).resolve().parent.parent


def test_the_format_of_env_example():
    values = envfile.parse("# a comment\n\nexport A=1\nB = two words \nC=\nD=\"\"\nE='quoted # not a comment'\nF=x=y\n")
    assert values == {"A": "1", "B": "two words", "D": "", "E": "quoted # not a comment", "F": "x=y"}


@pytest.mark.parametrize("line", ["JUST_A_WORD", "1ABC=x", "A B=c"])
def test_a_line_that_is_not_key_value_is_refused_with_its_number(line):
    with pytest.raises(envfile.EnvFileError, match="line 2"):
        envfile.parse(f"OK=1\n{line}\n")


def test_the_environment_wins_over_the_file(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_text("PREPAID_T_ONE=from-file\nPREPAID_T_TWO=from-file\n")
    monkeypatch.setenv("PREPAID_T_ONE", "from-env")
    monkeypatch.delenv("PREPAID_T_TWO", raising=False)
    assert envfile.load(path) == ["PREPAID_T_TWO"]
    assert (os.environ["PREPAID_T_ONE"], os.environ["PREPAID_T_TWO"]) == ("from-env", "from-file")
    monkeypatch.delenv("PREPAID_T_TWO")
    assert envfile.load(tmp_path / "missing") == []


def _settings_seen(env_file: Path, **env) -> str:
    """What a manage.py command sees: the site URL and the metrics token, through `.env`."""
    base = {"PATH": "/usr/bin:/bin", "ENV_FILE": str(env_file), "VAR_DIR": str(ROOT / "var" / "test"), **env}
    code = "from django.conf import settings; print(settings.SITE_URL, settings.VEHICLE_REDIRECT_URI)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_manage_py_reads_env_and_the_site_follows_web_port(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("WEB_PORT=8123\n")
    assert _settings_seen(env_file) == "http://127.0.0.1:8123 http://127.0.0.1:8123/vehicles/connect/callback/"
    assert _settings_seen(env_file, WEB_PORT="9000").startswith("http://127.0.0.1:9000 ")
    env_file.write_text("WEB_PORT=8123\nSITE_URL=https://charge.example.com\n")
    assert (
        _settings_seen(env_file) == "https://charge.example.com https://charge.example.com/vehicles/connect/callback/"
    )


def test_env_example_copied_as_it_is_runs_the_development_stack(tmp_path):
    """The newcomer's first step: `cp .env.example .env`, change a port, `make run`."""
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text().replace("WEB_PORT=8000", "WEB_PORT=8765"))
    assert _settings_seen(env_file) == "http://127.0.0.1:8765 http://127.0.0.1:8765/vehicles/connect/callback/"
