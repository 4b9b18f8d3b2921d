"""Profile fetching (engage, contract §5), a part of FetcherService kept in its own module.

Pages are staged to chunk files as they arrive and upserted on ``distinct_id`` in one
transaction at the end, so a failed or interrupted profile fetch changes nothing.
"""

# SQL here is built from validated, always-quoted identifiers; values are bound parameters.

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mixpanel_data._internal.results.fetch import FetchProgress, FetchResult
from mixpanel_data._internal.services.fetch.ingest import (
    PROFILE_CHUNK_BYTES,
    commit_profiles,
    is_out_of_memory,
    out_of_memory_error,
    profile_memory_limit,
)
from mixpanel_data._internal.services.fetch.records import engage_params
from mixpanel_data._internal.storage import engine as st
from mixpanel_data._internal.storage.interrupts import deferred_interrupts
from mixpanel_data._internal.storage.safety import check_address_space, rollback_quietly
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
        check_address_space()
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
        warnings: list[str] = []
        try:
            staged = self._stage_profiles(
                params, staging, report=report, name=name, started=started
            )
            lines, nbytes, pages = staged.lines, staged.bytes, staged.pages
            # Ctrl-C waits for the commit (or rollback) and the close, then is raised.
            with deferred_interrupts(), self.storage.writer() as conn:
                conn.execute(f"SET memory_limit = '{profile_memory_limit()}'")
                conn.execute("BEGIN TRANSACTION")
                try:
                    st.ensure_meta(conn)
                    target = ASIDE_PREFIX + name if mode == "replace" else name
                    if mode == "replace":
                        conn.execute(f"DROP TABLE IF EXISTS {st.quote_ident(target)}")
                    if not st._table_exists(conn, target):
                        conn.execute(st.create_table_sql(target, "profiles"))
                    counts = commit_profiles(conn, table=target, chunks=staged.chunks)
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
                except BaseException as exc:
                    rollback_quietly(conn)
                    if is_out_of_memory(exc):
                        raise out_of_memory_error("the profiles", exc) from exc
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        # Distinct profiles read = staged lines less malformed and repeated ones.
        got = lines - counts.malformed - counts.duplicates
        if staged.total is not None and got < staged.total:
            text = (
                f"engage returned {got:,} distinct profiles of the {staged.total:,} it announced "
                f"({pages} pages); run the fetch again with --append to retry"
            )
            self._say(f"warning: {text}")
            warnings.append(text)
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

    def _stage_profiles(
        self,
        params: Mapping[str, Any],
        staging: Path,
        *,
        report: Callable[[FetchProgress], None] | None,
        name: str,
        started: float,
    ) -> _Staged:
        """Write engage pages (contract §5) to chunk files as they arrive: memory stays flat.

        A session that is rejected or expires mid-way restarts the query from
        page 0 into fresh files (the commit upserts on distinct_id), at most
        twice; a third expiry fails the fetch with nothing stored.
        """
        restarts = 0
        while True:
            for old in staging.glob("profiles-*.jsonl"):
                old.unlink()
            staged = _Staged()
            seen: dict[str, int] = {}
            try:
                self._write_pages(params, staging, staged, seen, report, name, started)
            except QueryError as exc:
                if not staged.pages:
                    raise
                if restarts >= 2:
                    raise APIError(
                        f"the engage session expired {restarts + 1} times while paging "
                        f"profiles (last after {staged.pages} pages: {exc.message}); "
                        "nothing was stored; run the same command again, or narrow it "
                        "with --where so each pass is shorter",
                        status_code=exc.status_code,
                        endpoint=exc.endpoint,
                    ) from None
                restarts += 1
                self._say("engage session expired; restarting the profile query from page 0")
                continue
            staged.total = seen.get("total")
            return staged

    def _write_pages(
        self,
        params: Mapping[str, Any],
        staging: Path,
        staged: _Staged,
        seen: dict[str, int],
        report: Callable[[FetchProgress], None] | None,
        name: str,
        started: float,
    ) -> None:
        fh = None
        try:
            for page in self._engage_once(params, seen=seen):
                staged.pages += 1
                if page:
                    if fh is None or fh.tell() >= PROFILE_CHUNK_BYTES:
                        if fh is not None:
                            fh.close()
                        path = staging / f"profiles-{len(staged.chunks):05d}.jsonl"
                        fh = open(path, "wb")  # noqa: SIM115 (closed below, one per chunk)
                        staged.chunks.append((path, 0))
                    data = b"\n".join(orjson.dumps(r) for r in page) + b"\n"
                    fh.write(data)
                    path, n = staged.chunks[-1]
                    staged.chunks[-1] = (path, n + len(page))
                    staged.bytes += len(data)
                    staged.lines += len(page)
                if report is not None:
                    report(
                        FetchProgress(
                            table=name,
                            kind="profiles",
                            windows_done=staged.pages,
                            windows_total=staged.pages,
                            rows=staged.lines,
                            bytes=staged.bytes,
                            elapsed_seconds=time.monotonic() - started,
                        )
                    )
        finally:
            if fh is not None:
                fh.close()

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


@dataclass
class _Staged:
    """What one pass over the engage pages wrote to the staging file."""

    pages: int = 0
    lines: int = 0
    chunks: list[tuple[Path, int]] = field(default_factory=list)
    bytes: int = 0
    total: int | None = None
