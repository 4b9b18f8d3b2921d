"""Answer a shell's TAB quickly, without importing Typer, pydantic or the library.

Typer's own completion builds the whole command tree (and imports pydantic for it) on
every TAB: 1.3-2.9 s. Here the tree ships with the package as JSON
(``completion_tree.json``, written by scripts/gen_docs.py, pinned by tests/docs), and each
TAB reads it. Besides commands, options and choices, it completes names from local files
only, never the network, and never imports DuckDB for them:

- account names (``--account``, ``mp auth show|test|switch|remove NAME``) from the config;
- table names (``inspect``/``export``/``fetch`` table arguments) and event names
  (``--event``, event arguments) of the local database, from the record its last writer
  left (storage/names_index.py); only a database changed by another program is opened.

The output formats are Typer's (the installed ``--install-completion`` scripts read them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["build_tree", "complete", "names", "respond", "shipped_tree_text"]

TREE_VERSION = 1
_CLI_DIR = Path(__file__).resolve().parent


def _cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "mp"


def _source_key() -> str:
    """Changes whenever a CLI source file (so possibly a command or option) changes."""
    from mixpanel_data._version import __version__

    parts = [str(TREE_VERSION), __version__]
    for path in sorted([*_CLI_DIR.glob("*.py"), *_CLI_DIR.glob("commands/*.py")]):
        st = path.stat()
        parts.append(f"{path.name}:{st.st_mtime_ns}:{st.st_size}")
    import hashlib

    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _write_json(path: Path, data: Any) -> None:
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# -- the command tree ----------------------------------------------------------------


def _kind(path: tuple[str, ...], param: str) -> str | None:
    """Which local names complete a parameter (by its name and command)."""
    if param == "account" or (param == "name" and path[:1] == ("auth",) and path[1:] != ("add",)):
        return "account"
    if param == "table" or (param == "name" and path[:1] == ("fetch",)):
        return "table"
    if param in ("event", "events", "born_event"):
        return "event"
    return None


def build_tree() -> dict[str, Any]:
    """Walk the Typer app once: commands, options (flags, choices) and name kinds."""
    import typer.main

    from mixpanel_data.cli.main import app

    def node(cmd: Any, path: tuple[str, ...]) -> dict[str, Any]:
        options, args = [], []
        for p in cmd.params:
            if getattr(p, "hidden", False):
                continue
            # Typer >= 0.29 keeps choices on the type descriptor; click types on .type
            holder = getattr(p, "type_descriptor", None) or getattr(p, "type", None)
            choices = list(getattr(holder, "choices", None) or []) or None
            entry: dict[str, Any] = {
                "kind": _kind(path, p.name or ""),
                "choices": [str(c.value if hasattr(c, "value") else c) for c in choices]
                if choices
                else None,
            }
            if p.param_type_name == "option":
                entry |= {
                    "names": [*p.opts, *p.secondary_opts],
                    "flag": bool(p.is_flag) or bool(getattr(p, "count", False)),
                    "help": (p.help or "").split("\n")[0],
                }
                options.append(entry)
            else:
                entry["nargs"] = p.nargs
                args.append(entry)
        commands = {}
        for name, sub in getattr(cmd, "commands", {}).items():  # Typer keeps this order
            if not getattr(sub, "hidden", False):
                commands[name] = node(sub, (*path, name))
        return {
            "help": cmd.get_short_help_str() if path else "",  # Typer's limit
            "options": options,
            "args": args,
            "commands": commands,
        }

    return node(typer.main.get_command(app), ())


SHIPPED_TREE = _CLI_DIR / "completion_tree.json"


def shipped_tree_text() -> str:
    """The content of ``completion_tree.json`` (scripts/gen_docs.py writes it)."""
    from mixpanel_data._version import __version__

    return json.dumps({"version": __version__, "tree": build_tree()}, separators=(",", ":")) + "\n"


def _tree(env: Mapping[str, str]) -> dict[str, Any]:
    """The tree shipped with the package (so even the first TAB reads one file); a tree
    built and cached here only if that file is missing or from another version."""
    from mixpanel_data._version import __version__

    shipped = _read_json(SHIPPED_TREE)
    if isinstance(shipped, dict) and shipped.get("version") == __version__:
        tree = shipped.get("tree")
        if isinstance(tree, dict):
            return tree
    path = _cache_dir(env) / f"tree-{_source_key()}.json"
    cached = _read_json(path)
    if isinstance(cached, dict):
        return cached
    tree = build_tree()
    with contextlib.suppress(OSError):  # a read-only home still completes, only slower
        _write_json(path, tree)
    return tree


# -- local names ---------------------------------------------------------------------


def _config(env: Mapping[str, str]) -> dict[str, Any]:
    import tomllib

    raw = env.get("MP_CONFIG_PATH") or str(Path(env.get("HOME") or Path.home()) / ".mp/config.toml")
    try:
        with open(Path(raw).expanduser(), "rb") as f:
            data = tomllib.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _db_path(env: Mapping[str, str], seen: Mapping[str, str]) -> Path | None:
    """The database `mp` would open: --db, MP_DB_PATH, else the account's project file."""
    raw = seen.get("--db") or env.get("MP_DB_PATH", "").strip()
    if raw:
        return None if raw == ":memory:" else Path(raw).expanduser()
    config = _config(env)
    found = config.get("accounts")
    accounts: dict[str, Any] = found if isinstance(found, dict) else {}
    name = seen.get("--account") or seen.get("-a") or env.get("MP_ACCOUNT")
    project = None
    if name and isinstance(accounts.get(name), dict):
        project = accounts[name].get("project_id")
    elif env.get("MP_PROJECT_ID") and env.get("MP_USERNAME") and env.get("MP_SECRET"):
        project = env["MP_PROJECT_ID"]
    elif isinstance(accounts.get(str(config.get("default"))), dict):
        project = accounts[str(config["default"])].get("project_id")
    if not project:
        return None
    home = Path(env.get("HOME") or Path.home())
    return home / ".mp" / "data" / f"{project}.duckdb"


