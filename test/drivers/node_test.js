// node-postgres sends every parameter as text of unknown type: each call
// below is compared with the same question asked in plain SQL through the
// same client. Connection from PGHOST / PGPORT / PGUSER / PGDATABASE (and
// PGOPTIONS). Prints one summary line; exits 1 on any failure.
'use strict';
const { Client } = require('pg');

const RANK = "SELECT aggr_rank('d_lb', $1) AS v";
const RANK_SQL = 'SELECT 1 + count(*) AS v FROM drv_scores WHERE score > $1 OR score IS NULL';
const COUNT = "SELECT aggr_count('d_game', $1, $2, $3) AS v";
const COUNT_SQL =
  'SELECT count(*) AS v FROM drv_scores WHERE game = $1 AND (score >= $2 OR score IS NULL OR $2 IS NULL) AND (score <= $3 OR $3 IS NULL)';
const PAGE = "SELECT string_agg(id, ',' ORDER BY position) AS v FROM aggr_page('d_lb', $1, $2)";
const PAGE_SQL =
  "SELECT string_agg(id::text, ',' ORDER BY score DESC, id) AS v FROM (SELECT id, score FROM drv_scores ORDER BY score DESC, id OFFSET $1 LIMIT $2) s";

let checks = 0;
const failures = [];

function fail(name, detail) {
  failures.push(`${name}: ${detail}`);
}

// The value of column v of the only row, or the error's SQLSTATE and message.
async function ask(client, query) {
  try {
    const res = await client.query(query);
    return { value: res.rows.length ? res.rows[0].v : undefined };
  } catch (e) {
    return { code: e.code, message: e.message };
  }
}

async function same(client, name, query, oracle) {
  checks++;
  const [got, want] = [await ask(client, query), await ask(client, oracle)];
  if (got.code) return fail(name, `${got.code} ${got.message}`);
  if (want.code) return fail(name, `oracle: ${want.code} ${want.message}`);
  if (String(got.value) !== String(want.value)) fail(name, `got ${got.value}, plain SQL says ${want.value}`);
}

async function error(client, name, query, code, mentions) {
  checks++;
  const got = await ask(client, query);
  if (got.code !== code || !got.message.includes(mentions))
    fail(name, `expected ${code} naming ${mentions}, got ${got.code ? `${got.code} ${got.message}` : got.value}`);
}

async function main() {
  const client = new Client();
  await client.connect();
  const q = (text, values) => ({ text, values });

  // keys as JS numbers, strings, and numeric (typed by a cast)
  await same(client, 'rank int', q(RANK, [500]), q(RANK_SQL, [500]));
  await same(client, 'rank string', q(RANK, ['777']), q(RANK_SQL, ['777']));
  await same(client, 'rank numeric', q("SELECT aggr_rank('d_lb', $1::numeric) AS v", [500.5]),
             q('SELECT 1 + count(*) AS v FROM drv_scores WHERE score > $1::numeric OR score IS NULL', [500.5]));
  await same(client, 'rank namespace', q("SELECT aggr_rank('d_game', $1, $2) AS v", [300, 2]),
             q('SELECT 1 + count(*) AS v FROM drv_scores WHERE game = $2 AND score < $1', [300, 2]));
  // bounds, null = unbounded, namespace as a parameter
  for (const [ns, lo, hi] of [[3, 100, 800], [3, null, 800], [3, 100, null], [0, null, null], ['4', '250', '251']])
    await same(client, `count ${ns} ${lo} ${hi}`, q(COUNT, [ns, lo, hi]), q(COUNT_SQL, [ns, lo, hi]));
  await same(client, 'count named', q("SELECT aggr_count('d_game', namespace => $1, upper => $2, upper_inclusive => $3) AS v", [1, 500, false]),
             q('SELECT count(*) AS v FROM drv_scores WHERE game = $1 AND score < $2', [1, 500]));
  // pages: 32- and 64-bit offsets and limits
  await same(client, 'page', q(PAGE, [100, 20]), q(PAGE_SQL, [100, 20]));
  await same(client, 'page int8 limit', q(PAGE, [4990, 3000000000]), q(PAGE_SQL, [4990, 3000000000]));
  await same(client, 'page bigint', q(PAGE, [4995n, 5000000000n]), q(PAGE_SQL, [4995n, 5000000000n]));
  await same(client, 'page past end', q(PAGE, ['1099511627776', 10]), q(PAGE_SQL, ['1099511627776', 10]));
  await same(client, 'at', q("SELECT id AS v FROM aggr_at('d_lb', $1)", [2500]),
             q('SELECT id::text AS v FROM drv_scores ORDER BY score DESC, id OFFSET $1 LIMIT 1', [2500]));
  await same(client, 'at last', q("SELECT id AS v FROM aggr_at('d_lb', $1)", [-1]),
             q('SELECT id::text AS v FROM drv_scores ORDER BY score ASC NULLS LAST, id DESC LIMIT 1', []));
  // text keys passed as strings
  await same(client, 'text rank', q("SELECT aggr_rank('d_name', $1) AS v", ['player1234']),
             q('SELECT 1 + count(*) AS v FROM drv_scores WHERE name < $1', ['player1234']));
  await same(client, 'text count', q("SELECT aggr_count('d_name', lower => $1, upper => $2) AS v", ['player1', 'player2']),
             q('SELECT count(*) AS v FROM drv_scores WHERE name BETWEEN $1 AND $2', ['player1', 'player2']));
  // values that do not convert: the key's type is named
  await error(client, 'bad string', q(RANK, ['abc']), '22P02', 'integer');
  await error(client, 'bad numeric string', q(RANK, ['500.5']), '22P02', 'integer');
  await error(client, 'bad typed', q("SELECT aggr_rank('d_lb', $1::boolean) AS v", [true]), '42804', 'integer');
  await error(client, 'bad namespace', q(COUNT, ['x', 1, 2]), '22P02', 'integer');
  // named statements, executed often enough for a generic plan
  for (let i = 0; i < 25; i++) {
    const k = (i * 137) % 1000;
    await same(client, `named rank ${k}`, { name: 'drv_rank', text: RANK, values: [k] }, { name: 'drv_rank_sql', text: RANK_SQL, values: [k] });
    await same(client, `named count ${i}`, { name: 'drv_count', text: COUNT, values: [i % 5, k, i % 3 ? k + 300 : null] },
               { name: 'drv_count_sql', text: COUNT_SQL, values: [i % 5, k, i % 3 ? k + 300 : null] });
    await same(client, `named page ${i}`, { name: 'drv_page', text: PAGE, values: [i * 199, i] },
               { name: 'drv_page_sql', text: PAGE_SQL, values: [i * 199, i] });
  }
  await client.end();
}

main()
  .catch((e) => fail('connection', e.message))
  .finally(() => {
    for (const f of failures.slice(0, 10)) console.log(`  FAILED ${f}`);
    console.log(`node-postgres: ${checks} checks, ${failures.length} failures`);
    process.exit(failures.length || !checks ? 1 : 0);
  });
