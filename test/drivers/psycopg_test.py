"""psycopg 3 sends a str and None untyped, an int as the smallest integer type
that holds it, Decimal as numeric, float as float8. Each call below is
compared with the same question asked in plain SQL through the same
connection. Connection from the PG* environment. Prints one summary line;
exits 1 on any failure. Run with Debian's /usr/bin/python3 (python3-psycopg).
"""
import sys
from decimal import Decimal

import psycopg

RANK = "SELECT aggr_rank('d_lb', %s)"
RANK_SQL = "SELECT 1 + count(*) FROM drv_scores WHERE score > %s OR score IS NULL"
COUNT = "SELECT aggr_count('d_game', %s, %s, %s)"
COUNT_SQL = ("SELECT count(*) FROM drv_scores WHERE game = %(ns)s"
             " AND (score >= %(lo)s OR score IS NULL OR %(lo)s IS NULL) AND (score <= %(hi)s OR %(hi)s IS NULL)")
PAGE = "SELECT string_agg(id, ',' ORDER BY position) FROM aggr_page('d_lb', %s, %s)"
PAGE_SQL = ("SELECT string_agg(id::text, ',' ORDER BY score DESC, id)"
            " FROM (SELECT id, score FROM drv_scores ORDER BY score DESC, id OFFSET %s LIMIT %s) s")

checks = 0
failures = []


def ask(conn, query, params, prepare=None):
    """The first column of the only row, or (SQLSTATE, message)."""
    try:
        with conn.transaction():
            row = conn.execute(query, params, prepare=prepare).fetchone()
        return ("ok", row[0] if row else None)
    except psycopg.Error as e:
        return (e.sqlstate, str(e).splitlines()[0])


def same(conn, name, query, params, oracle, oracle_params, prepare=None):
    global checks
    checks += 1
    got, want = ask(conn, query, params, prepare), ask(conn, oracle, oracle_params, prepare)
    if got[0] != "ok":
        failures.append(f"{name}: {got[0]} {got[1]}")
    elif want[0] != "ok":
        failures.append(f"{name}: oracle: {want[0]} {want[1]}")
    elif str(got[1]) != str(want[1]):
        failures.append(f"{name}: got {got[1]}, plain SQL says {want[1]}")


def error(conn, name, query, params, code, mentions):
    global checks
    checks += 1
    got = ask(conn, query, params)
    if got[0] != code or mentions not in str(got[1]):
        failures.append(f"{name}: expected {code} naming {mentions}, got {got}")


def works(conn, name, fn):
    global checks
    checks += 1
    try:
        with conn.transaction():
            fn()
    except psycopg.Error as e:
        failures.append(f"{name}: {e.sqlstate} {str(e).splitlines()[0]}")


def main(conn):
    # keys as str (first: untyped, it needs the preload), int, Decimal and float
    for k in ("777", 500, Decimal("500.5"), 500.5, 70000):
        same(conn, f"rank {k!r}", RANK, [k], RANK_SQL, [k])
    same(conn, "rank namespace", "SELECT aggr_rank('d_game', %s, %s)", [300, 2],
         "SELECT 1 + count(*) FROM drv_scores WHERE game = %s AND score < %s", [2, 300])
    # bounds, None = unbounded, namespace as a parameter
    for ns, lo, hi in ((3, 100, 800), (3, None, 800), (3, 100, None), (0, None, None), ("4", "250", "251")):
        same(conn, f"count {ns!r} {lo!r} {hi!r}", COUNT, [ns, lo, hi], COUNT_SQL, {"ns": ns, "lo": lo, "hi": hi})
    same(conn, "count named", "SELECT aggr_count('d_game', namespace => %s, upper => %s, upper_inclusive => %s)",
         [1, 500, False], "SELECT count(*) FROM drv_scores WHERE game = %s AND score < %s", [1, 500])
    # pages: offsets and limits sent as int2, int4, int8, numeric-sized
    for off, lim in ((100, 20), (4990, 3000000000), (70000, 5), (2**40, 10), (4995, 2**62)):
        same(conn, f"page {off} {lim}", PAGE, [off, lim], PAGE_SQL, [off, lim])
    same(conn, "at", "SELECT id FROM aggr_at('d_lb', %s)", [2500],
         "SELECT id::text AS v FROM drv_scores ORDER BY score DESC, id OFFSET %s LIMIT 1", [2500])
    same(conn, "at last", "SELECT id FROM aggr_at('d_lb', %s)", [-1],
         "SELECT id::text AS v FROM drv_scores ORDER BY score ASC NULLS LAST, id DESC LIMIT 1", [])
    # text keys passed as str
    same(conn, "text rank", "SELECT aggr_rank('d_name', %s)", ["player1234"],
         "SELECT 1 + count(*) FROM drv_scores WHERE name < %s", ["player1234"])
    same(conn, "text count", "SELECT aggr_count('d_name', lower => %s, upper => %s)", ["player1", "player2"],
         "SELECT count(*) FROM drv_scores WHERE name BETWEEN %s AND %s", ["player1", "player2"])
    # values that do not convert: the key's type is named
    error(conn, "bad str", RANK, ["abc"], "22P02", "integer")
    error(conn, "bad bool", RANK, [True], "42804", "integer")
    error(conn, "bad namespace", COUNT, ["x", 1, 2], "22P02", "integer")
    # prepared statements (prepare=True), executed often enough for a generic plan
    for i in range(25):
        k = (i * 137) % 1000
        same(conn, f"prepared rank {k}", RANK, [k], RANK_SQL, [k], prepare=True)
        same(conn, f"prepared rank str {k}", RANK, [str(k)], RANK_SQL, [str(k)], prepare=True)
        hi = k + 300 if i % 3 else None
        same(conn, f"prepared count {i}", COUNT, [i % 5, k, hi], COUNT_SQL, {"ns": i % 5, "lo": k, "hi": hi}, prepare=True)
        same(conn, f"prepared page {i}", PAGE, [i * 199, i], PAGE_SQL, [i * 199, i], prepare=True)

    # a server-side cursor (DECLARE ... CURSOR with the parameters) and EXPLAIN
    def cursor_page():
        with conn.cursor(name="drv_cursor") as cur:
            cur.execute("SELECT id FROM aggr_page('d_game', %s, %s, namespace => %s)", ["100", "20", "3"])
            got = ",".join(r[0] for r in cur.fetchall())
        want = conn.execute("SELECT string_agg(id::text, ',' ORDER BY score, id) FROM (SELECT id, score FROM drv_scores"
                            " WHERE game = %s ORDER BY score, id OFFSET %s LIMIT %s) s", [3, 100, 20]).fetchone()[0]
        if got != want:
            failures.append(f"server-side cursor: got {got}, plain SQL says {want}")
    works(conn, "server-side cursor", cursor_page)
    works(conn, "explain", lambda: conn.execute("EXPLAIN SELECT aggr_rank('d_lb', %s)", ["500"]).fetchall())
    # binary parameters (str is then sent as text, not unknown)
    same(conn, "binary str", "SELECT aggr_rank('d_name', %b)", ["player77"],
         "SELECT 1 + count(*) FROM drv_scores WHERE name < %b", ["player77"])


try:
    with psycopg.connect(autocommit=True) as connection:
        main(connection)
except psycopg.Error as e:
    failures.append(f"connection: {e}")
for f in failures[:10]:
    print(f"  FAILED {f}")
print(f"psycopg {psycopg.__version__}: {checks} checks, {len(failures)} failures")
sys.exit(1 if failures or not checks else 0)
