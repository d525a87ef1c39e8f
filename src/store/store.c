/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The model store on SQLite; docs/internals/store.md has the schema, the publish protocol
 * and example queries. Invariants:
 * - readers only go through `current` (and runs), so a run's rows are invisible until
 *   myr_store_run_publish() makes all of them current in one transaction;
 * - puts go into a batch transaction committed every BATCH_ROWS rows, BATCH_BYTES of
 *   blobs or BATCH_SECONDS, so a writer never holds the write lock for long and a short
 *   run's pages reach the WAL while it trains, not all at publish; a batch holds one
 *   run's rows;
 * - when a batch is lost after an error, its run can no longer be published (lost_run);
 * - everything read back from the file is untrusted: key names are revalidated before
 *   they go into SQL text, NULLs and odd types become empty values, nothing crashes.
 */
#include "myriad/store.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/alloc.h"

#define STORE_SCHEMA_VERSION 1  /* PRAGMA user_version of stores this file writes */
#define STORE_APP_ID 0x4d595244 /* PRAGMA application_id: "MYRD" */
#define MAX_KEYS 64             /* key columns per store */
#define MAX_NAME 128            /* bytes per key column name */
#define MAX_METRIC 64           /* bytes per metric name in a query */
#define BATCH_ROWS 20000        /* puts per batch transaction ... */
#define BATCH_BYTES (4u << 20)  /* ... or blob bytes (about a WAL checkpoint) ... */
#define BATCH_SECONDS 1.0       /* ... or seconds, whichever comes first */
#define BUSY_MS 5000            /* wait this long for another writer's lock */
#define QCACHE 4                /* cached query statements per handle */

#define NOW_SQL "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

typedef struct qslot {
  char *sql;        /* owned SQL text; NULL when the slot is empty */
  sqlite3_stmt *st; /* statement prepared from sql */
  int busy;         /* handed out to a query in progress (callbacks may nest) */
} qslot;

struct myr_store {
  sqlite3 *db;             /* the connection, owned */
  char *path;              /* as given to myr_store_open, for messages */
  int readonly;            /* opened with MYR_STORE_READONLY */
  size_t n_keys;           /* key columns; 0 until the first run fixed them */
  char **key_names;        /* n_keys owned names, validated */
  sqlite3_stmt *ins_model; /* INSERT INTO models, prepared once key names are known */
  sqlite3_stmt *ins_blob;  /* INSERT INTO blobs */
  sqlite3_stmt *ins_error; /* INSERT INTO errors */
  int in_txn;              /* this handle has a write transaction open */
  int in_snapshot;         /* a read transaction held by myr_store_snapshot_begin */
  size_t batch_rows;       /* rows put in the open transaction */
  size_t batch_bytes;      /* blob bytes put in the open transaction */
  double batch_t0;         /* monotonic time the open transaction began */
  int64_t run_id;          /* running run validated for puts; 0 = none */
  char *run_family;        /* that run's family, copied into each model row */
  int64_t lost_run;        /* run whose uncommitted rows were rolled back; 0 = none */
  qslot qc[QCACHE];        /* prepared query statements, reused by SQL text */
  unsigned qc_next;        /* round-robin victim in qc */
};

/* ---------------------------------------------------------------- small helpers */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* uint64 <-> int64 keeping the bit pattern (SQLite integers are signed). */
static int64_t u2i(uint64_t u) {
  return u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}
static uint64_t i2u(int64_t i) {
  return (uint64_t)i;
}

static int ascii_casecmp(const char *a, const char *b) {
  for (;; a++, b++) {
    int ca = (unsigned char)*a, cb = (unsigned char)*b;
    if (ca >= 'A' && ca <= 'Z')
      ca += 'a' - 'A';
    if (cb >= 'A' && cb <= 'Z')
      cb += 'a' - 'A';
    if (ca != cb || !ca)
      return ca - cb;
  }
}

/* A growable string for SQL text; oom sticks so callers check once at the end. */
typedef struct sbuf {
  char *p;    /* NUL-terminated text, owned */
  size_t len; /* bytes used, NUL excluded */
  size_t cap; /* bytes allocated */
  int oom;    /* an allocation failed; p holds a prefix */
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = myr__realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_add(sbuf *b, const char *s) {
  sb_addn(b, s, strlen(s));
}

static void sb_int(sbuf *b, long long v) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%lld", v);
  sb_add(b, tmp);
}

/* Names are validated (no '"'), so plain double quotes make a safe identifier. */
static void sb_ident(sbuf *b, const char *prefix, const char *name) {
  sb_add(b, prefix);
  sb_add(b, "\"");
  sb_add(b, name);
  sb_add(b, "\"");
}

/* prefix"k1"suffix, prefix"k2"suffix ... joined by sep. */
static void sb_keys(sbuf *b, const myr_store *s, const char *prefix, const char *suffix,
                    const char *sep) {
  for (size_t i = 0; i < s->n_keys; i++) {
    if (i)
      sb_add(b, sep);
    sb_ident(b, prefix, s->key_names[i]);
    sb_add(b, suffix);
  }
}

static void sb_free(sbuf *b) {
  myr__free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* "a, b, c" into buf (cut to fit); "(none yet)" when n is 0. */
static const char *join_names(char *buf, size_t cap, const char *const *names, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  if (n == 0)
    snprintf(buf, cap, "(none yet)");
  for (size_t i = 0; i < n && used + 1 < cap; i++) {
    int w =
        snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", names[i] ? names[i] : "");
    if (w < 0)
      break;
    used += (size_t)w;
  }
  return buf;
}

/* "app=a1, api=/login" for messages, cut to fit. */
static const char *key_desc(char *buf, size_t cap, const myr_store *s,
                            const char *const *values, const size_t *lens) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < s->n_keys && used + 1 < cap; i++) {
    size_t len = lens[i] > 200 ? 200 : lens[i];
    int w = snprintf(buf + used, cap - used, "%s%s=%.*s", i ? ", " : "", s->key_names[i],
                     (int)len, values[i] ? values[i] : "");
    if (w < 0)
      break;
    used += (size_t)w;
  }
  return buf;
}

/* ---------------------------------------------------------------- errors */

static int map_rc(int rc) {
  switch (rc & 0xff) {
  case SQLITE_NOMEM: return MYR_ENOMEM;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: return MYR_ECORRUPT;
  case SQLITE_IOERR:
  case SQLITE_FULL:
  case SQLITE_CANTOPEN: return MYR_EIO;
  case SQLITE_CONSTRAINT: return MYR_EINVAL;
  default: return MYR_ESTORE;
  }
}

/* Sets err from the connection's last error; call before anything else touches db. */
static int db_error(const myr_store *s, myr_error *err, int rc, const char *what) {
  const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
  if ((rc & 0xff) == SQLITE_NOTADB)
    return myr_error_set(err, MYR_ECORRUPT, "%s is not a myriad store: %s: %s", s->path,
                         what, msg);
  return myr_error_set(err, map_rc(rc), "store %s: %s: %s", s->path, what, msg);
}

static int exec(myr_store *s, const char *sql, const char *what, myr_error *err) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? MYR_OK : db_error(s, err, rc, what);
}

static int prepare(myr_store *s, const char *sql, unsigned pflags, sqlite3_stmt **out,
                   const char *what, myr_error *err) {
  int rc = sqlite3_prepare_v3(s->db, sql, -1, pflags, out, NULL);
  if (rc != SQLITE_OK) {
    *out = NULL;
    return db_error(s, err, rc, what);
  }
  return MYR_OK;
}

/* First row of sql as up to n integers (?1 bound to bind when the SQL has it).
 *found is 0 when no row came. */
static int query_ints(myr_store *s, const char *sql, int64_t bind, int64_t *out, int n,
                      int *found, const char *what, myr_error *err) {
  sqlite3_stmt *q = NULL;
  int st = prepare(s, sql, 0, &q, what, err);
  if (st != MYR_OK)
    return st;
  if (sqlite3_bind_parameter_count(q) > 0)
    sqlite3_bind_int64(q, 1, bind);
  int rc = sqlite3_step(q);
  *found = 0;
  if (rc == SQLITE_ROW) {
    *found = 1;
    for (int i = 0; i < n; i++)
      out[i] = sqlite3_column_int64(q, i);
  } else if (rc != SQLITE_DONE) {
    st = db_error(s, err, rc, what);
  }
  sqlite3_finalize(q);
  return st;
}

