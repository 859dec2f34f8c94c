"""Task records: every task the service issued, who owns it, its cancel flag and its worker's heartbeat.

Celery's result backend holds a task's state, progress and result; it cannot tell a task it never saw from one
still queued, nor keep anything past its expiry. The records (a SQL table through SQLAlchemy: sqlite in the state
folder on one machine, any SQL server for many) answer those: an id not recorded was never issued (404).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

_META = sa.MetaData()
TASKS = sa.Table(
    "tasks",
    _META,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # prepare | add | train | resume | infer
    sa.Column("owner", sa.String(64), nullable=False, default=""),  # hash of the API key ("" without keys)
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("params", sa.Text, nullable=False, default="{}"),  # what the request asked (JSON)
    sa.Column("cancel", sa.Boolean, nullable=False, default=False),
    sa.Column("heartbeat", sa.Float, nullable=True),
    sa.Column("finished", sa.Float, nullable=True),
    sa.Column("callback_url", sa.Text, nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),  # a training's MLflow run
    sa.Column("spool", sa.Text, nullable=True),  # the uploaded file a queued task will consume (removed on cancel)
    sa.Column("verdict", sa.String(16), nullable=True),  # "lost": the sweeper ended it (no heartbeat); final
)

OWNERS = sa.Table(  # who created what: datasets and references (voices carry an MLflow tag, tasks the column above)
    "owners",
    _META,
    sa.Column("kind", sa.String(16), primary_key=True),  # dataset | ref
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False, index=True),
    sa.Column("created", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class Record:
    id: str
    kind: str
    owner: str
    created: float
    params: dict[str, Any]
    cancel: bool
    heartbeat: float | None
    finished: float | None
    callback_url: str | None
    run_id: str | None = None
    spool: str | None = None
    verdict: str | None = None


class Records:
    """The task table (thread- and process-safe through the database)."""

    def __init__(self, url: str):
        args = {"connect_args": {"timeout": 30, "check_same_thread": False}} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(url, pool_pre_ping=True, **args)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_wal)
        _META.create_all(self.engine)
        self._add_columns()

    def _add_columns(self) -> None:
        """Columns added since a records database was created (``spool``), added to it in place."""
        have = {c["name"] for c in sa.inspect(self.engine).get_columns("tasks")}
        with self.engine.begin() as conn:
            for column in TASKS.columns:
                if column.name not in have:
                    kind = column.type.compile(dialect=self.engine.dialect)
                    conn.execute(sa.text(f'ALTER TABLE tasks ADD COLUMN "{column.name}" {kind}'))

    def add(self, task_id: str, kind: str, owner: str, params: dict, callback_url: str | None = None,
            spool: str | None = None) -> None:  # fmt: skip
        params_json = json.dumps(params, ensure_ascii=False)
        row = {"id": task_id, "kind": kind, "owner": owner, "created": time.time(), "params": params_json,
               "cancel": False, "callback_url": callback_url, "spool": spool}  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(TASKS.insert().values(**row))

    def get(self, task_id: str) -> Record | None:
        with self.engine.connect() as conn:
            row = conn.execute(TASKS.select().where(TASKS.c.id == task_id)).mappings().first()
        return None if row is None else _record(row)

    def _set(self, task_id: str, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(TASKS.update().where(TASKS.c.id == task_id).values(**values))

    def remove(self, task_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(TASKS.delete().where(TASKS.c.id == task_id))

    def request_cancel(self, task_id: str) -> None:
        self._set(task_id, cancel=True)

    def beat(self, task_id: str) -> None:
        self._set(task_id, heartbeat=time.time())

    def set_run(self, task_id: str, run_id: str) -> None:
        self._set(task_id, run_id=run_id)

    def finish(self, task_id: str, verdict: str | None = None) -> bool:
        """Mark the task ended; True for the one caller that ended it (a task's end is decided once: a worker that
        comes back after the sweeper declared it lost cannot turn that into a success)."""
        values = {"finished": time.time(), **({"verdict": verdict} if verdict else {})}
        query = TASKS.update().where(TASKS.c.id == task_id, TASKS.c.finished.is_(None)).values(**values)
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1

    def spools(self) -> set[str]:
        """The spooled uploads unfinished tasks will still consume."""
        query = sa.select(TASKS.c.spool).where(TASKS.c.finished.is_(None), TASKS.c.spool.is_not(None))
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def silent(self, before: float) -> list[Record]:
        """Unfinished tasks whose last heartbeat is older than ``before`` (their worker stopped answering)."""
        query = TASKS.select().where(TASKS.c.finished.is_(None), TASKS.c.heartbeat < before)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_record(r) for r in rows]

    def unfinished(self, owner: str) -> int:
        """Tasks of ``owner`` not yet finished (a cancelled one counts until it has let go of what it holds)."""
        query = sa.select(sa.func.count()).select_from(TASKS).where(TASKS.c.owner == owner, TASKS.c.finished.is_(None))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # --- ownership ---------------------------------------------------------------------------------------------------
    def own(self, kind: str, item_id: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(OWNERS.insert().values(kind=kind, id=item_id, owner=owner, created=time.time()))

    def owner_of(self, kind: str, item_id: str) -> str | None:
        query = sa.select(OWNERS.c.owner).where(OWNERS.c.kind == kind, OWNERS.c.id == item_id)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    def owned(self, kind: str, owner: str, offset: int = 0, limit: int = 50) -> tuple[list[str], int]:
        """Ids of ``kind`` that ``owner`` created, oldest first: one page and the total."""
        where = (OWNERS.c.kind == kind, OWNERS.c.owner == owner)
        page = sa.select(OWNERS.c.id).where(*where).order_by(OWNERS.c.created, OWNERS.c.id).offset(offset).limit(limit)
        with self.engine.connect() as conn:
            ids = list(conn.execute(page).scalars())
            total = int(conn.execute(sa.select(sa.func.count()).select_from(OWNERS).where(*where)).scalar_one())
        return ids, total

    def disown(self, kind: str, item_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(OWNERS.delete().where(OWNERS.c.kind == kind, OWNERS.c.id == item_id))

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


def _record(row) -> Record:
    return Record(**{**row, "params": json.loads(row["params"] or "{}"), "cancel": bool(row["cancel"])})


def _sqlite_wal(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