def _collect(conn: Any) -> dict[str, list[str]]:
    """The same names as storage/names_index.collect_names (the CLI may not import it)."""
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND NOT starts_with(table_name, '_mp_') ORDER BY 1"
        ).fetchall()
    ]
    with_events = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'main' "
            "AND column_name = 'event_name' AND NOT starts_with(table_name, '_mp_')"
        ).fetchall()
    ]
    events: set[str] = set()
    for table in with_events:
        quoted = '"' + table.replace('"', '""') + '"'
        rows = conn.execute(
            f"SELECT DISTINCT event_name FROM {quoted} WHERE event_name IS NOT NULL "  # noqa: S608
            "LIMIT 5000"
        ).fetchall()
        events.update(str(r[0]) for r in rows)
    return {"table": tables, "event": sorted(events)}


def _names_file(db: Path) -> Path:
    """Where a writer left ``db``'s names (storage/names_index.py writes this format)."""
    return db.with_name(db.name + ".names.json")


def _db_names(db: Path, env: Mapping[str, str]) -> dict[str, list[str]]:
    """Tables and event names of a database file, as its last writer recorded them.

    Every `mp` (and Workspace) that writes a database records its names when it closes,
    so a TAB reads one small file. A file changed by another program is read with DuckDB
    here, once (the record is refreshed).
    """
    try:
        st = db.stat()
    except OSError:
        return {"table": [], "event": []}
    key = f"{st.st_mtime_ns}:{st.st_size}"
    record = _names_file(db)
    found = _read_json(record)
    if isinstance(found, dict) and found.get("key") == key:
        return {k: list(found.get(k) or []) for k in ("table", "event")}
    try:
        import duckdb

        with duckdb.connect(str(db), read_only=True) as conn:
            names = _collect(conn)
    except Exception:  # locked by a fetch, not a database, ...: complete nothing
        return {"table": [], "event": []}
    with contextlib.suppress(OSError):
        _write_json(record, {"key": key, **names})
    return names


def names(kind: str, env: Mapping[str, str], seen: Mapping[str, str]) -> list[str]:
    """Local names of one kind: ``account``, ``table`` or ``event``."""
    if kind == "account":
        accounts = _config(env).get("accounts")
        return sorted(accounts) if isinstance(accounts, dict) else []
    db = _db_path(env, seen)
    return [] if db is None else _db_names(db, env).get(kind, [])


