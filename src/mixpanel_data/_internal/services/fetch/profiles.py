"""Profile fetching (engage, contract §5), a part of FetcherService kept in its own module.

Pages are staged to a file as they arrive and upserted on ``distinct_id`` in one
transaction at the end, so a failed or interrupted profile fetch changes nothing.
"""

# SQL here is built from validated, always-quoted identifiers; values are bound parameters.

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mixpanel_data._internal.results.fetch import FetchProgress, FetchResult
from mixpanel_data._internal.services.fetch.ingest import INGEST_MEMORY_LIMIT, commit_profiles
from mixpanel_data._internal.services.fetch.records import engage_params
from mixpanel_data._internal.storage import engine as st
from mixpanel_data._internal.storage.interrupts import deferred_interrupts
from mixpanel_data.exceptions import (
    APIError,
    QueryError,
    TableExistsError,
    ValidationError,
)

if TYPE_CHECKING:
    from mixpanel_data._internal.http.client import MixpanelAPIClient

__all__ = ["ASIDE_PREFIX", "ProfileFetching", "fetch_id"]

# --replace builds this table aside and renames it over the old one on success.
ASIDE_PREFIX = "_mp_new_"


def fetch_id(args: Mapping[str, Any]) -> str:
    """Identify one fetch: its arguments' hash plus a start time."""
    import hashlib

    digest = hashlib.sha256(orjson.dumps(dict(args), option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{digest[:16]}-{int(time.time() * 1000)}"


class ProfileFetching:
    """The profile half of FetcherService (it provides the attributes below)."""

    api: MixpanelAPIClient
    storage: st.StorageEngine
    progress: Callable[[FetchProgress], None] | None

    def _staging_dir(self) -> Path:
        raise NotImplementedError

    def _say(self, text: str) -> None:
        raise NotImplementedError

    def _row_count(self, name: str) -> int:
        raise NotImplementedError

    def fetch_profiles(
        self,
        name: str = "profiles",
        *,
        where: str | None = None,
        cohort_id: int | str | None = None,
        output_properties: Sequence[str] | None = None,
        distinct_ids: Sequence[str] | None = None,
        group_id: str | None = None,
        behaviors: str | Sequence[Any] | None = None,
        as_of_timestamp: int | None = None,
        include_all_users: bool | None = None,
        append: bool = False,
        replace: bool = False,
        progress: Callable[[FetchProgress], None] | None = None,
    ) -> FetchResult:
        """Fetch engage profiles into table `name`, upserting on distinct_id."""
        started = time.monotonic()
        st.validate_table_name(name)
        if append and replace:
            raise ValidationError("use either --append or --replace, not both")
        params = engage_params(
            where=where,
            cohort_id=cohort_id,
            output_properties=output_properties,
            distinct_ids=distinct_ids,
            group_id=group_id,
            behaviors=behaviors,
            as_of_timestamp=as_of_timestamp,
            include_all_users=include_all_users,
        )
        mode = "replace" if replace else "append" if append else "create"
        args = {"kind": "profiles", "params": params, "mode": mode}
        if self.storage.exists():
            meta = self.storage.table_metadata(name)
            if self.storage.table_exists(name):
                if meta is not None and meta["kind"] != "profiles":
                    raise ValidationError(
                        f"table '{name}' holds {meta['kind']}, not profiles; choose another name"
                    )
                if mode == "create" or (meta is None and mode == "append"):
                    raise TableExistsError(name)
        report = progress or self.progress
        staging = self._staging_dir()
        nbytes = 0
        pages = 0
        warnings: list[str] = []
        try:
            path = staging / "profiles.jsonl"
            lines = 0
            with open(path, "wb") as fh:
                for page in self._engage_pages(params, warnings=warnings):
                    pages += 1
                    if page:
                        data = b"\n".join(orjson.dumps(r) for r in page) + b"\n"
                        fh.write(data)
                        nbytes += len(data)
                        lines += len(page)
                    if report is not None:
                        report(
                            FetchProgress(
                                table=name,
                                kind="profiles",
                                windows_done=pages,
                                windows_total=pages,
                                rows=lines,
                                bytes=nbytes,
                                elapsed_seconds=time.monotonic() - started,
                            )
                        )
            # Ctrl-C waits for the commit (or rollback) and the close, then is raised.
            with deferred_interrupts(), self.storage.writer() as conn:
                conn.execute(f"SET memory_limit = '{INGEST_MEMORY_LIMIT}'")
                conn.execute("BEGIN TRANSACTION")
                try:
                    st.ensure_meta(conn)
                    target = ASIDE_PREFIX + name if mode == "replace" else name
                    if mode == "replace":
                        conn.execute(f"DROP TABLE IF EXISTS {st.quote_ident(target)}")
                    if not st._table_exists(conn, target):
                        conn.execute(st.create_table_sql(target, "profiles"))
                    counts = commit_profiles(conn, table=target, path=path, lines=lines)
                    if mode == "replace":
                        conn.execute(f"DROP TABLE IF EXISTS {st.quote_ident(name)}")
                        conn.execute(
                            f"ALTER TABLE {st.quote_ident(target)} RENAME TO {st.quote_ident(name)}"
                        )
                        st.rename_meta(conn, old=target, new=name)
                    st.write_meta(
                        conn,
                        name=name,
                        kind="profiles",
                        project_id=self.api.credentials.project_id,
                        fetch_args=args,
                        fetch_id=fetch_id(args),
                        windows_done=pages,
                        windows_total=pages,
                        from_date=None,
                        to_date=None,
                        complete=True,
                        fetched_at=datetime.now(tz=UTC),
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return FetchResult(
            table=name,
            kind="profiles",
            rows_inserted=counts.rows_inserted,
            duplicates_dropped=counts.duplicates,
            malformed_lines=counts.malformed,
            windows_done=pages,
            windows_total=pages,
            duration_seconds=time.monotonic() - started,
            from_date=None,
            to_date=None,
            bytes_downloaded=nbytes,
            retries=self.api.retries,
            table_rows=self._row_count(name),
            mode=mode,
            warnings=tuple(warnings),
        )

    def _engage_pages(
        self, params: Mapping[str, Any], *, warnings: list[str] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield engage result pages (contract §5): session_id paging until a short page.

        A session that is rejected or expires mid-way restarts the query from
        page 0 (the caller stages pages and commits only at the end, upserting
        on distinct_id), at most twice. Pages that add up to fewer profiles than
        the first page's ``total`` are reported in `warnings` and on the notice
        channel, not ignored.
        """
        restarts = 0
        while True:
            collected: list[list[dict[str, Any]]] = []
            seen: dict[str, int] = {}
            try:
                for page in self._engage_once(params, seen=seen):
                    collected.append(page)
            except QueryError:
                if not collected or restarts >= 2:
                    raise
                restarts += 1
                self._say("engage session expired; restarting the profile query from page 0")
                continue
            got = len({_profile_key(r) for page in collected for r in page})
            total = seen.get("total")
            if total is not None and got < total:
                text = (
                    f"engage returned {got:,} distinct profiles of the {total:,} it announced "
                    f"({len(collected)} pages); run the fetch again with --append to retry"
                )
                self._say(f"warning: {text}")
                if warnings is not None:
                    warnings.append(text)
            yield from collected
            return

    def _engage_once(
        self, params: Mapping[str, Any], *, seen: dict[str, int] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        page = 0
        session_id: str | None = None
        while True:
            body = dict(params)
            if page:
                body["page"] = page
                body["session_id"] = session_id
            reply = self.api.request("POST", "query", "engage", data=body)
            if not isinstance(reply, dict):
                raise APIError("unexpected engage response: not a JSON object")
            results = reply.get("results") or []
            # `total` counts the whole query and may be sent on page 0 only (contract §5).
            if seen is not None and "total" not in seen and isinstance(reply.get("total"), int):
                seen["total"] = int(reply["total"])
            yield [r for r in results if isinstance(r, dict)]
            page_size = int(reply.get("page_size") or 1000)
            session_id = reply.get("session_id") or session_id
            if len(results) < page_size or not results or not session_id:
                return
            page = int(reply.get("page", page)) + 1


def _profile_key(record: Mapping[str, Any]) -> str:
    return str(record.get("$distinct_id"))
