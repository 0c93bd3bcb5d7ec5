"""The SQL both dialects share: statement rewriting, shared fragments, definitions.

Each method is one or two statements; atomicity comes from the transaction the caller is
in (`Store.transact`), never from a method alone. SQL is written with `?` placeholders,
`{now}` for the database clock, `{random}` for 128 random bits as hex (drawn per row, by
a cryptographic generator) and `{lock}` for a row lock where the dialect has one
(`SHARE` names a shared one); a dialect rewrites them once per statement.

Fencing: every verb that records an attempt's outcome names the attempt's `lease_token`
and requires the lease to be live (or, for the sweeper, expired). A token is drawn at
random for each step at each claim, so an attempt whose lease expired or was taken over
matches no row and can record nothing: that is the whole argument for "at most one
outcome per attempt".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from ...statuses import ACTIVE_RUNS, sql_list
from ..records import ClaimedStep

RUN_COLUMNS = ("id", "definition", "fingerprint", "key", "status", "input", "input_checksum",
               "output", "error", "open_steps", "created_at", "started_at", "finished_at",
               "trigger_event")
STEP_COLUMNS = ("id", "name", "node", "kind", "task", "map_index", "status", "waiting_on",
                "attempts", "max_attempts", "timeout", "ready_at", "input", "input_checksum",
                "idempotency_key", "output", "error", "lease_owner", "lease_expires_at",
                "started_at", "finished_at", "heartbeat", "heartbeat_at", "heartbeat_details",
                "completion_token")
_CLEAR_LEASE = ("lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, "
                "timeout_at = NULL, completion_token = NULL")
_LIVE = "lease_expires_at > {now}"
# An attempt is over when its lease ran out, its timeout passed, or it missed 3 heartbeats.
# `heartbeat` is the declared interval, or minus DEFAULT_HEARTBEAT once an attempt of a task
# that declared none has beaten: monitored from that beat, for that attempt only (the next
# claim clears the negative value).
_MISSED_2 = "heartbeat_at + 2 * ABS(heartbeat) <= {now}"  # suspicious
_MISSED_3 = "heartbeat_at + 3 * ABS(heartbeat) <= {now}"
_DEAD = f"(lease_expires_at <= {{now}} OR timeout_at <= {{now}} OR {_MISSED_3})"
_HELD = "id, run_id, name, node, kind, map_index, attempts, max_attempts"
#: A run still doing its own work (not ended, nor undoing it).
OPEN_RUN = sql_list(ACTIVE_RUNS)
# A completion token works from the moment the task has it: the other system may answer
# before the worker has recorded the hand-off, while the attempt still holds its lease. Only
# a step of a `completes_externally` task has one (its claim drew it), so no other step can
# be completed from outside, whatever token is made up for it.
_TOKEN_MATCHES = "completion_token = ?"
# A grant holds a concurrency slot while its step runs under the grant's lease token: once
# the attempt ends in any way (outcome, expired lease, cancel, hand-off to another system,
# release) the token is gone and so is the slot, with nothing to repair after a crash.
_HOLDS = ("limit_grants g JOIN steps s ON s.id = g.step_id WHERE s.status = 'running' "
          "AND s.lease_token = g.lease_token")
_LIMIT_COLUMNS = "name, rate, rate_count, rate_period, concurrency"


def _claimed(row: Sequence[Any]) -> ClaimedStep:
    return ClaimedStep(int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6],
                       int(row[7]), row[8], row[9], row[10], row[11], row[12], bool(row[13]))


def marks(n: int) -> str:
    return ",".join("?" * n)


class SqlCore:
    """Runs statements on one connection inside one transaction."""

    NOW = ""
    RANDOM = ""
    LOCK = ""
    SHARE = ""
    SKIP_LOCKED = ""
    #: A run's input contains a text, literally (no wildcards).
    INPUT_HAS = "instr(input, ?) > 0"
    #: The input's field at a path (`_json_path`) is a value given as JSON.
    INPUT_AT = "(input -> ?) = ?"

    @staticmethod
    def _json_path(parts: list[str]) -> str:
        return "$." + ".".join(parts)

    _translated: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._translated = {}  # each dialect (and store class) translates its own way

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    # -- dialect hooks ---------------------------------------------------------------
    def sql(self, text: str) -> str:
        # Statements are a few hundred fixed texts (and `marks(n)` variants): translated
        # once per dialect, not on every step's five statements.
        found = self._translated.get(text)
        if found is None:
            found = self._translate(text)
            if len(self._translated) < 4096:
                self._translated[text] = found
        return found

    def _translate(self, text: str) -> str:
        return text.replace("{now}", self.NOW).replace("{random}", self.RANDOM).replace(
            "{lock}", self.LOCK).replace(
            "{skip_locked}", self.SKIP_LOCKED)

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.sql(text), params)

    def executemany(self, text: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = list(rows)
        if len(batch) == 1:  # a machine's next visit: one row, a plain statement
            self.execute(text, batch[0])
        elif batch:
            self._many(self.sql(text), batch)

    def _many(self, sql: str, rows: list[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def notify(self) -> None:
        """Wake idle workers: steps just became ready."""

    def now(self) -> float:
        return float(self.execute("SELECT {now}").fetchone()[0])

    # -- definitions ------------------------------------------------------------------
    def put_definition(self, fingerprint: str, name: str, kind: str, body: str) -> None:
        self.execute("INSERT INTO definitions (fingerprint, name, kind, body, created_at) "
                     "VALUES (?, ?, ?, ?, {now}) ON CONFLICT (fingerprint) DO NOTHING",
                     (fingerprint, name, kind, body))

    def definition(self, fingerprint: str) -> tuple[str, str] | None:
        """(kind, JSON body) of a stored definition: the kind chooses its driver."""
        row = self.execute("SELECT kind, body FROM definitions WHERE fingerprint = ?",
                           (fingerprint,)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    # -- requests: interventions that recognise their own earlier work ----------------------
    def request_result(self, request: str) -> str | None:
        """The JSON result a request committed, if it did: a transaction retried after its
        commit's acknowledgement was lost returns that instead of acting twice."""
        row = self.execute("SELECT result FROM requests WHERE id = ?", (request,)).fetchone()
        return None if row is None else str(row[0])

    def record_request(self, request: str, result: str) -> None:
        self.execute("INSERT INTO requests (id, result, created_at) VALUES (?, ?, {now})",
                     (request, result))

    def prune_requests(self, older_than: float) -> int:
        cur = self.execute("DELETE FROM requests WHERE created_at < {now} - ?", (older_than,))
        return int(cur.rowcount)