# -- completing one command line -------------------------------------------------------


def _find(options: list[dict[str, Any]], word: str) -> dict[str, Any] | None:
    return next((o for o in options if word in o["names"]), None)


def complete(
    tree: dict[str, Any], args: list[str], incomplete: str, env: Mapping[str, str]
) -> list[tuple[str, str]]:
    """Candidates ``(value, help)`` for ``incomplete`` after the words ``args``."""
    node = tree
    options = list(tree["options"])
    seen: dict[str, str] = {}
    pending: dict[str, Any] | None = None
    positional = 0
    for word in args:
        if pending is not None:
            for name in pending["names"]:
                seen[name] = word
            pending = None
            continue
        if word.startswith("-") and word != "-":
            name, eq, value = word.partition("=")
            opt = _find(options, name)
            if opt is not None and not opt["flag"]:
                if eq:
                    for n in opt["names"]:
                        seen[n] = value
                else:
                    pending = opt
            continue
        if word in node["commands"]:
            node = node["commands"][word]
            options = list(node["options"])
            positional = 0
            continue
        positional += 1

    def values(entry: dict[str, Any]) -> list[tuple[str, str]]:
        pool = entry.get("choices") or (names(entry["kind"], env, seen) if entry["kind"] else [])
        return [(v, "") for v in pool if v.startswith(incomplete)]

    if pending is not None:
        return values(pending)
    if "=" in incomplete and incomplete.startswith("--"):
        name, _, rest = incomplete.partition("=")
        opt = _find(options, name)
        if opt is None or opt["flag"]:
            return []
        saved, incomplete = incomplete, rest
        out = [(f"{name}={v}", h) for v, h in values(opt)]
        incomplete = saved
        return out
    if incomplete.startswith("-"):
        return [
            (n, o["help"])
            for o in options
            for n in o["names"]
            if n.startswith(incomplete) and (n.startswith("--") or incomplete != "-")
        ]
    if node["commands"]:
        return [(n, c["help"]) for n, c in node["commands"].items() if n.startswith(incomplete)]
    if node["args"]:
        arg = node["args"][min(positional, len(node["args"]) - 1)]
        if positional < len(node["args"]) or arg.get("nargs", 1) == -1:
            return values(arg)
    return []


def _split(text: str) -> list[str]:
    lex = shlex.shlex(text, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    out: list[str] = []
    try:
        out.extend(lex)
    except ValueError:  # an open quote: keep the partial word
        out.append(lex.token)
    return out


def _zsh_escape(s: str) -> str:
    return (
        s.replace('"', '""')
        .replace("'", "''")
        .replace("$", "\\$")
        .replace("`", "\\`")
        .replace(":", r"\\:")
    )


def respond(env: Mapping[str, str]) -> int | None:
    """Answer ``_MP_COMPLETE=complete_<shell>``; None when this is not a TAB request."""
    action = env.get("_MP_COMPLETE", "")
    shell = action.removeprefix("complete_")
    if not action.startswith("complete_") or shell not in ("bash", "zsh", "fish"):
        return None
    if shell == "bash":
        words = _split(env.get("COMP_WORDS", ""))
        cword = int(env.get("COMP_CWORD", "0") or 0)
        args, incomplete = words[1:cword], (words[cword] if cword < len(words) else "")
    else:
        line = env.get("_TYPER_COMPLETE_ARGS", "")
        args = _split(line)[1:]
        incomplete = ""
        if args and not line.endswith(" "):
            incomplete = args.pop()
    items = complete(_tree(env), args, incomplete, env)
    if shell == "bash":
        text = "\n".join(v for v, _ in items)
    elif shell == "zsh":
        lines = [
            f'"{_zsh_escape(v)}":"{_zsh_escape(h)}"' if h else f'"{_zsh_escape(v)}"'
            for v, h in items
        ]
        text = "_arguments '*: :((" + "\n".join(lines) + "))'" if lines else "_files"
    else:
        fish_action = env.get("_TYPER_COMPLETE_FISH_ACTION", "")
        if fish_action == "is-args":
            return 0 if items else 1
        text = "\n".join(f"{v}\t{' '.join(h.split())}" if h else v for v, h in items)
    if text:
        sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return 0
