"""The store's settings: durations, feature logging, the database URL."""

from __future__ import annotations

import sys

import pytest

from dethrone.settings import Settings
from dethrone.store.durations import parse_duration, parse_log_features


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 2_592_000.0),
        ("12h", 43_200.0),
        ("90m", 5_400.0),
        ("45s", 45.0),
        ("2w", 1_209_600.0),
        ("1.5h", 5_400.0),
        (" 7D ", 604_800.0),
        ("600", 600.0),
        (60, 60.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0d", "-1d", "d", "30x", "1d2h", "abc"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="FEEDBACK_MAX_AGE"):
        parse_duration(text, name="FEEDBACK_MAX_AGE")


@pytest.mark.parametrize(
    ("text", "share"), [("all", 1.0), ("NONE", 0.0), ("0.25", 0.25), ("1", 1.0), ("0", 0.0)]
)
def test_parse_log_features(text, share):
    assert parse_log_features(text) == share


@pytest.mark.parametrize("text", ["some", "1.5", "-0.1", ""])
def test_parse_log_features_refuses(text):
    with pytest.raises(ValueError, match="SERVING_LOG_FEATURES"):
        parse_log_features(text)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"LOG_FLUSH_SECONDS": "0"}, "LOG_FLUSH_SECONDS"),
        ({"LOG_BUFFER_ROWS": "0"}, "LOG_BUFFER_ROWS"),
        ({"SERVING_LOG_FEATURES": "half"}, "SERVING_LOG_FEATURES"),
        ({"FEEDBACK_MAX_AGE": "soon"}, "FEEDBACK_MAX_AGE"),
    ],
)
def test_settings_name_the_bad_variable(env, name):
    with pytest.raises(ValueError, match=name):
        Settings.from_env(env)


def test_database_url_defaults_to_the_sqlite_file(tmp_path):
    from dethrone.store import database_url

    settings = Settings.from_env({"ROUTER_DATA_DIR": str(tmp_path)})
    assert database_url(settings) == f"sqlite:///{tmp_path}/router.sqlite3"
    url = "postgresql+psycopg://u:p@db/x"
    assert database_url(settings.replace(router_database_url=url)) == url


def test_settings_do_not_import_the_database_stack():
    import subprocess

    code = (
        "import sys, dethrone.settings as s; s.Settings.from_env({}); "
        "print('sqlalchemy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
