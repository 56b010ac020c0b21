'use strict';

// Test fixture for pgstore's Go interop tests: a real Express app whose
// sessions live in PostgreSQL via express-session + connect-pg-simple.
// Every setting comes from the environment; see README.md for the contract.

const express = require('express');
const session = require('express-session');
const PgStore = require('connect-pg-simple')(session);
const { Pool } = require('pg');

const THIRTY_DAYS_MS = 30 * 24 * 60 * 60 * 1000;

function fail(message) {
  process.stderr.write(`config error: ${message}\n`);
  process.exit(1);
}

function readConfig(env) {
  const databaseUrl = env.DATABASE_URL;
  if (!databaseUrl) fail('DATABASE_URL is required');

  let secrets;
  try {
    secrets = JSON.parse(env.SESSION_SECRETS || '');
  } catch {
    fail('SESSION_SECRETS must be a JSON array of strings, e.g. ["new","old"]');
  }
  if (!Array.isArray(secrets) || secrets.length === 0 ||
      !secrets.every((s) => typeof s === 'string' && s.length > 0)) {
    fail('SESSION_SECRETS must be a non-empty JSON array of non-empty strings');
  }

  let maxAge = THIRTY_DAYS_MS;
  const rawMaxAge = env.COOKIE_MAX_AGE_MS;
  if (rawMaxAge !== undefined && rawMaxAge !== '') {
    if (rawMaxAge === 'null') {
      maxAge = null;
    } else if (/^-?\d+$/.test(rawMaxAge)) {
      maxAge = Number(rawMaxAge);
    } else {
      fail('COOKIE_MAX_AGE_MS must be an integer number of milliseconds or "null"');
    }
  }

  const partitioned = env.COOKIE_PARTITIONED === 'true';
  const priority = env.COOKIE_PRIORITY || undefined;
  if (priority !== undefined && !['low', 'medium', 'high'].includes(priority)) {
    fail('COOKIE_PRIORITY must be low, medium or high');
  }
  const rawResave = env.SESSION_RESAVE || 'false';
  if (rawResave !== 'true' && rawResave !== 'false') {
    fail('SESSION_RESAVE must be "true" or "false"');
  }

  const rawPort = env.PORT === undefined || env.PORT === '' ? '0' : env.PORT;
  if (!/^\d+$/.test(rawPort) || Number(rawPort) > 65535) {
    fail('PORT must be an integer between 0 and 65535');
  }

  return {
    databaseUrl,
    tableName: env.SESSION_TABLE || 'user_sessions',
    schemaName: env.SESSION_SCHEMA || undefined,
    secrets,
    cookieName: env.COOKIE_NAME || 'connect.sid',
    maxAge,
    partitioned,
    priority,
    resave: rawResave === 'true',
    port: Number(rawPort),
  };
}

// Small helper so a handler can reject a request with a 4xx status.
function badRequest(message) {
  const err = new Error(message);
  err.status = 400;
  return err;
}

function requireString(query, name) {
  const value = query[name];
  if (typeof value !== 'string') {
    throw badRequest(`query parameter "${name}" is required (exactly once)`);
  }
  return value;
}

// Plain JSON snapshot of the session, cookie included, as a store would see it.
function snapshot(sess) {
  return sess ? JSON.parse(JSON.stringify(sess)) : null;
}

function describe(req) {
  return {
    user: (req.session && req.session.user) ?? null,
    sid: req.sessionID,
    session: snapshot(req.session),
  };
}

// Callback-style session methods wrapped as promises.
function call(sess, method) {
  return new Promise((resolve, reject) => {
    sess[method]((err) => (err ? reject(err) : resolve()));
  });
}

