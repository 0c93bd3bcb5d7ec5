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
from collections.abc import Callable, Iterator
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


# Words of SQL itself: anything else in a verb's SQL must be a table, a column, an alias
# the verbs' SQL declares, a function the database has, or a dialect placeholder.
_WORDS = """
select from where and or not in is null insert into values update set delete returning on
conflict do nothing excluded case when then else end exists as order by desc asc limit
offset group count sum min max abs coalesce join left distinct union all any cast
create table index if primary key unique references integer real text
begin commit rollback lock for skip locked share row exclusive mode
"""
SQL_WORDS = set(_WORDS.split())
_NAME = r"[A-Za-z_][A-Za-z_0-9]*"


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


def aliases(texts: list[str], tables: set[str]) -> set[str]:
    """Names the SQL declares for a table or a subquery: `FROM runs r`, `JOIN steps s`,
    `(SELECT ...) m`, `... AS lowest`. Declared in one string, usable in another (a
    fragment such as `_HOLDS` declares the aliases the verbs embedding it use)."""
    declared = set()
    for text in texts:
        bare = re.sub(r"'[^']*'", "", text)
        for table, alias in re.findall(rf"\b(?:FROM|JOIN)\s+({_NAME})\s+(?:AS\s+)?({_NAME})",
                                       bare):
            if table in tables:
                declared.add(alias)
        declared |= set(re.findall(rf"\)\s+(?:AS\s+)?({_NAME})", bare))
        declared |= set(re.findall(rf"\bAS\s+({_NAME})", bare))
    return {a for a in declared if not a.isupper() and a.lower() not in SQL_WORDS}


def unknown_names(texts: list[str], tables: set[str], columns: set[str],
                  functions: set[str], rewrite: Callable[[str], str]) -> dict[str, str]:
    """Each identifier in `texts` that is none of the known kinds, with a text naming it;
    `rewrite` is the dialect's `sql()`: a `{placeholder}` is one it replaces."""
    known = tables | columns | aliases(texts, tables)
    unknown: dict[str, str] = {}
    for text in texts:
        bare = re.sub(r"'[^']*'", "", text)  # string literals are values, not names
        for name in re.findall(r"\{(\w+)\}", bare):
            if rewrite("{" + name + "}") == "{" + name + "}":
                unknown.setdefault("{" + name + "}", text)
        bare = re.sub(r"\{\w+\}", " ", bare)
        for match in re.finditer(_NAME, bare):
            word = match.group()
            if word.lower() in SQL_WORDS or word.isupper() or word in known:
                continue
            if bare[match.end():].lstrip().startswith("(") and word.lower() in functions:
                continue  # a call of a function the database has
            unknown.setdefault(word, text)
    return unknown


def schema_names(store: Store) -> tuple[set[str], set[str], set[str], Callable[[str], str]]:
    """(tables, columns, functions, the dialect's placeholder rewriting) of `store`."""
    schema = describe(store)
    tables = {line.split()[1] for line in schema if line.startswith("table ")}
    columns = {line.split()[1].split(".")[1] for line in schema if line.startswith("column ")}
    query = ("SELECT name FROM pragma_function_list" if store.dialect == "sqlite"
             else "SELECT proname FROM pg_proc")
    functions = {str(r[0]).lower() for r in store.read(
        lambda tx: tx.execute(query).fetchall())}  # type: ignore[attr-defined]
    return tables, columns, functions, store.tx_class(None).sql


def test_every_identifier_the_verbs_name_exists(store: Store) -> None:
    unknown = unknown_names(verb_sql(), *schema_names(store))
    assert not unknown, f"names in the verbs' SQL that no migration creates: {unknown}"


def test_the_identifier_check_catches_a_misspelling(store: Store) -> None:
    """What the test above must refuse: a column, a table, a function, an alias, a
    placeholder that does not exist (each next to a correct use of the same kind)."""
    names = schema_names(store)
    wrong = [
        "SELECT lease_tokn FROM steps WHERE lease_token = ?",
        "SELECT id FROM stepz WHERE id = ?",
        "SELECT substr(id, 1, 2), substrr(id, 1, 2) FROM runs",
        "SELECT r.id, q.id FROM runs r WHERE id = ?",
        "UPDATE steps SET lease_token = {random}, ready_at = {rnadom} WHERE id = ?",
        "SELECT id FROM runs WHERE status = 'not_a_name' AND finished_at IS NULL",
    ]
    assert set(unknown_names(wrong, *names)) == {
        "lease_tokn", "stepz", "substrr", "q", "{rnadom}"}
    assert unknown_names([*verb_sql(), "SELECT lease_tokn FROM steps"], *names) == {
        "lease_tokn": "SELECT lease_tokn FROM steps"}


def test_both_dialects_have_the_same_tables_columns_and_references() -> None:
    def shape(dialect: str) -> set[str]:
        lines = (HERE / f"{dialect}.txt").read_text().splitlines()
        return {" ".join(line.split()[:2]) if line.startswith(("table", "column")) else line
                for line in lines if not line.startswith("index")}

    assert shape("sqlite") == shape("postgres")
