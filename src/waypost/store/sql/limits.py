"""Rate and concurrency limits, claimed through grants."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..records import LimitRow, LimitUsage
from .core import (
    _HOLDS,
    _LIMIT_COLUMNS,
    SqlCore,
    marks,
)


class LimitVerbs(SqlCore):
    # -- limits ----------------------------------------------------------------------------
    def put_limits(self, limits: Sequence[LimitRow]) -> None:
        self.executemany(
            "INSERT INTO limits (name, rate, rate_count, rate_period, concurrency, updated_at) "
            "VALUES (?, ?, ?, ?, ?, {now}) ON CONFLICT (name) DO UPDATE SET "
            "rate = excluded.rate, rate_count = excluded.rate_count, "
            "rate_period = excluded.rate_period, concurrency = excluded.concurrency, "
            "updated_at = excluded.updated_at",
            [(x.name, x.rate, x.rate_count, x.rate_period, x.concurrency) for x in limits])

    def get_limits(self, names: Sequence[str]) -> list[LimitRow]:
        if not names:
            return []
        rows = self.execute(f"SELECT {_LIMIT_COLUMNS} FROM limits WHERE "
                            f"name IN ({marks(len(names))}) ORDER BY name", names).fetchall()
        return [LimitRow(*r) for r in rows]

    def ready_among(self, groups: Sequence[Sequence[str]]) -> list[bool]:
        """For each group of tasks, whether a step of one of them is ready to claim."""
        if not groups:
            return []
        probe = ("CASE WHEN EXISTS (SELECT 1 FROM steps WHERE status = 'ready' AND "
                 "ready_at <= {now} AND task IN (%s)) THEN 1 ELSE 0 END")
        row = self.execute("SELECT " + ", ".join(probe % marks(len(g)) for g in groups),
                           [t for g in groups for t in g]).fetchone()
        return [bool(v) for v in row]

    def lock_limits(self, names: Sequence[str]) -> list[LimitRow]:
        """Lock the named limits until the transaction ends (in name order, so claims
        never wait on each other in a cycle) and return their definitions."""
        if not names:
            return []
        rows = self.execute(f"SELECT {_LIMIT_COLUMNS} FROM limits WHERE "
                            f"name IN ({marks(len(names))}) ORDER BY name {{lock}}",
                            names).fetchall()
        return [LimitRow(*r) for r in rows]

    def limit_usage(self, name: str, window: float | None, rate_count: int | None,
                    concurrency: bool) -> LimitUsage:
        """How much of a limit is in use. Run it after `lock_limits`: a statement of its
        own sees what the previous holder of the lock committed."""
        parts: list[str] = []
        params: list[Any] = []
        if window is not None and rate_count is not None:
            parts.append("(SELECT COUNT(*) FROM limit_grants WHERE limit_name = ? AND "
                         "granted_at > {now} - ?)")
            parts.append("(SELECT granted_at FROM limit_grants WHERE limit_name = ? AND "
                         "granted_at > {now} - ? ORDER BY granted_at DESC LIMIT 1 OFFSET ?)")
            params += [name, window, name, window, rate_count - 1]
        else:
            parts += ["0", "NULL"]
        if concurrency:
            parts.append(f"(SELECT COUNT(*) FROM {_HOLDS} AND g.limit_name = ?)")
            params.append(name)
        else:
            parts.append("0")
        row = self.execute(f"SELECT {', '.join(parts)}, {{now}}", params).fetchone()
        return LimitUsage(int(row[0]), int(row[2]), None if row[1] is None else float(row[1]),
                          float(row[3]))

    def add_grants(self, grants: Sequence[tuple[str, int, str]]) -> None:
        """Record (limit, step id, lease token) grants, all at this statement's time."""
        if grants:
            values = ", ".join(["(?, ?, ?, {now})"] * len(grants))
            self.execute(f"INSERT INTO limit_grants (limit_name, step_id, lease_token, "
                         f"granted_at) VALUES {values}", [v for g in grants for v in g])

    def prune_grants(self, margin: float) -> int:
        """Forget grants that are out of their rate window and hold no slot."""
        cur = self.execute(
            "DELETE FROM limit_grants WHERE granted_at <= {now} - ? - COALESCE((SELECT "
            "rate_period FROM limits WHERE limits.name = limit_grants.limit_name), 0) "
            "AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.id = limit_grants.step_id AND "
            "s.status = 'running' AND s.lease_token = limit_grants.lease_token)", (margin,))
        return int(cur.rowcount)

    def limits_in_use(self, margin: float,
                      names: Sequence[str] | None = None) -> list[tuple[LimitRow, int, int]]:
        """Every limit (or the named ones) with its grants in the current rate window and
        the attempts holding a slot now."""
        where = "" if names is None else f"WHERE l.name IN ({marks(len(names))})"
        if names is not None and not names:
            return []
        rows = self.execute(
            f"SELECT l.name, l.rate, l.rate_count, l.rate_period, l.concurrency, "
            f"(SELECT COUNT(*) FROM limit_grants g WHERE g.limit_name = l.name AND "
            f"g.granted_at > {{now}} - l.rate_period - ?), "
            f"(SELECT COUNT(*) FROM {_HOLDS} AND g.limit_name = l.name) "
            f"FROM limits l {where} ORDER BY l.name", (margin, *(names or ()))).fetchall()
        return [(LimitRow(*r[:5]), int(r[5]), int(r[6])) for r in rows]
