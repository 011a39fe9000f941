/*
 * libpq with paramTypes = NULL: every parameter is untyped text, as most
 * drivers built on libpq send them; and with the types JDBC gives them
 * (setString: varchar, setLong: int8), since no JVM driver runs here (the
 * test clusters listen on a Unix socket only). Each call is compared with the same
 * question asked in plain SQL through the same connection. Connection from
 * the PG* environment. Prints one summary line; exits 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

static PGconn *conn;
static int checks, failures;

static const char *RANK = "SELECT aggr_rank('d_lb', $1)";
static const char *RANK_SQL = "SELECT 1 + count(*) FROM drv_scores WHERE score > $1 OR score IS NULL";
static const char *COUNT = "SELECT aggr_count('d_game', $1, $2, $3)";
static const char *COUNT_SQL =
    "SELECT count(*) FROM drv_scores WHERE game = $1 AND (score >= $2 OR score IS NULL OR $2 IS NULL)"
    " AND (score <= $3 OR $3 IS NULL)";
static const char *PAGE = "SELECT string_agg(id, ',' ORDER BY position) FROM aggr_page('d_lb', $1, $2)";
static const char *PAGE_SQL =
    "SELECT string_agg(id::text, ',' ORDER BY score DESC, id)"
    " FROM (SELECT id, score FROM drv_scores ORDER BY score DESC, id OFFSET $1 LIMIT $2) s";

static void fail(const char *name, const char *detail1, const char *detail2) {
  if (++failures <= 10) printf("  FAILED %s: %s %s\n", name, detail1, detail2 ? detail2 : "");
}

/* The first column of the only row ("<null>" for NULL, "" for no row), or
 * "ERROR <SQLSTATE> <message>". */