function buildApp(cfg, pool) {
  const store = new PgStore({
    pool,
    tableName: cfg.tableName,
    schemaName: cfg.schemaName,
    createTableIfMissing: false,
    pruneSessionInterval: false,
    errorLog: (...args) => console.error('connect-pg-simple:', ...args),
  });

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');

  app.use(session({
    store,
    name: cfg.cookieName,
    secret: cfg.secrets,
    resave: cfg.resave,
    saveUninitialized: false,
    rolling: false,
    cookie: {
      httpOnly: true,
      sameSite: 'lax',
      secure: false,
      path: '/',
      maxAge: cfg.maxAge,
      partitioned: cfg.partitioned || undefined,
      priority: cfg.priority,
    },
  }));

  app.use((req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  app.get('/healthz', (req, res) => {
    res.json({ ok: true });
  });

  app.post('/login', async (req, res) => {
    const user = requireString(req.query, 'user');
    await call(req.session, 'regenerate');
    req.session.user = user;
    await call(req.session, 'save');
    res.json({ sid: req.sessionID, user });
  });

  app.get('/whoami', (req, res) => {
    res.json(describe(req));
  });

  app.post('/set', (req, res) => {
    const key = requireString(req.query, 'key');
    const raw = requireString(req.query, 'value');
    // Refuse names that would clobber the cookie or Session internals/methods.
    if (key === 'cookie' ||
        (key in req.session && !Object.prototype.propertyIsEnumerable.call(req.session, key))) {
      throw badRequest(`key "${key}" is reserved`);
    }
    let value;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    req.session[key] = value;
    res.json(describe(req));
  });

  // Sets key to the JSON value in the request body: values too large or
  // too deep for a query string (the interop value corpus).
  app.post('/setjson', express.text({ type: '*/*', limit: '8mb' }), (req, res) => {
    const key = requireString(req.query, 'key');
    if (key === 'cookie') throw badRequest('key "cookie" is reserved');
    req.session[key] = JSON.parse(req.body);
    res.json({ ok: true });
  });

  app.post('/incr', (req, res) => {
    const counter = (req.session.counter || 0) + 1;
    req.session.counter = counter;
    res.json({ counter });
  });

  // Requests held between loading and saving their session, by token, so
  // that a test can act on the session while a request is in flight.
  const holds = new Map();
  const HOLD_LIMIT_MS = 10000;

  app.post('/hold', async (req, res) => {
    const token = requireString(req.query, 'token');
    const incr = req.query.incr === '1';
    if (holds.has(token)) throw badRequest(`token "${token}" is already held`);
    let timer;
    const how = new Promise((resolve) => {
      holds.set(token, resolve);
      timer = setTimeout(() => resolve('timeout'), HOLD_LIMIT_MS);
    });
    // The first line goes out now: the session is loaded.
    res.type('application/json');
    res.write(JSON.stringify(describe(req)) + '\n');
    const outcome = await how;
    clearTimeout(timer);
    holds.delete(token);
    if (outcome !== 'released') {
      res.end(JSON.stringify({ error: `not released within ${HOLD_LIMIT_MS} ms` }) + '\n');
      return;
    }
    if (incr) req.session.counter = (req.session.counter || 0) + 1;
    // express-session saves the session (or touches it) as the response ends.
    res.end(JSON.stringify(describe(req)) + '\n');
  });

  app.post('/release', (req, res) => {
    const token = requireString(req.query, 'token');
    const release = holds.get(token);
    if (!release) {
      res.status(404).json({ error: `no request holds token "${token}"` });
      return;
    }
    release('released');
    res.json({ ok: true });
  });

  app.post('/logout', async (req, res) => {
    await call(req.session, 'destroy');
    res.json({ ok: true });
  });

  app.use((req, res) => {
    res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
  });

  // Express 5 forwards rejected promises from async handlers here.
  // eslint-disable-next-line no-unused-vars
  app.use((err, req, res, next) => {
    const status = err && err.status === 400 ? 400 : 500;
    const message = (err && err.message) || String(err);
    const detail = status === 500 && err && err.stack ? err.stack : message;
    console.error(`error ${status}: ${req.method} ${req.originalUrl}: ${detail}`);
    if (res.headersSent) return;
    res.status(status).json({ error: message });
  });

  return app;
}

async function main() {
  const cfg = readConfig(process.env);

  const pool = new Pool({ connectionString: cfg.databaseUrl });
  pool.on('error', (err) => console.error('pg pool error:', err.message));

  // Fail fast (exit 1) when the database is unreachable.
  await pool.query('SELECT 1');

  const app = buildApp(cfg, pool);
  const server = app.listen(cfg.port, '127.0.0.1');
  await new Promise((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  server.on('error', (err) => console.error('server error:', err.message));
  process.stdout.write(`listening ${server.address().port}\n`);

  let stopping = false;
  const shutdown = (signal) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`received ${signal}, shutting down\n`);
    // Don't let lingering keep-alive clients hold the process open.
    const force = setTimeout(() => server.closeAllConnections(), 2000);
    force.unref();
    server.close(async () => {
      try {
        await pool.end();
      } catch (err) {
        console.error('error closing pg pool:', err.message);
      }
      process.exit(0);
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err) => {
  console.error('fatal:', err && err.stack ? err.stack : err);
  process.exit(1);
});
