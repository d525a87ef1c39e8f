/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Conformance of the Arrow IPC reader with Arrow's golden files (arrow-testing, in the
 * shared conformance folder beside the checkout: MYR_CONFORMANCE_DIR, see
 * ../shared/conformance/README.md).
 *
 * - integration/<version>/generated_*.{stream,arrow_file}: each is decoded and compared,
 *   batch by batch and column by column, with its generated_*.json.gz twin (Arrow's
 *   integration JSON: schema, batches, columns with count, VALIDITY, DATA, OFFSET,
 *   dictionaries): formats, names, nullability, lengths, validity, null counts, offsets
 *   and every valid value must be equal. A file whose schema holds a type the reader
 *   does not support must be refused at open with a message naming the first such
 *   column and its type; 1.0.0-bigendian files must be refused as big-endian.
 * - arrow-ipc-stream/ and arrow-ipc-file/ outside integration/ (inputs that once broke
 *   Arrow's C++ reader): each must give an error or a valid result, read to the end.
 *
 * The test prints counts (decoded equal, refused and why) and skips, saying so, when the
 * shared folder is absent.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>
#ifndef MYR_NO_ZLIB
#include <zlib.h>
#endif

#include "../fuzz/ipc_touch.h"
#include "io/arrow.h"
#include "testutil.h"

static char g_root[1024]; /* .../arrow-testing/data */

static int have_data(void) {
  const char *dir = getenv("MYR_CONFORMANCE_DIR");
  if (!dir || !*dir)
    return 0;
  snprintf(g_root, sizeof g_root, "%s/arrow-testing/data", dir);
  char probe[1100];
  snprintf(probe, sizeof probe, "%s/arrow-ipc-stream/integration", g_root);
  struct stat st;
  return stat(probe, &st) == 0 && S_ISDIR(st.st_mode);
}

#ifdef MYR_NO_ZLIB
static json_t *load_json_gz(const char *path) {
  fail_msg("%s: built without zlib", path);
  return NULL;
}
#else
static json_t *load_json_gz(const char *path) {
  gzFile gz = gzopen(path, "rb");
  if (!gz)
    fail_msg("cannot open %s", path);
  size_t cap = 1 << 20, len = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  for (;;) {
    if (len == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    int got = gzread(gz, buf + len, (unsigned)(cap - len));
    assert_true(got >= 0);
    if (got == 0)
      break;
    len += (size_t)got;
  }
  gzclose(gz);
  json_error_t je;
  json_t *j = json_loadb(buf, len, 0, &je);
  if (!j)
    fail_msg("%s: JSON error at line %d: %s", path, je.line, je.text);
  free(buf);
  return j;
}
#endif

/* ---- expected formats ------------------------------------------------------------------ */

static const char *unit_letter(const char *unit) {
  if (!unit)
    return "?";
  if (strcmp(unit, "SECOND") == 0)
    return "s";
  if (strcmp(unit, "MILLISECOND") == 0)
    return "m";
  if (strcmp(unit, "MICROSECOND") == 0)
    return "u";
  if (strcmp(unit, "NANOSECOND") == 0)
    return "n";
  return "?";
}

/* The C Data Interface format of a JSON type, or NULL when the reader does not support
   it; *keyword: the word the refusal message must hold. */
static const char *json_format(json_t *type, char *buf, size_t cap, const char **keyword) {
  const char *name = json_string_value(json_object_get(type, "name"));
  *keyword = name;
  assert_non_null(name);
  if (strcmp(name, "null") == 0)
    return "n";
  if (strcmp(name, "bool") == 0)
    return "b";
  if (strcmp(name, "utf8") == 0)
    return "u";
  if (strcmp(name, "largeutf8") == 0)
    return "U";
  if (strcmp(name, "binary") == 0)
    return "z";
  if (strcmp(name, "largebinary") == 0)
    return "Z";
  if (strcmp(name, "int") == 0) {
    int bits = (int)json_integer_value(json_object_get(type, "bitWidth"));
    int sig = json_is_true(json_object_get(type, "isSigned"));
    int k = bits == 8 ? 0 : bits == 16 ? 1 : bits == 32 ? 2 : 3;
    snprintf(buf, cap, "%c", (sig ? "csil" : "CSIL")[k]);
    return buf;
  }
  if (strcmp(name, "floatingpoint") == 0) {
    const char *p = json_string_value(json_object_get(type, "precision"));
    return strcmp(p, "HALF") == 0 ? "e" : strcmp(p, "SINGLE") == 0 ? "f" : "g";
  }
  const char *unit = json_string_value(json_object_get(type, "unit"));
  if (strcmp(name, "date") == 0)
    return strcmp(unit, "DAY") == 0 ? "tdD" : "tdm";
  if (strcmp(name, "time") == 0) {
    snprintf(buf, cap, "tt%s", unit_letter(unit));
    return buf;
  }
  if (strcmp(name, "duration") == 0) {
    snprintf(buf, cap, "tD%s", unit_letter(unit));
    return buf;
  }
  if (strcmp(name, "timestamp") == 0) {
    const char *tz = json_string_value(json_object_get(type, "timezone"));
    snprintf(buf, cap, "ts%s:%s", unit_letter(unit), tz ? tz : "");
    return buf;
  }
  static const char *const words[][2] = {
      {"fixedsizebinary", "fixed_size_binary"}, {"fixedsizelist", "fixed_size_list"},
      {"largelist", "large_list"}, {"runendencoded", "run_end_encoded"},
      {"binaryview", "binary_view"}, {"utf8view", "utf8_view"}, {"listview", "list_view"},
      {"largelistview", "large_list_view"},
  };
  for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
    if (strcmp(name, words[k][0]) == 0)
      *keyword = words[k][1];
  return NULL; /* decimal, interval, list, struct, map, union, ... keep their names */
}

static int is_extension(json_t *field) {
  json_t *md = json_object_get(field, "metadata");
  size_t i;
  json_t *kv;
  json_array_foreach(md, i, kv) {
    const char *k = json_string_value(json_object_get(kv, "key"));
    if (k && strcmp(k, "ARROW:extension:name") == 0)
      return 1;
  }
  return 0;
}

/* ---- value comparison ------------------------------------------------------------------ */

typedef struct ctx {
  const char *file;
  int batch;
  const char *column;
  int errors;
} ctx;

static void mismatch(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mismatch(ctx *c, const char *fmt, ...) {
  if (c->errors++ < 20) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "MISMATCH %s batch %d column '%s': ", c->file, c->batch, c->column);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
  }
}

static int64_t jint(json_t *v) {
  if (json_is_string(v))
    return strtoll(json_string_value(v), NULL, 10);
  return (int64_t)json_integer_value(v);
}

static uint64_t juint(json_t *v) {
  if (json_is_string(v))
    return strtoull(json_string_value(v), NULL, 10);
  return (uint64_t)json_integer_value(v);
}

static int hexval(char ch) {
  return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                                                                     : ch - 'A' + 10;
}

/* Compare array a (format f) with JSON column jc. */
static void compare_column(ctx *c, const struct ArrowArray *a, const char *f, json_t *jc) {
  int64_t count = (int64_t)json_integer_value(json_object_get(jc, "count"));
  if (a->length != count) {
    mismatch(c, "length %lld, JSON count %lld", (long long)a->length, (long long)count);
    return;
  }
  json_t *validity = json_object_get(jc, "VALIDITY");
  json_t *data = json_object_get(jc, "DATA");
  json_t *offsets = json_object_get(jc, "OFFSET");
  int w = ipct_width(f);
  int64_t nulls = 0;
  for (int64_t i = 0; i < count; i++) {
    int want_valid = f[0] == 'n' ? 0 : validity ? (int)jint(json_array_get(validity, i)) : 1;
    int valid = f[0] == 'n' ? 0 : !a->buffers[0] || ipct_bit(a->buffers[0], a->offset + i);
    nulls += !valid;
    if (valid != want_valid) {
      mismatch(c, "row %lld validity %d, JSON %d", (long long)i, valid, want_valid);
      continue;
    }
    if (!valid)
      continue;
    json_t *jv = json_array_get(data, i);
    int64_t j = a->offset + i;
    const uint8_t *d = a->buffers[1];
    if (w == 0) {
      if (ipct_bit(d, j) != json_is_true(jv))
        mismatch(c, "row %lld bool differs", (long long)i);
    } else if (f[0] == 'f') {
      float x;
      memcpy(&x, d + 4 * j, 4);
      if (x != (float)json_number_value(jv))
        mismatch(c, "row %lld: %.9g, JSON %.9g", (long long)i, x, json_number_value(jv));
    } else if (f[0] == 'g') {
      double x;
      memcpy(&x, d + 8 * j, 8);
      if (x != json_number_value(jv))
        mismatch(c, "row %lld: %.17g, JSON %.17g", (long long)i, x, json_number_value(jv));
    } else if (w > 0) {
      uint64_t u = 0;
      memcpy(&u, d + (size_t)j * (size_t)w, (size_t)w);
      int is_unsigned = f[0] == 'C' || f[0] == 'S' || f[0] == 'I' || f[0] == 'L';
      if (is_unsigned) {
        if (u != juint(jv))
          mismatch(c, "row %lld: %llu, JSON %llu", (long long)i, (unsigned long long)u,
                   (unsigned long long)juint(jv));
      } else {
        int64_t s = w == 8 ? (int64_t)u : (int64_t)(u << (64 - 8 * w)) >> (64 - 8 * w);
        if (s != jint(jv))
          mismatch(c, "row %lld: %lld, JSON %lld", (long long)i, (long long)s,
                   (long long)jint(jv));
      }
    } else if (w == -4 || w == -8) {
      int64_t lo = ipct_offset(d, w == -8, j), hi = ipct_offset(d, w == -8, j + 1);
      const uint8_t *bytes = (const uint8_t *)a->buffers[2] + lo;
      const char *js = json_string_value(jv);
      size_t jn = js ? strlen(js) : 0;
      int binary = f[0] == 'z' || f[0] == 'Z';
      int same = binary ? jn == 2 * (size_t)(hi - lo) : jn == (size_t)(hi - lo);
      for (int64_t k = 0; same && k < hi - lo; k++)
        same = binary ? bytes[k] == (hexval(js[2 * k]) << 4 | hexval(js[2 * k + 1]))
                      : bytes[k] == (uint8_t)js[k];
      if (!same)
        mismatch(c, "row %lld: bytes differ from JSON '%s'", (long long)i, js ? js : "?");
    }
  }
  if (f[0] != 'n' && a->null_count != nulls)
    mismatch(c, "null_count %lld, validity has %lld", (long long)a->null_count,
             (long long)nulls);
  if ((w == -4 || w == -8) && offsets) {
    for (int64_t i = 0; i <= count; i++) {
      int64_t o = ipct_offset(a->buffers[1], w == -8, a->offset + i);
      if (o != jint(json_array_get(offsets, i))) {
        mismatch(c, "offset %lld: %lld, JSON %lld", (long long)i, (long long)o,
                 (long long)jint(json_array_get(offsets, i)));
        break;
      }
    }
  }
}

static json_t *find_dictionary(json_t *doc, int64_t id) {
  size_t i;
  json_t *d;
  json_array_foreach(json_object_get(doc, "dictionaries"), i, d) {
    if (json_integer_value(json_object_get(d, "id")) == id)
      return d;
  }
  return NULL;
}

/* ---- one file ------------------------------------------------------------------------- */

typedef struct tally {
  int equal, refused_type, refused_bigendian, failed;
  char reasons[4096];
} tally;

static void add_reason(tally *t, const char *what) {
  if (!strstr(t->reasons, what) && strlen(t->reasons) + strlen(what) + 3 < sizeof t->reasons) {
    if (t->reasons[0])
      strcat(t->reasons, ", ");
    strcat(t->reasons, what);
  }
}

static void check_file(const char *path, const char *shown, json_t *doc, int bigendian,
                       tally *t) {
  struct ArrowArrayStream st;
  myr_error err = {0};
  int rc = myr__ipc_open(path, &st, &err);
  json_t *fields = json_object_get(json_object_get(doc, "schema"), "fields");
  if (bigendian) {
    if (rc == MYR_EUNSUPPORTED && strstr(err.message, "big-endian") &&
        strstr(err.message, shown)) {
      t->refused_bigendian++;
      return;
    }
    fprintf(stderr, "FAIL %s: not refused as big-endian (rc %d: %s)\n", shown, rc,
            err.message);
    if (rc == MYR_OK)
      st.release(&st);
    t->failed++;
    return;
  }
  /* The first column of an unsupported type (dictionary values count). */
  const char *bad_name = NULL, *bad_word = NULL;
  size_t i;
  json_t *jf;
  json_array_foreach(fields, i, jf) {
    char buf[64];
    const char *word;
    const char *fmt = json_format(json_object_get(jf, "type"), buf, sizeof buf, &word);
    if (is_extension(jf)) {
      fmt = NULL;
      word = "extension";
    }
    if (!fmt) {
      bad_name = json_string_value(json_object_get(jf, "name"));
      bad_word = word;
      break;
    }
  }
  if (bad_name) {
    char quoted[256];
    snprintf(quoted, sizeof quoted, "'%s'", bad_name);
    if (rc == MYR_EUNSUPPORTED && strstr(err.message, quoted) &&
        strstr(err.message, bad_word)) {
      t->refused_type++;
      add_reason(t, bad_word);
      return;
    }
    fprintf(stderr, "FAIL %s: want a refusal naming %s and %s; rc %d: %s\n", shown, quoted,
            bad_word, rc, err.message);
    if (rc == MYR_OK)
      st.release(&st);
    t->failed++;
    return;
  }
  if (rc != MYR_OK) {
    fprintf(stderr, "FAIL %s: open: %s\n", shown, err.message);
    t->failed++;
    return;
  }
  ctx c = {shown, -1, "", 0};
  struct ArrowSchema s;
  assert_int_equal(st.get_schema(&st, &s), 0);
  if ((size_t)s.n_children != json_array_size(fields)) {
    mismatch(&c, "%lld columns, JSON %zu", (long long)s.n_children, json_array_size(fields));
  } else {
    json_array_foreach(fields, i, jf) {
      const struct ArrowSchema *k = s.children[i];
      c.column = json_string_value(json_object_get(jf, "name"));
      char buf[64];
      const char *word;
      const char *fmt = json_format(json_object_get(jf, "type"), buf, sizeof buf, &word);
      json_t *de = json_object_get(jf, "dictionary");
      const char *value_fmt = de ? (k->dictionary ? k->dictionary->format : "") : k->format;
      if (strcmp(k->name, c.column) != 0 || strcmp(value_fmt, fmt) != 0)
        mismatch(&c, "schema: name '%s' format '%s', JSON '%s' '%s'", k->name, value_fmt,
                 c.column, fmt);
      if (((k->flags & ARROW_FLAG_NULLABLE) != 0) !=
          json_is_true(json_object_get(jf, "nullable")))
        mismatch(&c, "schema: nullable flag differs");
      if (de) {
        const char *ifmt = json_format(json_object_get(de, "indexType"), buf, sizeof buf,
                                       &word);
        if (strcmp(k->format, ifmt) != 0)
          mismatch(&c, "schema: index format '%s', JSON '%s'", k->format, ifmt);
        if (((k->flags & ARROW_FLAG_DICTIONARY_ORDERED) != 0) !=
            json_is_true(json_object_get(de, "isOrdered")))
          mismatch(&c, "schema: ordered flag differs");
      }
    }
  }
  json_t *batches = json_object_get(doc, "batches");
  json_t *jb;
  size_t bi;
  json_array_foreach(batches, bi, jb) {
    c.batch = (int)bi;
    struct ArrowArray b;
    if (st.get_next(&st, &b) != 0 || !b.release) {
      mismatch(&c, "get_next: %s", st.get_last_error(&st) ? st.get_last_error(&st)
                                                             : "early end");
      break;
    }
    uint64_t sum = 0;
    if (ipct_batch(&s, &b, &sum) != 0)
      mismatch(&c, "batch breaks the C Data Interface invariants");
    if (b.length != json_integer_value(json_object_get(jb, "count")))
      mismatch(&c, "batch length %lld differs", (long long)b.length);
    json_t *cols = json_object_get(jb, "columns");
    for (size_t k = 0; k < json_array_size(cols) && k < (size_t)b.n_children; k++) {
      json_t *jc = json_array_get(cols, k);
      json_t *jfield = json_array_get(fields, k);
      c.column = json_string_value(json_object_get(jc, "name"));
      const struct ArrowSchema *ks = s.children[k];
      compare_column(&c, b.children[k], ks->format, jc);
      json_t *de = json_object_get(jfield, "dictionary");
      if (de) {
        json_t *jd = find_dictionary(doc, json_integer_value(json_object_get(de, "id")));
        json_t *dcol = json_array_get(json_object_get(json_object_get(jd, "data"), "columns"),
                                      0);
        if (!b.children[k]->dictionary || !dcol)
          mismatch(&c, "dictionary missing");
        else
          compare_column(&c, b.children[k]->dictionary, ks->dictionary->format, dcol);
      }
    }
    b.release(&b);
  }
  c.batch = (int)json_array_size(batches);
  struct ArrowArray end;
  if (st.get_next(&st, &end) != 0 || end.release) {
    mismatch(&c, "more batches than the JSON has");
    if (end.release)
      end.release(&end);
  }
  s.release(&s);
  st.release(&st);
  if (c.errors) {
    fprintf(stderr, "FAIL %s: %d mismatches\n", shown, c.errors);
    t->failed++;
  } else {
    t->equal++;
  }
}

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entries of a directory (caller frees each and the array). */
static size_t list_dir(const char *dir, char ***out) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  size_t n = 0, cap = 64;
  char **v = malloc(cap * sizeof *v);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    if (n == cap) {
      cap *= 2;
      v = realloc(v, cap * sizeof *v);
    }
    v[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(v, n, sizeof *v, cmp_str);
  *out = v;
  return n;
}

static void test_integration(void **state) {
  (void)state;
#ifdef MYR_NO_ZLIB
  printf("SKIP: built without zlib (zlib1g-dev), which reads the golden JSON files\n");
  skip();
#endif
  if (!have_data()) {
    printf("SKIP: no arrow-testing data (MYR_CONFORMANCE_DIR=%s); the shared conformance "
           "folder is absent\n", getenv("MYR_CONFORMANCE_DIR") ? getenv("MYR_CONFORMANCE_DIR")
                                                              : "(unset)");
    skip();
  }
  char base[1200];
  snprintf(base, sizeof base, "%s/arrow-ipc-stream/integration", g_root);
  char **versions;
  size_t nv = list_dir(base, &versions);
  tally t;
  memset(&t, 0, sizeof t);
  int files = 0;
  for (size_t v = 0; v < nv; v++) {
    char vdir[1400];
    snprintf(vdir, sizeof vdir, "%s/%s", base, versions[v]);
    char **names;
    size_t nn = list_dir(vdir, &names);
    for (size_t k = 0; k < nn; k++) {
      if (!has_suffix(names[k], ".json.gz"))
        continue;
      char jpath[1700];
      snprintf(jpath, sizeof jpath, "%s/%s", vdir, names[k]);
      json_t *doc = load_json_gz(jpath);
      size_t stem = strlen(names[k]) - strlen(".json.gz");
      const char *kinds[2] = {".stream", ".arrow_file"};
      for (int kk = 0; kk < 2; kk++) {
        char path[1800], shown[300];
        snprintf(path, sizeof path, "%s/%.*s%s", vdir, (int)stem, names[k], kinds[kk]);
        snprintf(shown, sizeof shown, "%s/%.*s%s", versions[v], (int)stem, names[k],
                 kinds[kk]);
        struct stat sb;
        if (stat(path, &sb) != 0)
          continue;
        files++;
        check_file(path, shown, doc, strstr(versions[v], "bigendian") != NULL, &t);
      }
      json_decref(doc);
    }
    for (size_t k = 0; k < nn; k++)
      free(names[k]);
    free(names);
  }
  for (size_t v = 0; v < nv; v++)
    free(versions[v]);
  free(versions);
  printf("arrow-testing integration: %d files: %d decode equal to their JSON, %d refused "
         "for their types (%s), %d refused as big-endian, %d failed\n", files, t.equal,
         t.refused_type, t.reasons, t.refused_bigendian, t.failed);
  assert_int_equal(t.failed, 0);
  assert_true(t.equal >= 20);
  assert_true(t.refused_bigendian >= 40);
}

/* Inputs that once broke Arrow's reader: an error or a clean read, nothing else. */
static void replay_dir(const char *dir, int *n, int *ok, int *errors) {
  char **names;
  size_t nn = list_dir(dir, &names);
  for (size_t k = 0; k < nn; k++) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, names[k]);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      free(names[k]);
      continue;
    }
    (*n)++;
    struct ArrowArrayStream st;
    myr_error err = {0};
    if (myr__ipc_open(path, &st, &err) == MYR_OK) {
      uint64_t sum = 0;
      long got = ipct_stream(&st, &sum);
      if (got == -2)
        fail_msg("%s: broken invariant in an accepted input", path);
      if (got >= 0)
        (*ok)++;
      else
        (*errors)++;
      st.release(&st);
    } else {
      assert_true(err.message[0] != '\0');
      (*errors)++;
    }
    free(names[k]);
  }
  free(names);
}

static void test_fuzz_finds(void **state) {
  (void)state;
  if (!have_data()) {
    printf("SKIP: no arrow-testing data; the shared conformance folder is absent\n");
    skip();
  }
  int n = 0, ok = 0, errors = 0;
  const char *dirs[] = {"arrow-ipc-stream", "arrow-ipc-file"};
  for (int k = 0; k < 2; k++) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/%s", g_root, dirs[k]);
    replay_dir(dir, &n, &ok, &errors);
  }
  printf("arrow-testing fuzz finds: %d inputs: %d read cleanly, %d refused with an error\n",
         n, ok, errors);
  assert_true(n >= 100);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_integration),
      cmocka_unit_test(test_fuzz_finds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