/* Whether text is NULL or a JSON object; *ok receives the answer. */
static int json_object_ok(myr_store *s, const char *text, int *ok, myr_error *err) {
  sqlite3_stmt *q = NULL;
  *ok = 1;
  if (!text)
    return MYR_OK;
  MYR_RETURN_NOT_OK(
      prepare(s,
              "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) = 'object'"
              " ELSE 0 END",
              0, &q, "checking JSON", err));
  sqlite3_bind_text(q, 1, text, -1, SQLITE_STATIC);
  int rc = sqlite3_step(q), st = MYR_OK;
  if (rc == SQLITE_ROW)
    *ok = sqlite3_column_int(q, 0) == 1;
  else
    st = db_error(s, err, rc, "checking JSON");
  sqlite3_finalize(q);
  return st;
}

/* ---------------------------------------------------------------- transactions */

/* Nothing put in the open transaction (it just began, committed or rolled back). */
static void batch_clear(myr_store *s) {
  s->batch_rows = 0;
  s->batch_bytes = 0;
}

static void txn_abort(myr_store *s) {
  if (!sqlite3_get_autocommit(s->db))
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  if (s->in_txn && s->batch_rows > 0 && s->run_id > 0)
    s->lost_run = s->run_id;
  s->in_txn = 0;
  batch_clear(s);
}

static int txn_begin(myr_store *s, myr_error *err) {
  if (s->in_txn)
    return MYR_OK;
  MYR_RETURN_NOT_OK(exec(s, "BEGIN IMMEDIATE", "starting a write transaction", err));
  s->in_txn = 1;
  batch_clear(s);
  s->batch_t0 = now_s();
  return MYR_OK;
}

static int txn_commit(myr_store *s, myr_error *err) {
  if (!s->in_txn)
    return MYR_OK;
  int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  if (rc == SQLITE_OK) {
    s->in_txn = 0;
    batch_clear(s);
    return MYR_OK;
  }
  int st = db_error(s, err, rc, "committing");
  txn_abort(s);
  return st;
}

/* After a failed statement: SQLite may have rolled the whole transaction back. */
static void txn_check(myr_store *s) {
  if (s->in_txn && sqlite3_get_autocommit(s->db))
    txn_abort(s);
}

/* ---------------------------------------------------------------- key names */

static const char *const RESERVED[] = {"model_id", "run_id",   "key_hash",  "version",
                                       "family",   "n_rows",   "n_holdout", "metrics",
                                       "blob",     "error_id", "reason",    "message"};

/* Why name cannot be a key column, or NULL when it can. */
static const char *bad_key_name(const char *name) {
  if (!name)
    return "is NULL";
  size_t n = strlen(name);
  if (n == 0)
    return "is empty";
  if (n > MAX_NAME)
    return "is longer than 128 bytes";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == ' ' || c == '.' || c == '-' || c == '/';
    if (!ok)
      return "has a character outside [A-Za-z0-9_ .-/]";
  }
  for (size_t i = 0; i < sizeof RESERVED / sizeof RESERVED[0]; i++)
    if (ascii_casecmp(name, RESERVED[i]) == 0)
      return "is the name of a fixed store column";
  return NULL;
}

static void free_names(char **names, size_t n) {
  if (!names)
    return;
  for (size_t i = 0; i < n; i++)
    myr__free(names[i]);
  myr__free(names);
}

static void drop_inserts(myr_store *s) {
  sqlite3_finalize(s->ins_model);
  sqlite3_finalize(s->ins_blob);
  sqlite3_finalize(s->ins_error);
  s->ins_model = s->ins_blob = s->ins_error = NULL;
}

/* Read the key names fixed by the first run (no-op once known). A store whose names do
   not parse or validate is corrupt: they end up inside SQL text. */
static int load_key_names(myr_store *s, myr_error *err) {
  static const char count_sql[] =
      "SELECT CASE WHEN json_valid(value) THEN CASE WHEN json_type(value) = 'array' "
      "THEN json_array_length(value) ELSE -1 END ELSE -1 END "
      "FROM meta WHERE name = 'key_names'";
  static const char list_sql[] =
      "SELECT j.value, j.type FROM meta, json_each(meta.value) AS j "
      "WHERE meta.name = 'key_names' ORDER BY j.key";
  sqlite3_stmt *q = NULL;
  char **names = NULL;
  size_t n = 0, got = 0;
  int64_t count = 0;
  int found = 0, st;
  if (s->n_keys)
    return MYR_OK;
  st = query_ints(s, count_sql, 0, &count, 1, &found, "reading the key names", err);
  if (st != MYR_OK || !found)
    return st;
  if (count < 1 || count > MAX_KEYS)
    return myr_error_set(err, MYR_ECORRUPT,
                         "store %s: meta.key_names is not a JSON array of 1 to %d names",
                         s->path, MAX_KEYS);
  n = (size_t)count;
  names = myr__calloc(n, sizeof *names);
  if (!names) {
    st = myr_error_set(err, MYR_ENOMEM, "store %s: out of memory reading key names",
                       s->path);
    goto done;
  }
  st = prepare(s, list_sql, 0, &q, "reading the key names", err);
  if (st != MYR_OK)
    goto done;
  for (;;) {
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE)
      break;
    if (rc != SQLITE_ROW) {
      st = db_error(s, err, rc, "reading the key names");
      goto done;
    }
    const char *type = (const char *)sqlite3_column_text(q, 1);
    const char *name = (const char *)sqlite3_column_text(q, 0);
    const char *why = bad_key_name(name);
    if (got >= n || !type || strcmp(type, "text") != 0 || why) {
      st = myr_error_set(err, MYR_ECORRUPT,
                         "store %s: meta.key_names holds a bad name (%s)", s->path,
                         why ? why : "not a string");
      goto done;
    }
    names[got] = myr__strdup(name);
    if (!names[got]) {
      st = myr_error_set(err, MYR_ENOMEM, "store %s: out of memory reading key names",
                         s->path);
      goto done;
    }
    got++;
  }
  if (got != n) {
    st = myr_error_set(err, MYR_ECORRUPT, "store %s: meta.key_names changed while read",
                       s->path);
    goto done;
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++)
      if (ascii_casecmp(names[i], names[j]) == 0) {
        st = myr_error_set(err, MYR_ECORRUPT, "store %s: meta.key_names repeats '%s'",
                           s->path, names[i]);
        goto done;
      }
  s->key_names = names;
  s->n_keys = n;
  names = NULL;
done:
  sqlite3_finalize(q);
  free_names(names, n);
  return st;
}

/* Prepare the insert statements once key names are known. */
static int prepare_inserts(myr_store *s, myr_error *err) {
  sbuf a = {0}, b = {0};
  int st = MYR_OK;
  if (s->ins_model)
    return MYR_OK;
  sb_add(&a, "INSERT INTO models(run_id, key_hash, ");
  sb_keys(&a, s, "", "", ", ");
  sb_add(&a, ", family, n_rows, n_holdout, metrics) SELECT ?1, ?2");
  for (size_t i = 0; i < s->n_keys; i++) {
    sb_add(&a, ", ?");
    sb_int(&a, (long long)i + 3);
  }
  sb_add(&a, ", ?");
  sb_int(&a, (long long)s->n_keys + 3);
  sb_add(&a, ", ?");
  sb_int(&a, (long long)s->n_keys + 4);
  sb_add(&a, ", ?");
  sb_int(&a, (long long)s->n_keys + 5);
  sb_add(&a, ", ?");
  sb_int(&a, (long long)s->n_keys + 6);
  /* JSON checks live here, not in CHECK constraints: with trusted_schema off SQLite
     refuses JSON functions in the schema. No row inserted = not an object. */
  sb_add(&a, " WHERE ?");
  sb_int(&a, (long long)s->n_keys + 6);
  sb_add(&a, " IS NULL OR json_type(?"); /* malformed JSON fails the statement */
  sb_int(&a, (long long)s->n_keys + 6);
  sb_add(&a, ") = 'object'");
  sb_add(&b, "INSERT INTO errors(run_id, key_hash, ");
  sb_keys(&b, s, "", "", ", ");
  sb_add(&b, ", n_rows, reason, message) VALUES(?1, ?2");
  for (size_t i = 0; i < s->n_keys + 3; i++) {
    sb_add(&b, ", ?");
    sb_int(&b, (long long)i + 3);
  }
  sb_add(&b, ")");
  if (a.oom || b.oom) {
    st = myr_error_set(err, MYR_ENOMEM, "store %s: out of memory preparing inserts",
                       s->path);
    goto done;
  }
  st = prepare(s, a.p, SQLITE_PREPARE_PERSISTENT, &s->ins_model, "preparing model insert",
               err);
  if (st == MYR_OK)
    st = prepare(s, "INSERT INTO blobs(model_id, blob) VALUES(?1, ?2)",
                 SQLITE_PREPARE_PERSISTENT, &s->ins_blob, "preparing blob insert", err);
  if (st == MYR_OK)
    st = prepare(s, b.p, SQLITE_PREPARE_PERSISTENT, &s->ins_error,
                 "preparing error insert", err);
done:
  if (st != MYR_OK)
    drop_inserts(s);
  sb_free(&a);
  sb_free(&b);
  return st;
}

