'use strict';

// The Express server that bench/cmd/httpbench measures: the stack pgstore
// replaces (Express 5 + express-session + connect-pg-simple + pg), set up
// the way a typical app is: resave false, saveUninitialized false, the
// pruner off, touch left on (connect-pg-simple's default).
//
// Environment: DATABASE_URL (required), SESSION_SCHEMA and SESSION_TABLE
// (the table must exist), SESSION_SECRET. It listens on 127.0.0.1 on a free
// port and prints "listening <port>" once it accepts requests.

const express = require('express');
const session = require('express-session');
const PgSession = require('connect-pg-simple')(session);
const { Pool } = require('pg');

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  process.stderr.write('DATABASE_URL is required\n');
  process.exit(1);
}

// POOL_MAX is the pool size httpbench gives every server; without it, pg's
// default of 10, which is what the seed ran.
const poolMax = Number.parseInt(process.env.POOL_MAX || '10', 10);
const pool = new Pool({ connectionString: databaseUrl, max: poolMax });
pool.on('error', (err) => process.stderr.write(`pg pool: ${err.message}\n`));

// Every pool.query is one round trip to PostgreSQL (pg sends parse, bind,
// execute and sync together), so counting calls counts round trips.
let queries = 0;
const poolQuery = pool.query.bind(pool);
pool.query = (...args) => {
  queries++;
  return poolQuery(...args);
};

const app = express();
app.disable('x-powered-by');
app.disable('etag');

// Outside the session middleware: the driver reads it between runs.
app.get('/debug/roundtrips', (req, res) => {
  res.type('text/plain').send(String(queries));
});

app.use(session({
  store: new PgSession({
    pool,
    schemaName: process.env.SESSION_SCHEMA || undefined,
    tableName: process.env.SESSION_TABLE || 'user_sessions',
    createTableIfMissing: false,
    pruneSessionInterval: false,
  }),
  secret: process.env.SESSION_SECRET || 'httpbench-not-a-secret',
  resave: false,
  saveUninitialized: false,
  cookie: { httpOnly: true, sameSite: 'lax', secure: false, maxAge: 30 * 24 * 3600 * 1000 },
}));

app.post('/login', (req, res) => {
  const user = req.query.user;
  if (typeof user !== 'string' || user === '') {
    res.status(400).type('text/plain').send('user is required');
    return;
  }
  req.session.user = user;
  res.type('text/plain').send(user);
});

app.get('/read', (req, res) => {
  const user = req.session.user;
  if (typeof user !== 'string') {
    res.status(401).type('text/plain').send('no session');
    return;
  }
  res.type('text/plain').send(user);
});

app.post('/write', (req, res) => {
  if (typeof req.session.user !== 'string') {
    res.status(401).type('text/plain').send('no session');
    return;
  }
  const counter = (req.session.counter || 0) + 1;
  req.session.counter = counter;
  res.type('text/plain').send(String(counter));
});

// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => {
  process.stderr.write(`error: ${req.method} ${req.originalUrl}: ${err && err.stack ? err.stack : err}\n`);
  if (!res.headersSent) res.status(500).type('text/plain').send('internal error');
});

async function main() {
  await pool.query('SELECT 1');
  queries = 0;
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  process.stdout.write(`listening ${server.address().port}\n`);

  const stop = () => {
    server.close(() => pool.end().finally(() => process.exit(0)));
    server.closeAllConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`fatal: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
