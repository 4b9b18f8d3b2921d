"""ConfigManager: file safety, account CRUD and credential resolution order."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from mixpanel_data import (
    AccountExistsError,
    AccountNotFoundError,
    ConfigError,
    Credentials,
    ValidationError,
)
from mixpanel_data._internal.config import ConfigManager, normalize_region

SECRET = "s3cr3t-value-42"


def manager(tmp_path: Path, environ: dict[str, str] | None = None) -> ConfigManager:
    return ConfigManager(tmp_path / "cfg" / "config.toml", environ=environ or {})


def add(cm: ConfigManager, name: str, project: str = "123", **kw: str) -> None:
    cm.add_account(name, username=f"sa.{name}", secret=SECRET, project_id=project, **kw)


def test_first_write_creates_private_dir_and_file(tmp_path: Path) -> None:
    cm = manager(tmp_path)
    add(cm, "prod", region="EU")
    assert stat.S_IMODE(cm.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cm.path.parent.stat().st_mode) == 0o700
    text = cm.path.read_text()
    assert text.startswith('default = "prod"')
    assert 'region = "eu"' in text
    assert [f.name for f in cm.path.parent.iterdir()] == ["config.toml"]  # no temp files left


def test_crud_and_default_handling(tmp_path: Path) -> None:
    cm = manager(tmp_path)
    add(cm, "prod", project="1")
    add(cm, "staging", project="2")
    assert [(a.name, a.is_default) for a in cm.list_accounts()] == [
        ("prod", True),
        ("staging", False),
    ]
    cm.set_default("staging")
    assert cm.default_account() == "staging"
    with pytest.raises(AccountExistsError, match="already exists"):
        add(cm, "prod")
    cm.remove_account("staging")
    assert cm.default_account() == "prod"
    cm.remove_account("prod")
    assert cm.list_accounts() == []
    assert cm.default_account() is None
    with pytest.raises(AccountNotFoundError) as err:
        cm.remove_account("nope")
    assert err.value.exit_code == 4


def test_secret_never_in_repr_str_or_dict(tmp_path: Path) -> None:
    cm = manager(tmp_path)
    add(cm, "prod")
    creds = cm.get_account("prod")
    assert creds.secret.get_secret_value() == SECRET
    for text in (repr(creds), str(creds), str(creds.to_dict()), repr(cm.list_accounts())):
        assert SECRET not in text
    assert creds.to_dict()["secret"] == "****"
    long = Credentials(username="u", secret=SecretStr("x" * 30 + "42"), project_id="1")
    assert long.to_dict()["secret"] == "********42"


@pytest.mark.parametrize("raw", ["EU", " eu ", "Eu", "in", "US"])
def test_region_normalised(raw: str) -> None:
    assert normalize_region(raw) == raw.strip().lower()


def test_unknown_region_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="us, eu, in") as err:
        add(manager(tmp_path), "prod", region="asia")
    assert err.value.exit_code == 3


@given(st.text(max_size=8))
def test_region_accepts_only_the_three(raw: str) -> None:
    if raw.strip().lower() in ("us", "eu", "in"):
        assert normalize_region(raw) in ("us", "eu", "in")
    else:
        with pytest.raises(ValidationError):
            normalize_region(raw)


def test_symlinked_config_refused_on_read_and_write(tmp_path: Path) -> None:
    real = tmp_path / "real.toml"
    real.write_text('default = "x"\n')
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    cm = ConfigManager(link, environ={})
    with pytest.raises(ConfigError, match="symbolic link"):
        cm.list_accounts()
    with pytest.raises(ConfigError, match="symbolic link"):
        add(cm, "prod")
    assert real.read_text() == 'default = "x"\n'


def test_invalid_toml_names_file_and_line_without_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[accounts.prod]\nsecret = "{SECRET}"\nusername = \n')
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as err:
        ConfigManager(path, environ={}).list_accounts()
    assert str(path) in err.value.message
    assert "line 3" in err.value.message
    assert SECRET not in err.value.message


def test_loose_permissions_are_tightened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cm = manager(tmp_path)
    add(cm, "prod")
    os.chmod(cm.path, 0o644)
    cm.list_accounts()
    assert stat.S_IMODE(cm.path.stat().st_mode) == 0o600
    assert "tightened to 0600" in capsys.readouterr().err


# -- resolution order ---------------------------------------------------------------

ENV_FULL = {"MP_USERNAME": "env.user", "MP_SECRET": "envsecret", "MP_PROJECT_ID": "999"}


def test_explicit_account_beats_env_and_default(tmp_path: Path) -> None:
    cm = manager(tmp_path, environ=ENV_FULL)
    add(cm, "prod", project="1")
    add(cm, "other", project="2")
    creds = cm.resolve("other")
    assert (creds.project_id, creds.source, creds.account) == ("2", "config", "other")


def test_mp_account_env_counts_as_explicit(tmp_path: Path) -> None:
    cm = manager(tmp_path, environ={**ENV_FULL, "MP_ACCOUNT": "other"})
    add(cm, "prod", project="1")
    add(cm, "other", project="2")
    assert cm.resolve().project_id == "2"


def test_complete_env_beats_default(tmp_path: Path) -> None:
    cm = manager(tmp_path, environ={**ENV_FULL, "MP_REGION": " EU "})
    add(cm, "prod", project="1")
    creds = cm.resolve()
    assert (creds.username, creds.project_id, creds.region, creds.source) == (
        "env.user",
        "999",
        "eu",
        "env",
    )
    assert creds.secret.get_secret_value() == "envsecret"


@pytest.mark.parametrize(
    "env",
    [
        {"MP_USERNAME": "u", "MP_SECRET": "s"},  # no project
        {"MP_USERNAME": "u", "MP_PROJECT_ID": "1"},  # no secret
        {"MP_USERNAME": "", "MP_SECRET": "s", "MP_PROJECT_ID": "1"},  # empty username
        {"MP_USERNAME": "u", "MP_SECRET": "  ", "MP_PROJECT_ID": "1"},  # blank secret
    ],
)
def test_partial_or_empty_env_falls_back_to_default(tmp_path: Path, env: dict[str, str]) -> None:
    cm = manager(tmp_path, environ=env)
    add(cm, "prod", project="1")
    creds = cm.resolve()
    assert (creds.account, creds.project_id) == ("prod", "1")


def test_nothing_configured_says_how_to_add(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mp auth add"):
        manager(tmp_path, environ={"MP_USERNAME": "u"}).resolve()


def test_unknown_named_account(tmp_path: Path) -> None:
    cm = manager(tmp_path)
    add(cm, "prod")
    with pytest.raises(AccountNotFoundError, match="configured: prod"):
        cm.resolve("ghost")


def test_env_region_invalid_is_refused(tmp_path: Path) -> None:
    cm = manager(tmp_path, environ={**ENV_FULL, "MP_REGION": "mars"})
    with pytest.raises(ValidationError, match="unknown region 'mars'"):
        cm.resolve()


def test_credentials_validate_project_and_base_url() -> None:
    with pytest.raises(ValidationError, match="invalid project id"):
        Credentials(username="u", secret=SecretStr("s"), project_id="12a")
    with pytest.raises(ValidationError, match="invalid base_url"):
        Credentials(username="u", secret=SecretStr("s"), project_id="1", base_url="ftp://x")
    ok = Credentials(
        username="u", secret=SecretStr("s"), project_id=" 42 ", base_url="http://127.0.0.1:9/"
    )
    assert (ok.project_id, ok.base_url) == ("42", "http://127.0.0.1:9")


@pytest.mark.parametrize("secret", ["a:b", "p@ss%20word", "trailing\n", "unicodé✓"])
def test_awkward_secrets_roundtrip(tmp_path: Path, secret: str) -> None:
    cm = manager(tmp_path)
    cm.add_account("prod", username="u", secret=secret, project_id="1")
    assert cm.get_account("prod").secret.get_secret_value() == secret


@given(st.text(min_size=1, max_size=12))
def test_workspace_id_is_digits_or_refused(text: str) -> None:
    """A data view id is an integer (spec: ``workspace_id`` type integer); nothing else passes."""
    from mixpanel_data._internal.config import normalize_workspace_id

    stripped = text.strip()
    if not stripped:
        assert normalize_workspace_id(text) is None
    elif stripped.isascii() and stripped.isdigit():
        assert normalize_workspace_id(text) == stripped
    else:
        with pytest.raises(ValidationError, match="invalid workspace id"):
            normalize_workspace_id(text)


def test_workspace_id_and_kind_round_trip_through_the_config_file(tmp_path: Path) -> None:
    manager = ConfigManager(tmp_path / "c.toml", environ={})
    manager.add_account("sa", username="u", secret="s", project_id="1", workspace_id=" 42 ")
    manager.add_account("ps", secret="legacy", project_id="2", kind="PROJECT_SECRET")
    sa, ps = manager.get_account("sa"), manager.get_account("ps")
    assert (sa.kind, sa.workspace_id, sa.basic_auth) == ("service_account", "42", ("u", "s"))
    assert (ps.kind, ps.workspace_id, ps.basic_auth) == ("project_secret", None, ("legacy", ""))
    listed = {a.name: (a.kind, a.username, a.workspace_id) for a in manager.list_accounts()}
    assert listed == {"ps": ("project_secret", "", None), "sa": ("service_account", "u", "42")}
    with pytest.raises(ValidationError, match="unknown account kind 'oauth'"):
        manager.add_account("x", username="u", secret="s", project_id="1", kind="oauth")