/* ---------------------------------------------------------------- open / close */

static const char SCHEMA_BASE[] =
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE runs("
    " run_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " status TEXT NOT NULL CHECK (status IN ('running', 'published', 'failed')),"
    " family TEXT NOT NULL,"
    " seed INTEGER NOT NULL,"
    " spec TEXT,"
    " summary TEXT,"
    " message TEXT,"
    " started_at TEXT NOT NULL,"
    " published_at TEXT,"
    " n_models INTEGER NOT NULL DEFAULT 0,"
    " n_errors INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO meta(name, value) VALUES('schema_version', '1');"
    "INSERT INTO meta(name, value) VALUES('created_at', " NOW_SQL ");"
    "PRAGMA application_id = 1297699396;" /* STORE_APP_ID */
    "PRAGMA user_version = 1;";

/* Check (and for a writer, create) the schema. Writers hold the write lock meanwhile so
   two processes creating the same store do not race. */
static int init_schema(myr_store *s, myr_error *err) {
  int64_t v[3] = {0, 0, 0};
  int found = 0, st, began = 0;
  if (!s->readonly) {
    st = txn_begin(s, err);
    if (st != MYR_OK)
      return st;
    began = 1;
  }
  st = query_ints(s,
                  "SELECT (SELECT application_id FROM pragma_application_id),"
                  " (SELECT user_version FROM pragma_user_version),"
                  " (SELECT count(*) FROM sqlite_master)",
                  0, v, 3, &found, "reading the header", err);
  if (st != MYR_OK)
    goto done;
  if (v[0] == 0 && v[1] == 0 && v[2] == 0) {
    if (s->readonly) {
      st = myr_error_set(err, MYR_ENOTFOUND, "no store at %s (empty database)", s->path);
      goto done;
    }
    st = exec(s, SCHEMA_BASE, "creating the schema", err);
    if (st == MYR_OK)
      st = txn_commit(s, err);
    goto done;
  }
  if (v[0] != STORE_APP_ID) {
    st = myr_error_set(err, MYR_ESTORE, "%s is an SQLite database but not a myriad store",
                       s->path);
  } else if (v[1] > STORE_SCHEMA_VERSION) {
    st = myr_error_set(err, MYR_EUNSUPPORTED,
                       "store %s has schema version %lld; this myriad reads version %d "
                       "and older: upgrade myriad",
                       s->path, (long long)v[1], STORE_SCHEMA_VERSION);
  } else if (v[1] < 1) {
    st = myr_error_set(err, MYR_ECORRUPT, "store %s has no schema version", s->path);
  } else if (began) {
    st = txn_commit(s, err);
  }
done:
  if (began && s->in_txn)
    txn_abort(s);
  return st;
}

int myr_store_open(const char *path, unsigned flags, myr_store **out, myr_error *err) {
  myr_store *s = NULL;
  int st = MYR_OK, rc;
  if (out)
    *out = NULL;
  if (!path || !*path || !out)
    return myr_error_set(err, MYR_EINVAL, "myr_store_open: path and out are required");
  if (flags & ~MYR_STORE_READONLY)
    return myr_error_set(err, MYR_EINVAL, "myr_store_open %s: unknown flags 0x%x", path,
                         flags);
  if (sqlite3_libversion_number() < 3038000)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "store %s: SQLite %s is too old (3.38 or newer needed)", path,
                         sqlite3_libversion());
  if (flags & MYR_STORE_READONLY) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
      if (errno == ENOENT)
        return myr_error_set(err, MYR_ENOTFOUND, "no store at %s", path);
      return myr_error_set(err, MYR_EIO, "store %s: %s", path, strerror(errno));
    }
  }
  s = myr__calloc(1, sizeof *s);
  if (!s)
    return myr_error_set(err, MYR_ENOMEM, "store %s: out of memory", path);
  s->readonly = (flags & MYR_STORE_READONLY) != 0;
  s->path = myr__strdup(path);
  if (!s->path) {
    st = myr_error_set(err, MYR_ENOMEM, "store %s: out of memory", path);
    goto done;
  }
  rc = sqlite3_open_v2(
      path, &s->db,
      (s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
          SQLITE_OPEN_NOMUTEX,
      NULL);
  if (rc != SQLITE_OK) {
    st = db_error(s, err, rc, "opening");
    goto done;
  }
  sqlite3_extended_result_codes(s->db, 1);
  sqlite3_busy_timeout(s->db, BUSY_MS);
  /* A store may come from anywhere: no schema tricks, no side-effecting functions in
     triggers or views. */
  sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
  /* mmap: reads of a large store cost a memory access, not a pread, per page. */
  st = exec(s,
            "PRAGMA foreign_keys = ON; PRAGMA mmap_size = 1073741824;"
            " PRAGMA cache_size = -32768",
            "configuring", err);
  if (st == MYR_OK && !s->readonly)
    st = exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL", "configuring",
              err);
  if (st == MYR_OK)
    st = init_schema(s, err);
  if (st == MYR_OK)
    st = load_key_names(s, err);
  if (st == MYR_OK)
    *out = s;
done:
  if (st != MYR_OK)
    myr_store_close(s);
  return st;
}

