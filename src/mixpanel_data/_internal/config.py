"""Accounts and credentials: the config file and the resolution order.

The config file (``~/.mp/config.toml``, or ``MP_CONFIG_PATH``) looks like::

    default = "prod"

    [accounts.prod]
    username = "sa.abc123.mp-service-account"
    secret = "..."
    project_id = "12345"
    region = "eu"
    base_url = "http://127.0.0.1:8080"   # optional: a proxy or the emulator
    timezone = "Europe/Berlin"           # optional
    workspace_id = "3000001"             # optional: the data view every Query API call uses

    [accounts.legacy]                    # a project secret instead of a service account
    kind = "project_secret"
    secret = "..."
    project_id = "12345"
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from mixpanel_data.exceptions import (
    AccountExistsError,
    AccountNotFoundError,
    ConfigError,
    ValidationError,
)

REGIONS: tuple[str, ...] = ("us", "eu", "in")
DEFAULT_CONFIG_PATH = Path("~/.mp/config.toml")
SERVICE_ACCOUNT = "service_account"
PROJECT_SECRET = "project_secret"  # noqa: S105 (a kind name; legacy Basic ``<secret>:``)
KINDS: tuple[str, ...] = (SERVICE_ACCOUNT, PROJECT_SECRET)


def normalize_region(value: str) -> str:
    """Return the canonical region (``us``, ``eu`` or ``in``) or raise a ValidationError."""
    region = value.strip().lower()
    if region not in REGIONS:
        raise ValidationError(
            f"unknown region '{value.strip()}'; use one of: {', '.join(REGIONS)}", region=value
        )
    return region


def normalize_project_id(value: str | int) -> str:
    """Return the project id as a string of digits or raise a ValidationError."""
    text = str(value).strip()
    if not text.isdigit() or not text.isascii():
        raise ValidationError(
            f"invalid project id '{text}'; it is the number in your project's URL", project_id=text
        )
    return text


def normalize_base_url(value: str) -> str:
    """Check a custom API origin (a proxy or the emulator) and drop any trailing slash."""
    text = value.strip().rstrip("/")
    if not (text.startswith("http://") or text.startswith("https://")) or "@" in text:
        raise ValidationError(
            f"invalid base_url '{text}'; give an origin such as http://127.0.0.1:8080"
        )
    return text


def normalize_workspace_id(value: str | int | None) -> str | None:
    """Return a data view id (digits) or None; anything else raises a ValidationError."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if not text.isdigit() or not text.isascii():
        raise ValidationError(
            f"invalid workspace id '{text}'; it is the number after /view/ in your "
            "Mixpanel URL (the data view)",
            workspace_id=text,
        )
    return text


def normalize_kind(value: str | None) -> str:
    """Return the account kind (``service_account`` or ``project_secret``)."""
    kind = (value or SERVICE_ACCOUNT).strip().lower()
    if kind not in KINDS:
        raise ValidationError(f"unknown account kind '{value}'; use one of: {', '.join(KINDS)}")
    return kind


@dataclass(frozen=True)
class Credentials:
    """Resolved credentials for one project; the secret never appears in repr or str.

    ``kind`` is ``service_account`` (Basic ``username:secret``) or ``project_secret``
    (Basic ``secret:``, no username; deprecated by Mixpanel, contract §2).
    ``workspace_id`` is the data view sent with every Query API call.
    """

    username: str
    secret: SecretStr = field(repr=False)
    project_id: str
    region: str = "us"
    base_url: str | None = None
    timezone: str | None = None
    account: str | None = None
    source: str = "config"
    workspace_id: str | None = None
    kind: str = SERVICE_ACCOUNT

    def __post_init__(self) -> None:
        if not isinstance(self.secret, SecretStr):
            object.__setattr__(self, "secret", SecretStr(str(self.secret)))
        object.__setattr__(self, "region", normalize_region(self.region))
        object.__setattr__(self, "project_id", normalize_project_id(self.project_id))
        if self.base_url is not None:
            object.__setattr__(self, "base_url", normalize_base_url(self.base_url))
        object.__setattr__(self, "workspace_id", normalize_workspace_id(self.workspace_id))
        object.__setattr__(self, "kind", normalize_kind(self.kind))
        if self.kind == PROJECT_SECRET:
            object.__setattr__(self, "username", "")
            if ":" in self.secret.get_secret_value():
                # Basic auth sends it as the user name, which cannot hold a colon (RFC 7617).
                raise ValidationError(
                    "a project secret cannot contain ':'; check that you pasted the "
                    "project's API secret (Project Settings > Access Keys)"
                )

    @property
    def basic_auth(self) -> tuple[str, str]:
        """The Basic auth pair: ``(username, secret)``, or ``(secret, "")`` for a project secret."""
        secret = self.secret.get_secret_value()
        return (secret, "") if self.kind == PROJECT_SECRET else (self.username, secret)

    def __str__(self) -> str:
        return repr(self)

    def to_dict(self) -> dict[str, Any]:
        """Describe the credentials without the secret (masked)."""
        return {
            "account": self.account,
            "username": self.username,
            "secret": mask_secret(self.secret.get_secret_value()),
            "project_id": self.project_id,
            "region": self.region,
            "base_url": self.base_url,
            "timezone": self.timezone,
            "workspace_id": self.workspace_id,
            "kind": self.kind,
            "source": self.source,
        }


