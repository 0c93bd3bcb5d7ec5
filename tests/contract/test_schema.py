"""The migrations produce the schema the code expects.

`schema/<dialect>.txt` is the schema an empty database has after every migration: tables,
columns (type, nullability, primary key), foreign keys and indexes. A migration that changes it must
change the file too (WAYPOST_WRITE_SCHEMA=1 rewrites it; review the diff). And every
identifier the SQL verbs name must be a table or a column of that schema (or SQL), so a
verb cannot refer to a column no migration creates.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from waypost.store import Store, open_store

HERE = Path(__file__).parent / "schema"
SQL_DIR = Path(__file__).resolve().parents[2] / "src" / "waypost" / "store" / "sql"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


def describe(store: Store) -> list[str]:
    """The schema as sorted lines: `table t`, `column t.c type [not null] [pk]`,
    `reference t.c -> u.d`, `index t name: definition`."""
    lines: list[str] = []
    if store.dialect == "sqlite":
        def dump(tx: object) -> None:
            execute = tx.execute  # type: ignore[attr-defined]
            tables = [r[0] for r in execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                "name NOT LIKE 'sqlite_%'").fetchall()]
            for t in tables:
                lines.append(f"table {t}")
                for _, name, kind, notnull, _, pk in execute(f"PRAGMA table_info({t})"):
                    lines.append(f"column {t}.{name} {kind.lower()}"
                                 f"{' not null' if notnull else ''}{' pk' if pk else ''}")
                for fk in execute(f"PRAGMA foreign_key_list({t})"):
                    lines.append(f"reference {t}.{fk[3]} -> {fk[2]}.{fk[4]}")
            for name, table, sql in execute(
                    "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index'"):
                lines.append(f"index {table} {name}: {' '.join((sql or 'auto').split())}")
    else:
        def dump(tx: object) -> None:
            execute = tx.execute  # type: ignore[attr-defined]
            for (t,) in execute("SELECT table_name FROM information_schema.tables WHERE "
                                "table_schema = current_schema()"):
                lines.append(f"table {t}")
            pks = {(r[0], r[1]) for r in execute(
                "SELECT k.table_name, k.column_name FROM information_schema.key_column_usage"
                " k JOIN information_schema.table_constraints c ON c.constraint_name = "
                "k.constraint_name AND c.table_schema = k.table_schema WHERE "
                "c.constraint_type = 'PRIMARY KEY' AND k.table_schema = current_schema()")}
            for t, name, kind, nullable in execute(
                    "SELECT table_name, column_name, data_type, is_nullable FROM "
                    "information_schema.columns WHERE table_schema = current_schema()"):
                lines.append(f"column {t}.{name} {kind}"
                             f"{' not null' if nullable == 'NO' else ''}"
                             f"{' pk' if (t, name) in pks else ''}")
            for t, column, other, other_column in execute(
                    "SELECT k.table_name, k.column_name, u.table_name, u.column_name FROM "
                    "information_schema.referential_constraints r JOIN "
                    "information_schema.key_column_usage k ON k.constraint_name = "
                    "r.constraint_name AND k.constraint_schema = r.constraint_schema JOIN "
                    "information_schema.key_column_usage u ON u.constraint_name = "
                    "r.unique_constraint_name AND u.constraint_schema = "
                    "r.unique_constraint_schema WHERE r.constraint_schema = current_schema()"):
                lines.append(f"reference {t}.{column} -> {other}.{other_column}")
            for table, name, definition in execute(
                    "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE "
                    "schemaname = current_schema()"):
                definition = re.sub(r' ON \S+\.', ' ON ', definition)
                lines.append(f"index {table} {name}: {definition}")
    store.read(dump)
    return sorted(lines)


def test_migrations_give_the_expected_schema(store: Store) -> None:
    expected_file = HERE / f"{store.dialect}.txt"
    got = describe(store)
    if os.environ.get("WAYPOST_WRITE_SCHEMA"):
        expected_file.write_text("\n".join(got) + "\n")
    expected = expected_file.read_text().splitlines()
    assert got == expected, "the migrations' schema differs from " + str(expected_file)


# Words of SQL itself and the aliases the verbs use: anything else in a verb's SQL must be
# a table or a column.
_WORDS = """
select from where and or not in is null insert into values update set delete returning on
conflict do nothing excluded case when then else end exists as order by desc asc limit
offset group count sum min max abs coalesce join left distinct union all any
create table index if primary key unique references integer real text
begin commit rollback lock for skip locked share row exclusive mode
a s g l m lowest now lock skip_locked
"""
SQL_WORDS = set(_WORDS.split())


def verb_sql() -> list[str]:
    """Every string in store/sql/ that looks like SQL (f-strings by their literal parts),
    and the column names listed in tuples (RUN_COLUMNS, a verb's `cols`)."""
    found = []
    for path in sorted(SQL_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(
                    r"\b(SELECT|UPDATE|INSERT|DELETE|FROM|WHERE|SET)\b", node.value):
                found.append(node.value)
            elif isinstance(node, ast.Tuple) and node.elts and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) and
                    re.fullmatch(r"[a-z_]+", e.value) for e in node.elts):
                found += [e.value for e in node.elts]  # type: ignore[attr-defined]
    return found


def test_every_identifier_the_verbs_name_exists(store: Store) -> None:
    schema = describe(store)
    names = {line.split()[1] for line in schema if line.startswith("table ")}
    names |= {line.split()[1].split(".")[1] for line in schema if line.startswith("column ")}
    unknown: dict[str, str] = {}
    for text in verb_sql():
        bare = re.sub(r"'[^']*'", "", text)  # string literals are values, not names
        for word in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", bare):
            if word.lower() in SQL_WORDS or word.isupper() or word in names:
                continue
            unknown.setdefault(word, text)
    assert not unknown, f"names in the verbs' SQL that no migration creates: {unknown}"


def test_both_dialects_have_the_same_tables_columns_and_references() -> None:
    def shape(dialect: str) -> set[str]:
        lines = (HERE / f"{dialect}.txt").read_text().splitlines()
        return {" ".join(line.split()[:2]) if line.startswith(("table", "column")) else line
                for line in lines if not line.startswith("index")}

    assert shape("sqlite") == shape("postgres")
