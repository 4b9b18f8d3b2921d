"""A checkpoint that runs out of memory (the writer's close): one line naming the
setting to raise, and every committed row still there (in the write-ahead log)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixpanel_data._internal.services.fetch import staging
from mixpanel_data._internal.storage.engine import WRITE_ROW_GROUP, StorageEngine
from mixpanel_data.exceptions import StorageError

ROWS = 20_000
BIG = 12 << 20  # one value larger than the checkpoint's whole pool


def _write(session: staging.WriterSession, db: Path) -> None:
    # A log under FOLD_BYTES (so no commit folds it in) holding one value of 12 MB:
    # the checkpoint at the close must hold it at once.
    with session.connection() as conn:
        conn.execute("CREATE TABLE t (x BIGINT, s VARCHAR)")
        conn.execute("INSERT INTO t SELECT range, md5(range::VARCHAR) FROM range(?)", [ROWS])
        conn.execute("INSERT INTO t VALUES (-1, repeat('x', ?))", [BIG])
        conn.execute("DELETE FROM t WHERE x % 3 = 0")
    assert Path(f"{db}.wal").stat().st_size < staging.FOLD_BYTES


def test_checkpoint_out_of_memory_names_the_setting_and_keeps_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "ckpt.duckdb"
    session = staging.WriterSession(StorageEngine(db))
    _write(session, db)
    # The setting users have, for the commits' pool and the checkpoint's (read again
    # when the session closes).
    monkeypatch.setenv("MP_FETCH_MEMORY_LIMIT", "4MB")
    with pytest.raises(StorageError) as caught:
        session.release()
    message = str(caught.value)
    assert message == (
        f"DuckDB ran out of memory while checkpointing {db} (checkpoint memory limit 4MB); "
        f"every committed window is kept in its write-ahead log {db}.wal; raise the limit, "
        "e.g. MP_FETCH_MEMORY_LIMIT=1GB, and run the same command again (it resumes)"
    )
    assert Path(f"{db}.wal").stat().st_size > 0
    monkeypatch.delenv("MP_FETCH_MEMORY_LIMIT")
    kept = StorageEngine(db, read_only=True)
    assert kept.execute_scalar("SELECT count(*) FROM t WHERE x >= 0") == ROWS - len(
        range(0, ROWS, 3)
    )
    assert kept.execute_scalar("SELECT length(s) FROM t WHERE x = -1") == BIG


def test_checkpoint_pool_follows_the_fetch_memory_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mixpanel_data._internal.services.fetch.ingest import checkpoint_memory_limit

    monkeypatch.delenv("MP_FETCH_MEMORY_LIMIT", raising=False)
    assert checkpoint_memory_limit() == "128MB"
    monkeypatch.setenv("MP_FETCH_MEMORY_LIMIT", "1 GB")
    assert checkpoint_memory_limit() == "1GB"


def test_each_commit_over_16_mb_of_log_is_checkpointed_as_it_ends(tmp_path: Path) -> None:
    """Left to one checkpoint at the close, every insert stayed in the write-ahead log
    and the close rewrote it alone (8.6 s of a 33.5 s fetch of 1M events). Now a commit
    whose log passed FOLD_BYTES is folded into the file right after it, outside COMMIT."""
    db = tmp_path / "fold.duckdb"
    wal = Path(f"{db}.wal")
    session = staging.WriterSession(StorageEngine(db), serve=False)
    with session.connection() as conn:
        conn.execute("CREATE TABLE t (x BIGINT, s VARCHAR)")
        conn.execute("INSERT INTO t SELECT range, 'small' FROM range(10)")
    small = wal.stat().st_size
    assert 0 < small < staging.FOLD_BYTES  # a small log waits for the next commits
    logged = 0
    with session.connection() as conn:
        # Inserts smaller than a row group go to the log (larger ones go to the file).
        assert WRITE_ROW_GROUP > 30_000
        for i in range(4):
            conn.execute(
                "INSERT INTO t SELECT range, repeat(md5(range::VARCHAR), 8) FROM range(?, ?)",
                [i * 30_000, (i + 1) * 30_000],
            )
        logged = wal.stat().st_size
    assert logged > staging.FOLD_BYTES
    assert not wal.exists() or wal.stat().st_size < small  # folded while still held
    with session.connection() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (120_010,)
    session.close()
    kept = StorageEngine(db, read_only=True).execute_scalar("SELECT count(*) FROM t")
    assert kept == 120_010