void myr_store_close(myr_store *s) {
  if (!s)
    return;
  myr_store_snapshot_end(s);
  if (s->db && s->in_txn && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  drop_inserts(s);
  for (int i = 0; i < QCACHE; i++) {
    sqlite3_finalize(s->qc[i].st);
    myr__free(s->qc[i].sql);
  }
  sqlite3_close_v2(s->db);
  free_names(s->key_names, s->n_keys);
  myr__free(s->run_family);
  myr__free(s->path);
  myr__free(s);
}

int myr_store_snapshot_begin(myr_store *s, myr_error *err) {
  if (!s)
    return myr_error_set(err, MYR_EINVAL, "myr_store_snapshot_begin: store is NULL");
  if (s->in_txn || s->in_snapshot)
    return myr_error_set(err, MYR_EINVAL,
                         "store %s: a snapshot cannot start inside another transaction",
                         s->path);
  /* BEGIN is deferred: the first read takes the WAL read lock and keeps it, so every
     later query sees the same version and pays no locking of its own. */
  MYR_RETURN_NOT_OK(exec(s, "BEGIN", "starting a read snapshot", err));
  s->in_snapshot = 1;
  return MYR_OK;
}

void myr_store_snapshot_end(myr_store *s) {
  if (s && s->in_snapshot) {
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    s->in_snapshot = 0;
  }
}

int myr_store_flush(myr_store *s, myr_error *err) {
  if (!s)
    return myr_error_set(err, MYR_EINVAL, "myr_store_flush: store is NULL");
  return txn_commit(s, err);
}

/* ---------------------------------------------------------------- runs */

enum { RUN_NONE, RUN_RUNNING, RUN_PUBLISHED, RUN_FAILED, RUN_ODD };

static int run_status(myr_store *s, int64_t run_id, int *status, char **family_out,
                      myr_error *err) {
  sqlite3_stmt *q = NULL;
  int st = prepare(s, "SELECT status, family FROM runs WHERE run_id = ?1", 0, &q,
                   "reading a run", err);
  *status = RUN_NONE;
  if (st != MYR_OK)
    return st;
  sqlite3_bind_int64(q, 1, run_id);
  int rc = sqlite3_step(q);
  if (rc == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(q, 0);
    const char *f = (const char *)sqlite3_column_text(q, 1);
    *status = !t                            ? RUN_ODD
              : strcmp(t, "running") == 0   ? RUN_RUNNING
              : strcmp(t, "published") == 0 ? RUN_PUBLISHED
              : strcmp(t, "failed") == 0    ? RUN_FAILED
                                            : RUN_ODD;
    if (family_out) {
      *family_out = myr__strdup(f ? f : "");
      if (!*family_out)
        st = myr_error_set(err, MYR_ENOMEM, "store %s: out of memory", s->path);
    }
  } else if (rc != SQLITE_DONE) {
    st = db_error(s, err, rc, "reading a run");
  }
  sqlite3_finalize(q);
  return st;
}

static int not_running(const myr_store *s, int64_t run_id, int status, myr_error *err) {
  if (status == RUN_NONE)
    return myr_error_set(err, MYR_ENOTFOUND, "store %s has no run %lld", s->path,
                         (long long)run_id);
  return myr_error_set(err, MYR_EINVAL, "run %lld of store %s is %s, not running",
                       (long long)run_id, s->path,
                       status == RUN_PUBLISHED ? "published"
                       : status == RUN_FAILED  ? "failed"
                                               : "in an unknown state");
}

static int check_spec(const myr_store *s, const myr_run_spec *spec, myr_error *err) {
  if (spec->n_keys == 0 || spec->n_keys > MAX_KEYS || !spec->key_names)
    return myr_error_set(err, MYR_EINVAL, "store %s: a run needs 1 to %d key columns",
                         s->path, MAX_KEYS);
  for (size_t i = 0; i < spec->n_keys; i++) {
    const char *why = bad_key_name(spec->key_names[i]);
    if (why)
      return myr_error_set(err, MYR_EINVAL, "store %s: key column name '%s' %s", s->path,
                           spec->key_names[i] ? spec->key_names[i] : "(null)", why);
    for (size_t j = 0; j < i; j++)
      if (ascii_casecmp(spec->key_names[i], spec->key_names[j]) == 0)
        return myr_error_set(err, MYR_EINVAL, "store %s: key column '%s' given twice",
                             s->path, spec->key_names[i]);
  }
  if (!spec->family || !*spec->family)
    return myr_error_set(err, MYR_EINVAL, "store %s: a run needs a family name", s->path);
  return MYR_OK;
}

/* DDL for the tables whose columns depend on the key names, and meta.key_names. */
static void sb_key_schema(sbuf *b, const myr_store *s) {
  sb_add(b,
         "CREATE TABLE models(model_id INTEGER PRIMARY KEY,"
         " run_id INTEGER NOT NULL REFERENCES runs(run_id), key_hash INTEGER NOT NULL, ");
  sb_keys(b, s, "", " TEXT NOT NULL", ", ");
  sb_add(b,
         ", version INTEGER, family TEXT NOT NULL, n_rows INTEGER NOT NULL,"
         " n_holdout INTEGER NOT NULL,"
         " metrics TEXT);"
         "CREATE INDEX models_run ON models(run_id);"
         "CREATE TABLE blobs(model_id INTEGER PRIMARY KEY"
         " REFERENCES models(model_id) ON DELETE CASCADE, blob BLOB NOT NULL);"
         "CREATE TABLE errors(error_id INTEGER PRIMARY KEY,"
         " run_id INTEGER NOT NULL REFERENCES runs(run_id), key_hash INTEGER NOT NULL, ");
  sb_keys(b, s, "", " TEXT NOT NULL", ", ");
  sb_add(b, ", n_rows INTEGER NOT NULL, reason TEXT NOT NULL, message TEXT);"
            "CREATE INDEX errors_run ON errors(run_id);"
            "CREATE TABLE current(");
  sb_keys(b, s, "", " TEXT NOT NULL", ", ");
  sb_add(b, ", key_hash INTEGER NOT NULL, model_id INTEGER NOT NULL,"
            " version INTEGER NOT NULL, run_id INTEGER NOT NULL, PRIMARY KEY(");
  sb_keys(b, s, "", "", ", ");
  sb_add(b, ")) WITHOUT ROWID;"
            "INSERT INTO meta(name, value) VALUES('key_names', '[");
  sb_keys(b, s, "", "", ",");
  sb_add(b, "]');");
}

/* Bind a run's family, seed and spec to ?1, ?2, ?3 of q. */
static void bind_spec(sqlite3_stmt *q, const myr_run_spec *spec) {
  sqlite3_bind_text(q, 1, spec->family, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, u2i(spec->seed));
  if (spec->spec_json)
    sqlite3_bind_text(q, 3, spec->spec_json, -1, SQLITE_STATIC);
}

/* Make run_id (running, of *family, which this takes) the run this handle puts into.
   Preparing can fail (out of memory); the next put retries through use_run. */
static void take_run(myr_store *s, int64_t run_id, char **family) {
  myr__free(s->run_family);
  s->run_family = *family;
  *family = NULL;
  s->run_id = run_id;
  if (prepare_inserts(s, NULL) != MYR_OK)
    s->run_id = 0;
}

int myr_store_run_begin(myr_store *s, const myr_run_spec *spec, int64_t *run_id_out,
                        myr_error *err) {
  char **names = NULL;
  char *family = NULL;
  sbuf ddl = {0};
  sqlite3_stmt *q = NULL;
  int st = MYR_OK, began = 0, rc;
  int64_t run_id = 0;
  if (run_id_out)
    *run_id_out = 0;
  if (!s || !spec || !run_id_out)
    return myr_error_set(err, MYR_EINVAL, "myr_store_run_begin: NULL argument");
  if (s->readonly)
    return myr_error_set(err, MYR_EINVAL, "store %s is open read-only", s->path);
  MYR_RETURN_NOT_OK(check_spec(s, spec, err));
  int json_ok;
  MYR_RETURN_NOT_OK(json_object_ok(s, spec->spec_json, &json_ok, err));
  if (!json_ok)
    return myr_error_set(err, MYR_EINVAL, "store %s: spec_json is not a JSON object",
                         s->path);
  family = myr__strdup(spec->family);
  if (!family) {
    st = myr_error_set(err, MYR_ENOMEM, "store %s: out of memory", s->path);
    goto done;
  }
  st = txn_commit(s, err); /* a batch holds one run's rows */
  if (st != MYR_OK)
    goto done;
  st = txn_begin(s, err);
  if (st != MYR_OK)
    goto done;
  began = 1;
  st = load_key_names(s, err); /* another process may have run first since open */
  if (st != MYR_OK)
    goto done;
  if (s->n_keys == 0) {
    names = myr__calloc(spec->n_keys, sizeof *names);
    if (!names) {
      st = myr_error_set(err, MYR_ENOMEM, "store %s: out of memory", s->path);
      goto done;
    }
    for (size_t i = 0; i < spec->n_keys; i++) {
      names[i] = myr__strdup(spec->key_names[i]);
      if (!names[i]) {
        st = myr_error_set(err, MYR_ENOMEM, "store %s: out of memory", s->path);
        goto done;
      }
    }
    /* sb_key_schema reads names through a store view. */
    myr_store view = *s;
    view.key_names = names;
    view.n_keys = spec->n_keys;
    sb_key_schema(&ddl, &view);
    if (ddl.oom) {
      st = myr_error_set(err, MYR_ENOMEM, "store %s: out of memory", s->path);
      goto done;
    }
    st = exec(s, ddl.p, "creating the key tables", err);
    if (st != MYR_OK)
      goto done;
  } else {
    int same = s->n_keys == spec->n_keys;
    for (size_t i = 0; same && i < s->n_keys; i++)
      same = strcmp(s->key_names[i], spec->key_names[i]) == 0;
    if (!same) {
      char have[512], want[512];
      st = myr_error_set(
          err, MYR_EINVAL, "store %s has key columns (%s); this run uses (%s)", s->path,
          join_names(have, sizeof have, (const char *const *)s->key_names, s->n_keys),
          join_names(want, sizeof want, spec->key_names, spec->n_keys));
      goto done;
    }
  }
  st = prepare(s,
               "INSERT INTO runs(status, family, seed, spec, started_at)"
               " VALUES('running', ?1, ?2, ?3, " NOW_SQL ")",
               0, &q, "starting a run", err);
  if (st != MYR_OK)
    goto done;
  bind_spec(q, spec);
  rc = sqlite3_step(q);
  if (rc != SQLITE_DONE) {
    st = db_error(s, err, rc, "starting a run");
    goto done;
  }
  run_id = sqlite3_last_insert_rowid(s->db);
  st = txn_commit(s, err);
  if (st != MYR_OK)
    goto done;
  if (names) {
    s->key_names = names;
    s->n_keys = spec->n_keys;
    names = NULL;
  }
  take_run(s, run_id, &family);
  *run_id_out = run_id;
done:
  sqlite3_finalize(q);
  if (st != MYR_OK && began && s->in_txn)
    txn_abort(s);
  free_names(names, spec->n_keys);
  myr__free(family);
  sb_free(&ddl);
  return st;
}

/* Make run_id the run this handle puts into: it must exist and be running. */
static int use_run(myr_store *s, int64_t run_id, myr_error *err) {
  char *family = NULL;
  int status, st;
  if (s->readonly)
    return myr_error_set(err, MYR_EINVAL, "store %s is open read-only", s->path);
  if (run_id <= 0)
    return myr_error_set(err, MYR_ENOTFOUND, "store %s has no run %lld", s->path,
                         (long long)run_id);
  if (run_id == s->lost_run)
    return myr_error_set(err, MYR_ESTORE,
                         "store %s: run %lld lost rows after an earlier error; fail it "
                         "and train again",
                         s->path, (long long)run_id);
  if (run_id == s->run_id && run_id > 0 && s->ins_model)
    return MYR_OK;
  MYR_RETURN_NOT_OK(txn_commit(s, err)); /* a batch holds one run's rows */
  s->run_id = 0;
  MYR_RETURN_NOT_OK(load_key_names(s, err));
  MYR_RETURN_NOT_OK(run_status(s, run_id, &status, &family, err));
  if (status != RUN_RUNNING) {
    myr__free(family);
    return not_running(s, run_id, status, err);
  }
  st = prepare_inserts(s, err);
  if (st != MYR_OK) {
    myr__free(family);
    return st;
  }
  myr__free(s->run_family);
  s->run_family = family;
  s->run_id = run_id;
  return MYR_OK;
}

static int check_key(const myr_store *s, const char *const *values, const size_t *lens,
                     myr_error *err) {
  if (!values || !lens)
    return myr_error_set(err, MYR_EINVAL, "store %s: a row needs key_values and key_lens",
                         s->path);
  for (size_t i = 0; i < s->n_keys; i++)
    if ((!values[i] && lens[i]) || lens[i] > INT_MAX)
      return myr_error_set(err, MYR_EINVAL, "store %s: bad value for key column %s",
                           s->path, s->key_names[i]);
  return MYR_OK;
}

static void bind_key(sqlite3_stmt *q, int first, const myr_store *s,
                     const char *const *values, const size_t *lens) {
  for (size_t i = 0; i < s->n_keys; i++)
    sqlite3_bind_text(q, first + (int)i, values[i] ? values[i] : "", (int)lens[i],
                      SQLITE_STATIC);
}

/* A failed insert: message naming the key; the transaction may be gone. */
static int row_error(myr_store *s, sqlite3_stmt *q, int rc, int64_t run_id,
                     const char *what, const char *const *values, const size_t *lens,
                     myr_error *err) {
  char key[512], ctx[700];
  snprintf(ctx, sizeof ctx, "run %lld: storing the %s of key (%s)", (long long)run_id,
           what, key_desc(key, sizeof key, s, values, lens));
  int st = db_error(s, err, rc, ctx);
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  txn_check(s);
  return st;
}

static int after_put(myr_store *s, size_t bytes, myr_error *err) {
  s->batch_rows++;
  s->batch_bytes += bytes;
  if (s->batch_rows >= BATCH_ROWS || s->batch_bytes >= BATCH_BYTES ||
      now_s() - s->batch_t0 >= BATCH_SECONDS)
    return txn_commit(s, err);
  return MYR_OK;
}

int myr_store_put_model(myr_store *s, int64_t run_id, const myr_model_row *row,
                        myr_error *err) {
  sqlite3_stmt *q;
  int rc, k;
  if (!s || !row)
    return myr_error_set(err, MYR_EINVAL, "myr_store_put_model: NULL argument");
  MYR_RETURN_NOT_OK(use_run(s, run_id, err));
  MYR_RETURN_NOT_OK(check_key(s, row->key_values, row->key_lens, err));
  if (!row->blob || row->blob_len == 0 || row->blob_len > INT_MAX) {
    char key[512];
    return myr_error_set(
        err, MYR_EINVAL, "store %s: run %lld: key (%s) has no model blob", s->path,
        (long long)run_id, key_desc(key, sizeof key, s, row->key_values, row->key_lens));
  }
  MYR_RETURN_NOT_OK(txn_begin(s, err));
  q = s->ins_model;
  k = (int)s->n_keys;
  sqlite3_bind_int64(q, 1, run_id);
  sqlite3_bind_int64(q, 2, u2i(row->key_hash));
  bind_key(q, 3, s, row->key_values, row->key_lens);
  sqlite3_bind_text(q, k + 3, s->run_family, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, k + 4, u2i(row->n_rows));
  sqlite3_bind_int64(q, k + 5, u2i(row->n_holdout));
  if (row->metrics_json)
    sqlite3_bind_text(q, k + 6, row->metrics_json, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(q, k + 6);
  rc = sqlite3_step(q);
  if (rc == SQLITE_ERROR) { /* json_type() on malformed JSON */
    char key[512];
    int st = myr_error_set(err, MYR_EINVAL,
                           "store %s: run %lld: metrics_json of key (%s) is not a JSON "
                           "object: %s",
                           s->path, (long long)run_id,
                           key_desc(key, sizeof key, s, row->key_values, row->key_lens),
                           sqlite3_errmsg(s->db));
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    txn_check(s);
    return st;
  }
  if (rc != SQLITE_DONE)
    return row_error(s, q, rc, run_id, "model", row->key_values, row->key_lens, err);
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (sqlite3_changes(s->db) == 0) {
    char key[512];
    return myr_error_set(
        err, MYR_EINVAL,
        "store %s: run %lld: metrics_json of key (%s) is not a JSON object", s->path,
        (long long)run_id, key_desc(key, sizeof key, s, row->key_values, row->key_lens));
  }
  int64_t model_id = sqlite3_last_insert_rowid(s->db);
  q = s->ins_blob;
  sqlite3_bind_int64(q, 1, model_id);
  sqlite3_bind_blob(q, 2, row->blob, (int)row->blob_len, SQLITE_STATIC);
  rc = sqlite3_step(q);
  if (rc != SQLITE_DONE) {
    int st =
        row_error(s, q, rc, run_id, "model blob", row->key_values, row->key_lens, err);
    if (s->in_txn) { /* take back the half-stored model, or give up the batch */
      char sql[80];
      snprintf(sql, sizeof sql, "DELETE FROM models WHERE model_id = %lld",
               (long long)model_id);
      if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        txn_abort(s);
    }
    return st;
  }
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return after_put(s, row->blob_len, err);
}

int myr_store_put_error(myr_store *s, int64_t run_id, const myr_error_row *row,
                        myr_error *err) {
  sqlite3_stmt *q;
  int rc, k;
  if (!s || !row)
    return myr_error_set(err, MYR_EINVAL, "myr_store_put_error: NULL argument");
  MYR_RETURN_NOT_OK(use_run(s, run_id, err));
  MYR_RETURN_NOT_OK(check_key(s, row->key_values, row->key_lens, err));
  MYR_RETURN_NOT_OK(txn_begin(s, err));
  q = s->ins_error;
  k = (int)s->n_keys;
  sqlite3_bind_int64(q, 1, run_id);
  sqlite3_bind_int64(q, 2, u2i(row->key_hash));
  bind_key(q, 3, s, row->key_values, row->key_lens);
  sqlite3_bind_int64(q, k + 3, u2i(row->n_rows));
  sqlite3_bind_text(q, k + 4, row->reason ? row->reason : "unknown", -1, SQLITE_STATIC);
  if (row->message)
    sqlite3_bind_text(q, k + 5, row->message, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(q, k + 5);
  rc = sqlite3_step(q);
  if (rc != SQLITE_DONE)
    return row_error(s, q, rc, run_id, "error", row->key_values, row->key_lens, err);
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return after_put(s, 0, err);
}

/* Step a one-shot statement with ?1 = run_id and optionally ?2 = text. */
static int run_sql(myr_store *s, const char *sql, int64_t run_id, const char *text,
                   const char *what, myr_error *err) {
  sqlite3_stmt *q = NULL;
  int st = prepare(s, sql, 0, &q, what, err);
  if (st != MYR_OK)
    return st;
  sqlite3_bind_int64(q, 1, run_id);
  if (text && sqlite3_bind_parameter_count(q) >= 2)
    sqlite3_bind_text(q, 2, text, -1, SQLITE_STATIC);
  int rc = sqlite3_step(q);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    st = db_error(s, err, rc, what);
  sqlite3_finalize(q);
  return st;
}

/* Begin the transaction that ends a run, after flushing pending rows, and check that
   the run is running. */
static int begin_end_of_run(myr_store *s, int64_t run_id, myr_error *err) {
  int status;
  if (s->readonly)
    return myr_error_set(err, MYR_EINVAL, "store %s is open read-only", s->path);
  MYR_RETURN_NOT_OK(txn_commit(s, err));
  MYR_RETURN_NOT_OK(txn_begin(s, err));
  int st = run_status(s, run_id, &status, NULL, err);
  if (st == MYR_OK && status != RUN_RUNNING)
    st = not_running(s, run_id, status, err);
  if (st != MYR_OK)
    txn_abort(s);
  return st;
}

int myr_store_run_publish(myr_store *s, int64_t run_id, const char *summary_json,
                          myr_error *err) {
  sbuf ver = {0}, cur = {0};
  int st;
  if (!s)
    return myr_error_set(err, MYR_EINVAL, "myr_store_run_publish: store is NULL");
  if (run_id == s->lost_run && run_id > 0)
    return myr_error_set(err, MYR_ESTORE,
                         "store %s: run %lld lost rows after an earlier error and cannot "
                         "be published; fail it and train again",
                         s->path, (long long)run_id);
  int json_ok;
  MYR_RETURN_NOT_OK(json_object_ok(s, summary_json, &json_ok, err));
  if (!json_ok)
    return myr_error_set(err, MYR_EINVAL,
                         "store %s: run %lld: summary_json is not a JSON object", s->path,
                         (long long)run_id);
  st = load_key_names(s, err);
  if (st != MYR_OK)
    return st;
  if (s->n_keys == 0) /* no run ever began: the run cannot exist */
    return myr_error_set(err, MYR_ENOTFOUND, "store %s has no run %lld", s->path,
                         (long long)run_id);
  /* Each model of the run: version = its key's current version (or 0) + 1. */
  sb_add(&ver,
         "UPDATE models SET version = 1 + coalesce((SELECT c.version FROM current AS c"
         " WHERE ");
  for (size_t i = 0; i < s->n_keys; i++) {
    if (i)
      sb_add(&ver, " AND ");
    sb_ident(&ver, "c.", s->key_names[i]);
    sb_ident(&ver, " = models.", s->key_names[i]);
  }
  sb_add(&ver, "), 0) WHERE run_id = ?1");
  /* Then every one becomes its key's current model; the later put wins a duplicate. */
  sb_add(&cur, "INSERT INTO current(");
  sb_keys(&cur, s, "", "", ", ");
  sb_add(&cur, ", key_hash, model_id, version, run_id) SELECT ");
  sb_keys(&cur, s, "", "", ", ");
  sb_add(&cur, ", key_hash, model_id, version, run_id FROM models WHERE run_id = ?1"
               " ORDER BY model_id ON CONFLICT(");
  sb_keys(&cur, s, "", "", ", ");
  sb_add(&cur, ") DO UPDATE SET key_hash = excluded.key_hash,"
               " model_id = excluded.model_id, version = excluded.version,"
               " run_id = excluded.run_id");
  if (ver.oom || cur.oom) {
    st = myr_error_set(err, MYR_ENOMEM, "store %s: out of memory publishing run %lld",
                       s->path, (long long)run_id);
    goto done;
  }
  st = begin_end_of_run(s, run_id, err);
  if (st != MYR_OK)
    goto done;
  st = run_sql(s, ver.p, run_id, NULL, "publishing (versions)", err);
  if (st == MYR_OK)
    st = run_sql(s, cur.p, run_id, NULL, "publishing (current models)", err);
  if (st == MYR_OK)
    st = run_sql(s,
                 "UPDATE runs SET status = 'published', published_at = " NOW_SQL ","
                 " summary = ?2,"
                 " n_models = (SELECT count(*) FROM models WHERE run_id = ?1),"
                 " n_errors = (SELECT count(*) FROM errors WHERE run_id = ?1)"
                 " WHERE run_id = ?1",
                 run_id, summary_json, "publishing (run status)", err);
  if (st == MYR_OK)
    st = txn_commit(s, err);
  if (st != MYR_OK)
    txn_abort(s);
  else if (s->run_id == run_id)
    s->run_id = 0;
done:
  sb_free(&ver);
  sb_free(&cur);
  return st;
}

int myr_store_run_resume(myr_store *s, const myr_run_spec *spec, int64_t *run_id_out,
                         int64_t *published_out, myr_error *err) {
  sqlite3_stmt *q = NULL;
  char *family = NULL;
  int st, rc;
  int64_t run_id = 0;
  if (run_id_out)
    *run_id_out = 0;
  if (published_out)
    *published_out = 0;
  if (!s || !spec || !run_id_out || !published_out)
    return myr_error_set(err, MYR_EINVAL, "myr_store_run_resume: NULL argument");
  if (s->readonly)
    return myr_error_set(err, MYR_EINVAL, "store %s is open read-only", s->path);
  MYR_RETURN_NOT_OK(check_spec(s, spec, err));
  family = myr__strdup(spec->family);
  if (!family)
    return myr_error_set(err, MYR_ENOMEM, "store %s: out of memory", s->path);
  st = txn_commit(s, err);
  if (st == MYR_OK)
    st = txn_begin(s, err);
  if (st != MYR_OK)
    goto done;
  st = load_key_names(s, err);
  if (st != MYR_OK || s->n_keys == 0) /* no run ever began: nothing to resume */
    goto done;
  st = prepare(s,
               "SELECT run_id, status FROM runs WHERE family = ?1 AND seed = ?2"
               " AND spec IS ?3 ORDER BY run_id DESC LIMIT 1",
               0, &q, "finding the run to resume", err);
  if (st != MYR_OK)
    goto done;
  bind_spec(q, spec);
  rc = sqlite3_step(q);
  if (rc == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(q, 0);
    const char *status = (const char *)sqlite3_column_text(q, 1);
    if (status && strcmp(status, "published") == 0)
      *published_out = id;
    else
      run_id = id;
  } else if (rc != SQLITE_DONE) {
    st = db_error(s, err, rc, "finding the run to resume");
    goto done;
  }
  if (!run_id)
    goto done;
  /* Its models stay; its failed groups are tried again (they are quick to fail). */
  st = run_sql(s, "UPDATE runs SET status = 'running', message = NULL WHERE run_id = ?1",
               run_id, NULL, "resuming a run", err);
  if (st == MYR_OK)
    st = run_sql(s, "DELETE FROM errors WHERE run_id = ?1", run_id, NULL,
                 "resuming a run", err);
  if (st == MYR_OK)
    st = txn_commit(s, err);
  if (st != MYR_OK)
    goto done;
  if (s->lost_run == run_id)
    s->lost_run = 0;
  take_run(s, run_id, &family);
  *run_id_out = run_id;
done:
  sqlite3_finalize(q);
  if (s->in_txn)
    txn_abort(s);
  myr__free(family);
  return st;
}

int myr_store_run_keys(myr_store *s, int64_t run_id, myr_key_hash_cb cb, void *ud,
                       myr_error *err) {
  sqlite3_stmt *q = NULL;
  if (!s || !cb)
    return myr_error_set(err, MYR_EINVAL, "myr_store_run_keys: NULL argument");
  MYR_RETURN_NOT_OK(txn_commit(s, err)); /* this handle's own puts count */
  int st = prepare(s, "SELECT key_hash FROM models WHERE run_id = ?1", 0, &q,
                   "reading a run's keys", err);
  if (st != MYR_OK)
    return st;
  sqlite3_bind_int64(q, 1, run_id);
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    int r = cb(ud, (uint64_t)sqlite3_column_int64(q, 0));
    if (r != 0) {
      st = r;
      break;
    }
  }
  if (st == MYR_OK && rc != SQLITE_DONE)
    st = db_error(s, err, rc, "reading a run's keys");
  sqlite3_finalize(q);
  return st;
}

int myr_store_run_fail(myr_store *s, int64_t run_id, const char *message,
                       myr_error *err) {
  if (!s)
    return myr_error_set(err, MYR_EINVAL, "myr_store_run_fail: store is NULL");
  int st = begin_end_of_run(s, run_id, err);
  if (st != MYR_OK)
    return st;
  st = run_sql(s,
               "UPDATE runs SET status = 'failed', message = ?2,"
               " n_models = (SELECT count(*) FROM models WHERE run_id = ?1),"
               " n_errors = (SELECT count(*) FROM errors WHERE run_id = ?1)"
               " WHERE run_id = ?1",
               run_id, message ? message : "failed", "failing a run", err);
  if (st == MYR_OK)
    st = txn_commit(s, err);
  if (st != MYR_OK) {
    txn_abort(s);
    return st;
  }
  if (s->run_id == run_id)
    s->run_id = 0;
  if (s->lost_run == run_id)
    s->lost_run = 0;
  return MYR_OK;
}

/* ---------------------------------------------------------------- queries */

/* A cached statement for sql, reset; *slot is its cache slot or -1 (finalize after). */
static int q_get(myr_store *s, const char *sql, sqlite3_stmt **out, int *slot,
                 myr_error *err) {
  int free_slot = -1;
  *slot = -1;
  for (int i = 0; i < QCACHE; i++) {
    if (s->qc[i].busy)
      continue;
    if (s->qc[i].sql && strcmp(s->qc[i].sql, sql) == 0) {
      s->qc[i].busy = 1;
      *slot = i;
      *out = s->qc[i].st;
      return MYR_OK;
    }
    if (free_slot < 0 && !s->qc[i].sql)
      free_slot = i;
  }
  MYR_RETURN_NOT_OK(prepare(s, sql, SQLITE_PREPARE_PERSISTENT, out, "querying", err));
  if (free_slot < 0) { /* evict a statement no query is using */
    for (int n = 0; n < QCACHE && free_slot < 0; n++) {
      int i = (int)(s->qc_next++ % QCACHE);
      if (!s->qc[i].busy)
        free_slot = i;
    }
  }
  if (free_slot >= 0) {
    char *copy = myr__strdup(sql);
    if (copy) { /* without memory the statement just is not cached */
      qslot *c = &s->qc[free_slot];
      sqlite3_finalize(c->st);
      myr__free(c->sql);
      c->sql = copy;
      c->st = *out;
      c->busy = 1;
      *slot = free_slot;
    }
  }
  return MYR_OK;
}

static void q_put(myr_store *s, sqlite3_stmt *q, int slot) {
  if (!q)
    return;
  if (slot < 0) {
    sqlite3_finalize(q);
    return;
  }
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  s->qc[slot].busy = 0;
}

static const char *col_text(sqlite3_stmt *q, int i, const char *dflt) {
  const char *t = (const char *)sqlite3_column_text(q, i);
  return t ? t : dflt;
}

static int metric_higher_is_better(const char *m) {
  static const char *const up[] = {"r2", "auc", "accuracy", "f1", "precision", "recall"};
  size_t lm = strlen(m);
  if (lm >= 2 && strcmp(m + lm - 2, "r2") == 0)
    return 1;
  for (size_t i = 0; i < sizeof up / sizeof up[0]; i++) {
    size_t lu = strlen(up[i]);
    if (strcmp(m, up[i]) == 0 ||
        (lm > lu && m[lm - lu - 1] == '_' && strcmp(m + lm - lu, up[i]) == 0))
      return 1;
  }
  return 0;
}

static int check_metric(const myr_store *s, const char *m, myr_error *err) {
  size_t n = strlen(m);
  int ok = n > 0 && n <= MAX_METRIC;
  for (size_t i = 0; ok && i < n; i++)
    ok = (m[i] >= 'a' && m[i] <= 'z') || (m[i] >= '0' && m[i] <= '9') || m[i] == '_';
  if (!ok)
    return myr_error_set(err, MYR_EINVAL,
                         "store %s: metric name '%.80s' is not 1 to 64 of [a-z0-9_]",
                         s->path, m);
  return MYR_OK;
}

/* Ranking by a metric no current model has would silently list models in key order:
   refuse it instead, naming the metric. */
static int check_metric_present(const myr_store *s, const char *m, myr_error *err) {
  static const char sql[] =
      "SELECT 1 FROM current c JOIN models m ON m.model_id = c.model_id "
      "WHERE typeof(json_extract(m.metrics, ?1)) IN ('integer', 'real') LIMIT 1";
  sqlite3_stmt *st = NULL;
  char path[MAX_METRIC + 3];
  snprintf(path, sizeof path, "$.%s", m);
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (rc == SQLITE_ROW)
    return MYR_OK;
  if (rc == SQLITE_DONE)
    return myr_error_set(err, MYR_ENOTFOUND,
                         "store %s: no current model has the metric '%s' (holdout metrics "
                         "r2, rmse, mae need training with --holdout; train_r2 and "
                         "train_rmse are always there)",
                         s->path, m);
  return db_error(s, err, rc, "checking a metric");
}

/* ORDER BY terms for a worst-metric query: metric column prefixed by mp, keys by kp.
   Rows whose metric is not a number go last. */
static void sb_worst_order(sbuf *b, const myr_store *s, const myr_model_query *q,
                           const char *mp, const char *kp) {
  sb_add(b, " ORDER BY typeof(");
  sb_add(b, mp);
  sb_add(b, "\"mv#\") NOT IN ('integer', 'real'), ");
  sb_add(b, mp);
  sb_add(b,
         metric_higher_is_better(q->worst_metric) ? "\"mv#\" ASC, " : "\"mv#\" DESC, ");
  sb_keys(b, s, kp, "", ", ");
}

/* Key order streams current in primary-key order. A worst-metric query sorts without
   the blobs first and joins them to the rows it keeps. Parameters: ?1 the JSON path,
   ?2... the filter values, ?1000 the limit. */
static void build_models_sql(sbuf *b, const myr_store *s, const myr_model_query *q) {
  const char *p = q->worst_metric ? "t." : "c.";
  sb_add(b, "SELECT ");
  sb_add(b, q->worst_metric ? "t.run_id, t.version, t.key_hash, "
                            : "m.run_id, c.version, c.key_hash, ");
  sb_keys(b, s, p, "", ", ");
  sb_add(b, q->worst_metric ? ", t.family, t.n_rows, t.n_holdout, t.metrics"
                            : ", m.family, m.n_rows, m.n_holdout, m.metrics");
  sb_add(b, ", b.blob, r.published_at FROM ");
  if (q->worst_metric) {
    sb_add(b, "(SELECT c.model_id AS model_id, m.run_id AS run_id, c.version AS version,"
              " c.key_hash AS key_hash, ");
    sb_keys(b, s, "c.", "", ", ");
    sb_add(b, ", m.family AS family, m.n_rows AS n_rows, m.n_holdout AS n_holdout,"
              " m.metrics AS metrics, CASE WHEN json_valid(m.metrics)"
              " THEN json_extract(m.metrics, ?1) END AS \"mv#\" FROM ");
  }
  sb_add(b, "current AS c JOIN models AS m ON m.model_id = c.model_id");
  if (!q->worst_metric)
    sb_add(b, " LEFT JOIN blobs AS b ON b.model_id = c.model_id"
              " LEFT JOIN runs AS r ON r.run_id = m.run_id");
  for (size_t f = 0; f < q->n_filter; f++) {
    sb_add(b, f ? " AND " : " WHERE ");
    sb_ident(b, "c.", q->key_names[f]);
    sb_add(b, " = ?");
    sb_int(b, (long long)f + 2);
  }
  if (q->worst_metric) {
    sb_worst_order(b, s, q, "", "c.");
    if (q->limit)
      sb_add(b, " LIMIT ?1000");
    sb_add(b, ") AS t LEFT JOIN blobs AS b ON b.model_id = t.model_id"
              " LEFT JOIN runs AS r ON r.run_id = t.run_id");
    sb_worst_order(b, s, q, "t.", "t.");
  } else {
    sb_add(b, " ORDER BY ");
    sb_keys(b, s, "c.", "", ", ");
    if (q->limit)
      sb_add(b, " LIMIT ?1000");
  }
}

int myr_store_models(myr_store *s, const myr_model_query *q, myr_model_cb cb, void *ud,
                     myr_error *err) {
  static const myr_model_query all;
  sbuf sql = {0};
  sqlite3_stmt *st_q = NULL;
  const char **values = NULL;
  int slot = -1, st = MYR_OK, nb = 0;
  if (!q)
    q = &all;
  if (!s || !cb || (q->n_filter && (!q->key_names || !q->key_values)))
    return myr_error_set(err, MYR_EINVAL, "myr_store_models: NULL argument");
  MYR_RETURN_NOT_OK(load_key_names(s, err));
  for (size_t f = 0; f < q->n_filter; f++) {
    const char *name = q->key_names[f];
    size_t i = 0;
    while (i < s->n_keys && (!name || strcmp(name, s->key_names[i]) != 0))
      i++; /* a NULL name matches nothing */
    if (!q->key_values[f])
      return myr_error_set(err, MYR_EINVAL,
                           "store %s: filter on key column '%s' has no value", s->path,
                           q->key_names[f] ? q->key_names[f] : "(null)");
    if (i == s->n_keys) {
      char have[512];
      return myr_error_set(
          err, MYR_EINVAL, "store %s has no key column '%s' (its key columns: %s)",
          s->path, q->key_names[f] ? q->key_names[f] : "(null)",
          join_names(have, sizeof have, (const char *const *)s->key_names, s->n_keys));
    }
  }
  if (q->worst_metric)
    MYR_RETURN_NOT_OK(check_metric(s, q->worst_metric, err));
  if (s->n_keys == 0)
    return MYR_OK; /* no run yet, so no models */
  if (q->worst_metric)
    MYR_RETURN_NOT_OK(check_metric_present(s, q->worst_metric, err));

  build_models_sql(&sql, s, q);
  values = myr__calloc(s->n_keys, sizeof *values);
  if (sql.oom || !values) {
    st = myr_error_set(err, MYR_ENOMEM, "store %s: out of memory querying models",
                       s->path);
    goto done;
  }
  st = q_get(s, sql.p, &st_q, &slot, err);
  if (st != MYR_OK)
    goto done;
  if (q->worst_metric) {
    char path[MAX_METRIC + 3];
    snprintf(path, sizeof path, "$.%s", q->worst_metric);
    sqlite3_bind_text(st_q, 1, path, -1, SQLITE_TRANSIENT);
  }
  for (size_t f = 0; f < q->n_filter; f++)
    sqlite3_bind_text(st_q, (int)f + 2, q->key_values[f], -1, SQLITE_STATIC);
  if (q->limit)
    sqlite3_bind_int64(st_q, 1000, q->limit > INT64_MAX ? INT64_MAX : (int64_t)q->limit);
  nb = 3 + (int)s->n_keys; /* first column after the key values */
  for (;;) {
    int rc = sqlite3_step(st_q);
    if (rc == SQLITE_DONE)
      break;
    if (rc != SQLITE_ROW) {
      st = db_error(s, err, rc, "reading models");
      goto done;
    }
    myr_model_record r;
    memset(&r, 0, sizeof r);
    r.run_id = sqlite3_column_int64(st_q, 0);
    r.version = sqlite3_column_int64(st_q, 1);
    r.key_hash = i2u(sqlite3_column_int64(st_q, 2));
    for (size_t i = 0; i < s->n_keys; i++)
      values[i] = col_text(st_q, 3 + (int)i, "");
    r.n_keys = s->n_keys;
    r.key_names = (const char *const *)s->key_names;
    r.key_values = values;
    r.family = col_text(st_q, nb, "");
    r.n_rows = i2u(sqlite3_column_int64(st_q, nb + 1));
    r.n_holdout = i2u(sqlite3_column_int64(st_q, nb + 2));
    r.metrics_json = col_text(st_q, nb + 3, "{}");
    /* A missing or non-blob value reads as empty: the blob decoder rejects it per key. */
    r.blob = sqlite3_column_blob(st_q, nb + 4);
    r.blob_len = r.blob ? (size_t)sqlite3_column_bytes(st_q, nb + 4) : 0;
    if (!r.blob)
      r.blob = (const unsigned char *)"";
    r.published_at = col_text(st_q, nb + 5, "");
    int rv = cb(ud, &r);
    if (rv != 0) {
      st = rv;
      goto done;
    }
  }
done:
  q_put(s, st_q, slot);
  myr__free(values);
  sb_free(&sql);
  return st;
}

int myr_store_errors(myr_store *s, int64_t run_id, size_t limit, myr_error_cb cb,
                     void *ud, myr_error *err) {
  sbuf sql = {0};
  sqlite3_stmt *q = NULL;
  const char **values = NULL;
  int st = MYR_OK, found = 0, nb;
  if (!s || !cb)
    return myr_error_set(err, MYR_EINVAL, "myr_store_errors: NULL argument");
  MYR_RETURN_NOT_OK(load_key_names(s, err));
  if (run_id == 0) {
    MYR_RETURN_NOT_OK(query_ints(s,
                                 "SELECT run_id FROM runs WHERE status = 'published'"
                                 " ORDER BY published_at DESC, run_id DESC LIMIT 1",
                                 0, &run_id, 1, &found, "finding the latest run", err));
    if (!found)
      return MYR_OK;
  } else {
    int64_t one;
    MYR_RETURN_NOT_OK(query_ints(s, "SELECT 1 FROM runs WHERE run_id = ?1", run_id, &one,
                                 1, &found, "reading a run", err));
    if (!found)
      return myr_error_set(err, MYR_ENOTFOUND, "store %s has no run %lld", s->path,
                           (long long)run_id);
  }
  if (s->n_keys == 0)
    return MYR_OK;
  sb_add(&sql, "SELECT run_id, key_hash, ");
  sb_keys(&sql, s, "", "", ", ");
  sb_add(&sql,
         ", n_rows, reason, message FROM errors WHERE run_id = ?1 ORDER BY error_id");
  if (limit)
    sb_add(&sql, " LIMIT ?2");
  values = myr__calloc(s->n_keys, sizeof *values);
  if (sql.oom || !values) {
    st =
        myr_error_set(err, MYR_ENOMEM, "store %s: out of memory listing errors", s->path);
    goto done;
  }
  st = prepare(s, sql.p, 0, &q, "listing errors", err);
  if (st != MYR_OK)
    goto done;
  sqlite3_bind_int64(q, 1, run_id);
  if (limit)
    sqlite3_bind_int64(q, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
  nb = 2 + (int)s->n_keys;
  for (;;) {
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE)
      break;
    if (rc != SQLITE_ROW) {
      st = db_error(s, err, rc, "listing errors");
      goto done;
    }
    myr_error_record r;
    memset(&r, 0, sizeof r);
    r.run_id = sqlite3_column_int64(q, 0);
    r.key_hash = i2u(sqlite3_column_int64(q, 1));
    for (size_t i = 0; i < s->n_keys; i++)
      values[i] = col_text(q, 2 + (int)i, "");
    r.n_keys = s->n_keys;
    r.key_names = (const char *const *)s->key_names;
    r.key_values = values;
    r.n_rows = i2u(sqlite3_column_int64(q, nb));
    r.reason = col_text(q, nb + 1, "");
    r.message = col_text(q, nb + 2, "");
    int rv = cb(ud, &r);
    if (rv != 0) {
      st = rv;
      goto done;
    }
  }
done:
  sqlite3_finalize(q);
  myr__free(values);
  sb_free(&sql);
  return st;
}

int myr_store_runs(myr_store *s, myr_run_cb cb, void *ud, myr_error *err) {
  sqlite3_stmt *q = NULL;
  int st;
  if (!s || !cb)
    return myr_error_set(err, MYR_EINVAL, "myr_store_runs: NULL argument");
  st = prepare(s,
               "SELECT run_id, status, family, seed, spec, summary, message, started_at,"
               " published_at, n_models, n_errors FROM runs ORDER BY run_id DESC",
               0, &q, "listing runs", err);
  if (st != MYR_OK)
    return st;
  for (;;) {
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE)
      break;
    if (rc != SQLITE_ROW) {
      st = db_error(s, err, rc, "listing runs");
      break;
    }
    myr_run_record r;
    memset(&r, 0, sizeof r);
    r.run_id = sqlite3_column_int64(q, 0);
    r.status = col_text(q, 1, "");
    r.family = col_text(q, 2, "");
    r.seed = i2u(sqlite3_column_int64(q, 3));
    r.spec_json = col_text(q, 4, "{}");
    r.summary_json = col_text(q, 5, "{}");
    r.message = col_text(q, 6, "");
    r.started_at = col_text(q, 7, "");
    r.published_at = col_text(q, 8, "");
    r.n_models = i2u(sqlite3_column_int64(q, 9));
    r.n_errors = i2u(sqlite3_column_int64(q, 10));
    int rv = cb(ud, &r);
    if (rv != 0) {
      st = rv;
      break;
    }
  }
  sqlite3_finalize(q);
  return st;
}

int myr_store_get_info(myr_store *s, myr_store_info *out, myr_error *err) {
  int64_t v[2] = {0, 0};
  int found = 0, st = MYR_OK, began = 0;
  if (out)
    memset(out, 0, sizeof *out);
  if (!s || !out)
    return myr_error_set(err, MYR_EINVAL, "myr_store_get_info: NULL argument");
  MYR_RETURN_NOT_OK(load_key_names(s, err));
  if (!s->in_txn && !s->in_snapshot) { /* one snapshot for all the counts */
    MYR_RETURN_NOT_OK(exec(s, "BEGIN", "reading store info", err));
    began = 1;
  }
  out->n_keys = s->n_keys;
  out->key_names = (const char *const *)s->key_names;
  if (s->n_keys) {
    st = query_ints(s, "SELECT count(*) FROM current", 0, v, 1, &found, "counting models",
                    err);
    if (st != MYR_OK)
      goto done;
    out->n_models = i2u(v[0]);
  }
  st = query_ints(s,
                  "SELECT run_id, n_errors FROM runs WHERE status = 'published'"
                  " ORDER BY published_at DESC, run_id DESC LIMIT 1",
                  0, v, 2, &found, "reading the latest run", err);
  if (st != MYR_OK)
    goto done;
  if (found) {
    out->latest_run = v[0];
    out->n_errors = i2u(v[1]);
  }
  st = query_ints(s,
                  "SELECT (SELECT page_count FROM pragma_page_count)"
                  " * (SELECT page_size FROM pragma_page_size)",
                  0, v, 1, &found, "reading the size", err);
  if (st != MYR_OK)
    goto done;
  out->file_bytes = v[0] > 0 ? (uint64_t)v[0] : 0;
done:
  if (began)
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  return st;
}