static char *result_text(PGresult *res) {
  char *out = malloc(8192);
  if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
    snprintf(out, 8192, "%s", PQntuples(res) == 0 ? "" : PQgetisnull(res, 0, 0) ? "<null>" : PQgetvalue(res, 0, 0));
  else
    snprintf(out, 8192, "ERROR %s %s", PQresultErrorField(res, PG_DIAG_SQLSTATE), PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
  PQclear(res);
  return out;
}

/* Untyped parameters; a statement name executes a prepared statement. */
static char *ask(const char *prepared, const char *query, int n, const char *const *values) {
  return result_text(prepared ? PQexecPrepared(conn, prepared, n, values, NULL, NULL, 0)
                              : PQexecParams(conn, query, n, NULL, values, NULL, NULL, 0));
}

/* With explicit parameter types, as JDBC sends them: setString is varchar
 * (1043), setLong int8 (20), setNull(i, Types.OTHER) unspecified (0). */
static char *ask_typed(const char *query, int n, const Oid *types, const char *const *values) {
  return result_text(PQexecParams(conn, query, n, types, values, NULL, NULL, 0));
}

static void compare(const char *name, char *got, char *want) {
  checks++;
  if (strncmp(got, "ERROR", 5) == 0) fail(name, got, NULL);
  else if (strncmp(want, "ERROR", 5) == 0) fail(name, "oracle:", want);
  else if (strcmp(got, want) != 0) fail(name, got, want);
  free(got);
  free(want);
}

static void same(const char *name, const char *query, int n, const char *const *values, const char *oracle, int on,
                 const char *const *ovalues) {
  compare(name, ask(NULL, query, n, values), ask(NULL, oracle, on, ovalues));
}

static void error(const char *name, const char *query, int n, const char *const *values, const char *code,
                  const char *mentions) {
  char *got = ask(NULL, query, n, values);
  char expected[32];
  checks++;
  snprintf(expected, sizeof expected, "ERROR %s ", code);
  if (strncmp(got, expected, strlen(expected)) != 0 || !strstr(got, mentions)) fail(name, "expected", code), fail(name, got, NULL);
  free(got);
}

static int prepare(const char *name, const char *query) {
  PGresult *res = PQprepare(conn, name, query, 0, NULL);
  int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  checks++;
  if (!ok) fail(name, "PREPARE:", PQresultErrorMessage(res));
  PQclear(res);
  return ok;
}

static void run(void) {
  const char *k500[] = {"500"}, *k777[] = {"777"};
  same("rank", RANK, 1, k777, RANK_SQL, 1, k777);
  same("rank 500", RANK, 1, k500, RANK_SQL, 1, k500);
  const char *kns[] = {"300", "2"}, *nsk[] = {"2", "300"};
  same("rank namespace", "SELECT aggr_rank('d_game', $1, $2)", 2, kns,
       "SELECT 1 + count(*) FROM drv_scores WHERE game = $1 AND score < $2", 2, nsk);
  /* bounds; a NULL pointer is SQL NULL = unbounded */
  const char *b1[] = {"3", "100", "800"}, *b2[] = {"3", NULL, "800"}, *b3[] = {"3", "100", NULL}, *b4[] = {"0", NULL, NULL};
  same("count", COUNT, 3, b1, COUNT_SQL, 3, b1);
  same("count no lower", COUNT, 3, b2, COUNT_SQL, 3, b2);
  same("count no upper", COUNT, 3, b3, COUNT_SQL, 3, b3);
  same("count unbounded", COUNT, 3, b4, COUNT_SQL, 3, b4);
  /* pages: 32- and 64-bit offsets and limits */
  const char *p1[] = {"100", "20"}, *p2[] = {"4990", "3000000000"}, *p3[] = {"1099511627776", "10"};
  same("page", PAGE, 2, p1, PAGE_SQL, 2, p1);
  same("page int8 limit", PAGE, 2, p2, PAGE_SQL, 2, p2);
  same("page past end", PAGE, 2, p3, PAGE_SQL, 2, p3);
  const char *at[] = {"2500"};
  same("at", "SELECT id FROM aggr_at('d_lb', $1)", 1, at,
       "SELECT id::text AS v FROM drv_scores ORDER BY score DESC, id OFFSET $1 LIMIT 1", 1, at);
  /* text keys */
  const char *name[] = {"player1234"}, *names[] = {"player1", "player2"};
  same("text rank", "SELECT aggr_rank('d_name', $1)", 1, name, "SELECT 1 + count(*) FROM drv_scores WHERE name < $1", 1, name);
  same("text count", "SELECT aggr_count('d_name', lower => $1, upper => $2)", 2, names,
       "SELECT count(*) FROM drv_scores WHERE name BETWEEN $1 AND $2", 2, names);
  /* values that do not convert */
  const char *abc[] = {"abc"}, *frac[] = {"500.5"}, *yes[] = {"true"}, *badns[] = {"x", "1", "2"};
  error("bad value", RANK, 1, abc, "22P02", "integer");
  error("fraction", RANK, 1, frac, "22P02", "integer");
  error("bad typed", "SELECT aggr_rank('d_lb', $1::boolean)", 1, yes, "42804", "integer");
  error("bad namespace", COUNT, 3, badns, "22P02", "integer");
  /* JDBC's types: setString("500") on an integer key, a varchar namespace,
   * setNull(Types.OTHER) as a bound, setLong offsets and limits */
  const Oid varchar1[] = {1043}, count_types[] = {1043, 0, 1043}, int8s[] = {20, 20};
  compare("jdbc setString", ask_typed(RANK, 1, varchar1, k500), ask(NULL, RANK_SQL, 1, k500));
  compare("jdbc setString count", ask_typed(COUNT, 3, count_types, b2), ask(NULL, COUNT_SQL, 3, b2));
  compare("jdbc setLong page", ask_typed(PAGE, 2, int8s, p2), ask(NULL, PAGE_SQL, 2, p2));
  char *bad = ask_typed(RANK, 1, varchar1, abc);
  checks++;
  if (strncmp(bad, "ERROR 22P02 ", 12) != 0 || !strstr(bad, "integer")) fail("jdbc bad setString", bad, NULL);
  free(bad);
  /* EXPLAIN and a cursor declared with parameters */
  char *plan = ask(NULL, "EXPLAIN SELECT aggr_rank('d_lb', $1)", 1, k500);
  checks++;
  if (strncmp(plan, "ERROR", 5) == 0) fail("explain", plan, NULL);
  free(plan);
  free(ask(NULL, "BEGIN", 0, NULL));
  free(ask(NULL, "DECLARE drv_cursor CURSOR FOR SELECT aggr_rank('d_lb', $1)", 1, k777));
  compare("cursor", ask(NULL, "FETCH drv_cursor", 0, NULL), ask(NULL, RANK_SQL, 1, k777));
  free(ask(NULL, "COMMIT", 0, NULL));
  /* statements prepared without types, executed often enough for a generic plan */
  if (prepare("rank", RANK) && prepare("rank_sql", RANK_SQL) && prepare("count", COUNT) && prepare("count_sql", COUNT_SQL) &&
      prepare("page", PAGE) && prepare("page_sql", PAGE_SQL))
    for (int i = 0; i < 25; i++) {
      char k[16], ns[16], hi[16], off[16], lim[16];
      snprintf(k, sizeof k, "%d", (i * 137) % 1000);
      snprintf(ns, sizeof ns, "%d", i % 5);
      snprintf(hi, sizeof hi, "%d", (i * 137) % 1000 + 300);
      snprintf(off, sizeof off, "%d", i * 199);
      snprintf(lim, sizeof lim, "%d", i);
      const char *rv[] = {k}, *cv[] = {ns, k, i % 3 ? hi : NULL}, *pv[] = {off, lim};
      compare("prepared rank", ask("rank", NULL, 1, rv), ask("rank_sql", NULL, 1, rv));
      compare("prepared count", ask("count", NULL, 3, cv), ask("count_sql", NULL, 3, cv));
      compare("prepared page", ask("page", NULL, 2, pv), ask("page_sql", NULL, 2, pv));
    }
}

int main(void) {
  conn = PQconnectdb("");
  if (PQstatus(conn) != CONNECTION_OK) {
    fail("connection", PQerrorMessage(conn), NULL);
  } else {
    run();
  }
  PQfinish(conn);
  printf("libpq %d (PQexecParams untyped, and typed as JDBC types them): %d checks, %d failures\n", PQlibVersion(), checks, failures);
  return failures || !checks ? 1 : 0;
}