def mask_secret(secret: str) -> str:
    """Show at most the last two characters, and only of a long secret."""
    if len(secret) < 16:
        return "****"
    return "*" * 8 + secret[-2:]


@dataclass(frozen=True)
class AccountInfo:
    """One configured account, secret masked, as `mp auth list` shows it."""

    name: str
    username: str
    project_id: str
    region: str
    is_default: bool
    base_url: str | None = None
    timezone: str | None = None
    workspace_id: str | None = None
    kind: str = SERVICE_ACCOUNT

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "kind": self.kind,
            "username": self.username,
            "project_id": self.project_id,
            "region": self.region,
            "is_default": self.is_default,
            "base_url": self.base_url,
            "timezone": self.timezone,
            "workspace_id": self.workspace_id,
        }


def config_path_from_env(environ: Mapping[str, str] | None = None) -> Path:
    """Return the config path: ``MP_CONFIG_PATH`` or ``~/.mp/config.toml``."""
    env = os.environ if environ is None else environ
    raw = env.get("MP_CONFIG_PATH", "").strip()
    return Path(raw).expanduser() if raw else DEFAULT_CONFIG_PATH.expanduser()


class ConfigManager:
    """Read and write the accounts file safely, and resolve credentials.

    Writes are atomic (temp file, fsync, rename), created 0600 inside a 0700
    directory; symlinked config files are refused on read and write.
    """

    def __init__(
        self, path: Path | None = None, *, environ: Mapping[str, str] | None = None
    ) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self.path = path if path is not None else config_path_from_env(self._environ)

    # -- reading -----------------------------------------------------------------

    def _check_not_symlink(self) -> None:
        if self.path.is_symlink():
            raise ConfigError(
                f"refusing to use {self.path}: it is a symbolic link; "
                "replace it with a regular file (credentials must not be redirected)",
                path=str(self.path),
            )

    def _load(self) -> dict[str, Any]:
        self._check_not_symlink()
        if not self.path.exists():
            return {}
        if self.path.is_dir():
            raise ConfigError(
                f"config path {self.path} is a directory; point MP_CONFIG_PATH at a file",
                path=str(self.path),
            )
        if not self.path.is_file():
            # A FIFO or device would block the read forever (or never end).
            raise ConfigError(
                f"config path {self.path} is not a regular file; "
                "point MP_CONFIG_PATH at a regular file",
                path=str(self.path),
            )
        self._tighten_permissions()
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read config file {self.path}: {exc.strerror}; check its permissions",
                path=str(self.path),
            ) from None
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            # TOMLDecodeError's message carries line/column but not the offending text.
            where = str(exc).split("(", 1)[-1].rstrip(")") if "(" in str(exc) else "unknown"
            raise ConfigError(
                f"config file {self.path} is not valid TOML ({where}); fix or remove it",
                path=str(self.path),
            ) from None
        accounts = doc.get("accounts", {})
        if not isinstance(accounts, dict) or not all(
            isinstance(v, dict) for v in accounts.values()
        ):
            raise ConfigError(
                f"config file {self.path}: [accounts] must hold one table per account",
                path=str(self.path),
            )
        return doc

    def _tighten_permissions(self) -> None:
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            try:
                os.chmod(self.path, 0o600)
            except OSError:
                return
            print(
                f"Warning: {self.path} was readable by others (mode {oct(mode)}); "
                "tightened to 0600",
                file=sys.stderr,
            )

    def _accounts(self, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        accounts: dict[str, dict[str, Any]] = doc.get("accounts", {})
        return accounts

    def list_accounts(self) -> list[AccountInfo]:
        """List configured accounts (no secrets), sorted by name."""
        doc = self._load()
        default = doc.get("default")
        return [
            AccountInfo(
                name=name,
                username=str(acc.get("username", "")),
                project_id=str(acc.get("project_id", "")),
                region=str(acc.get("region", "us")),
                is_default=name == default,
                base_url=acc.get("base_url"),
                timezone=acc.get("timezone"),
                workspace_id=str(acc["workspace_id"]) if acc.get("workspace_id") else None,
                kind=str(acc.get("kind") or SERVICE_ACCOUNT),
            )
            for name, acc in sorted(self._accounts(doc).items())
        ]

    def get_account(self, name: str) -> Credentials:
        """Return the named account's credentials."""
        doc = self._load()
        accounts = self._accounts(doc)
        if name not in accounts:
            raise AccountNotFoundError(name, available=sorted(accounts))
        return self._credentials(name, accounts[name])

    def default_account(self) -> str | None:
        """Return the default account's name, if any."""
        default = self._load().get("default")
        return str(default) if default else None

    def _credentials(self, name: str, acc: dict[str, Any]) -> Credentials:
        kind = str(acc.get("kind") or SERVICE_ACCOUNT)
        needed = (
            ["secret", "project_id"]
            if kind == PROJECT_SECRET
            else ["username", "secret", "project_id"]
        )
        missing = [k for k in needed if not acc.get(k)]
        if missing:
            raise ConfigError(
                f"account '{name}' in {self.path} lacks {', '.join(missing)}; "
                f"re-add it with `mp auth remove {name}` then `mp auth add {name}`",
                account=name,
            )
        return Credentials(
            username=str(acc.get("username", "")),
            secret=SecretStr(str(acc["secret"])),
            project_id=str(acc["project_id"]),
            region=str(acc.get("region", "us")),
            base_url=acc.get("base_url") or None,
            timezone=acc.get("timezone") or None,
            account=name,
            source="config",
            workspace_id=str(acc["workspace_id"]) if acc.get("workspace_id") else None,
            kind=kind,
        )

    # -- resolution --------------------------------------------------------------

    def resolve(self, account: str | None = None) -> Credentials:
        """Resolve credentials: named account, then complete ``MP_*`` env vars, then default.

        An account name may come from the argument or ``MP_ACCOUNT``.
        """
        name = account or self._environ.get("MP_ACCOUNT", "").strip() or None
        if name:
            return self.get_account(name)
        from_env = self._from_env()
        if from_env is not None:
            return from_env
        default = self.default_account()
        if default:
            return self.get_account(default)
        raise ConfigError(
            "no Mixpanel credentials found; add an account with `mp auth add NAME` "
            "or set MP_USERNAME, MP_SECRET and MP_PROJECT_ID",
            path=str(self.path),
        )

    def _from_env(self) -> Credentials | None:
        """``MP_USERNAME``+``MP_SECRET``+``MP_PROJECT_ID`` (a service account), else
        ``MP_PROJECT_SECRET``+``MP_PROJECT_ID``; ``MP_WORKSPACE_ID`` and the rest apply to both."""
        env = self._environ
        username = env.get("MP_USERNAME", "").strip()
        secret = env.get("MP_SECRET", "").strip("\r\n")
        project_id = env.get("MP_PROJECT_ID", "").strip()
        kind = SERVICE_ACCOUNT
        if not (username and secret.strip() and project_id):
            secret = env.get("MP_PROJECT_SECRET", "").strip("\r\n")
            if not (secret.strip() and project_id):
                return None
            username, kind = "", PROJECT_SECRET
        return Credentials(
            username=username,
            secret=SecretStr(secret),
            project_id=project_id,
            region=env.get("MP_REGION", "").strip() or "us",
            base_url=env.get("MP_BASE_URL", "").strip() or None,
            timezone=env.get("MP_TIMEZONE", "").strip() or None,
            account=None,
            source="env",
            workspace_id=env.get("MP_WORKSPACE_ID", "").strip() or None,
            kind=kind,
        )

    # -- writing -----------------------------------------------------------------

    def add_account(
        self,
        name: str,
        *,
        username: str = "",
        secret: str,
        project_id: str,
        region: str = "us",
        base_url: str | None = None,
        timezone: str | None = None,
        make_default: bool = False,
        workspace_id: str | None = None,
        kind: str = SERVICE_ACCOUNT,
    ) -> AccountInfo:
        """Add an account; the first account becomes the default."""
        validate_account_name(name)
        kind = normalize_kind(kind)
        if kind == PROJECT_SECRET and username.strip():
            raise ValidationError(
                "a project-secret account has no username; drop --username "
                "(or add a service account without --project-secret-stdin)"
            )
        if kind == SERVICE_ACCOUNT and not username.strip():
            raise ValidationError("username is empty; pass --username with the service account")
        if not secret.strip():
            where = "--project-secret-stdin" if kind == PROJECT_SECRET else "--secret-stdin"
            raise ValidationError(f"secret is empty; provide it at the prompt or via {where}")
        creds = Credentials(
            username=username.strip(),
            secret=SecretStr(secret),
            project_id=project_id,
            region=region,
            base_url=base_url,
            timezone=timezone,
            account=name,
            workspace_id=workspace_id,
            kind=kind,
        )
        entry: dict[str, Any] = {
            "username": creds.username,
            "secret": creds.secret.get_secret_value(),
            "project_id": creds.project_id,
            "region": creds.region,
        }
        if creds.kind == PROJECT_SECRET:
            del entry["username"]
            entry = {"kind": creds.kind, **entry}
        if creds.base_url:
            entry["base_url"] = creds.base_url
        if creds.timezone:
            entry["timezone"] = creds.timezone
        if creds.workspace_id:
            entry["workspace_id"] = creds.workspace_id
        with self._locked():
            doc = self._load()
            accounts = doc.setdefault("accounts", {})
            if name in accounts:
                raise AccountExistsError(name)
            accounts[name] = entry
            if make_default or not doc.get("default"):
                doc["default"] = name
            self._write(doc)
        # Built from what was written: re-reading could see a later writer's file.
        return AccountInfo(
            name=name,
            username=creds.username,
            project_id=creds.project_id,
            region=creds.region,
            is_default=doc.get("default") == name,
            base_url=creds.base_url,
            timezone=creds.timezone,
            workspace_id=creds.workspace_id,
            kind=creds.kind,
        )

    def remove_account(self, name: str) -> None:
        """Remove an account; if it was the default, the first remaining becomes default."""
        with self._locked():
            doc = self._load()
            accounts = self._accounts(doc)
            if name not in accounts:
                raise AccountNotFoundError(name, available=sorted(accounts))
            del accounts[name]
            if doc.get("default") == name:
                remaining = sorted(accounts)
                if remaining:
                    doc["default"] = remaining[0]
                else:
                    doc.pop("default", None)
            self._write(doc)

    def set_default(self, name: str) -> None:
        """Make the named account the default."""
        with self._locked():
            doc = self._load()
            accounts = self._accounts(doc)
            if name not in accounts:
                raise AccountNotFoundError(name, available=sorted(accounts))
            doc["default"] = name
            self._write(doc)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialize read-modify-write across processes (flock on the config's folder).

        Without it two `mp auth add` run at once both read the old file and the
        later rename drops the other's account. Waits (writers are quick). The
        folder itself is locked, so no lock file is left beside the config.
        """
        import fcntl

        self._check_not_symlink()
        directory = self.path.parent
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise ConfigError(
                f"cannot open {directory}: {exc.strerror}; check the folder's permissions",
                path=str(directory),
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _write(self, doc: dict[str, Any]) -> None:
        import tomli_w

        self._check_not_symlink()
        directory = self.path.parent
        if not directory.exists():
            # Created private from the start: no window where it is world-readable.
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        ordered: dict[str, Any] = {}
        if "default" in doc:
            ordered["default"] = doc["default"]
        ordered.update({k: v for k, v in doc.items() if k != "default"})
        payload = tomli_w.dumps(ordered).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def validate_account_name(name: str) -> None:
    """Account names are short identifiers usable as TOML keys and CLI args."""
    ok = bool(name) and len(name) <= 64 and all(c.isalnum() or c in "-_." for c in name)
    if not ok or not name.isascii():
        raise ValidationError(
            f"invalid account name '{name}'; use letters, digits, '-', '_' or '.'"
        )
