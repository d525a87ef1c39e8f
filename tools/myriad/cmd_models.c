/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `myriad models`: read the current models of a store. Lists them (key order, or worst
 * first by a metric), shows one key's model with its decoded parameters, and writes
 * table, CSV or JSON.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "myriad/myriad.h"

enum { FMT_TABLE, FMT_CSV, FMT_JSON };

static void usage(FILE *out) {
  fprintf(out,
          "Usage: myriad models --store PATH [OPTIONS]\n"
          "\n"
          "List the current (latest published) model of every key in a store, show one\n"
          "key's model, or rank models by a validation metric.\n"
          "\n"
          "Options:\n"
          "  --store PATH         the store written by 'myriad train' (required)\n"
          "  --key K=V[,K=V]      only keys with these key column values; with every key\n"
          "                       column given, shows that key's model in detail\n"
          "  --worst METRIC       worst first by METRIC: r2, train_r2, accuracy,\n"
          "                       train_accuracy (lowest first); rmse, mae, train_rmse,\n"
          "                       log_loss, train_log_loss (highest first)\n"
          "  --limit N            at most N models (default: all)\n"
          "  --format FMT         table (default), csv or json\n"
          "  --describe           include each model's decoded parameters (coefficients)\n"
          "  --errors             list the groups the latest published run could not\n"
          "                       train (key, rows, reason, message) instead of models\n"
          "  --plugin PATH        load model families from a plugin library to decode\n"
          "                       their models (repeatable; docs/plugins.md)\n"
          "  -h, --help           show this help\n"
          "\n"
          "Examples:\n"
          "  myriad models --store models.db --worst r2 --limit 10\n"
          "  myriad models --store models.db --key app=app-0001,api=/api/v1/ep-0001\n"
          "  myriad models --store models.db --format csv > models.csv\n");
}

typedef struct out_state {
  const myr_registry *reg; /* families to decode with (NULL: built-ins) */
  int format;
  int describe;
  int detail;         /* one key, shown in full */
  size_t n;           /* rows written */
  size_t n_keys;
  const char *const *key_names;
} out_state;

static int write_file(void *ud, const char *bytes, size_t len) {
  return fwrite(bytes, 1, len, (FILE *)ud) == len ? 0 : MYR_EIO;
}

static void json_str(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p < 0x20)
      printf("\\u%04x", *p);
    else
      putchar(*p);
  }
  putchar('"');
}

static void csv_field(const char *s) {
  int quote = strpbrk(s, ",\"\r\n") != NULL;
  if (!quote) {
    fputs(s, stdout);
    return;
  }
  putchar('"');
  for (const char *p = s; *p; p++) {
    if (*p == '"')
      putchar('"');
    putchar(*p);
  }
  putchar('"');
}

/* {"r2":0.9,"rmse":0.1} -> r2=0.9 rmse=0.1 (our own flat metrics objects); with short
   set, numbers are rounded to 4 significant digits for tables. */
static void metrics_text(const char *json, int short_numbers, char *out, size_t cap) {
  size_t o = 0;
  for (const char *p = json; *p && o + 1 < cap; p++) {
    char c = *p;
    if (c == '{' || c == '}' || c == '"')
      continue;
    if (short_numbers && p > json && p[-1] == ':') {
      char *end;
      double v = strtod(p, &end);
      if (end > p) {
        int w = snprintf(out + o, cap - o, "%.4g", v);
        if (w < 0 || (size_t)w >= cap - o)
          break;
        o += (size_t)w;
        p = end - 1;
        continue;
      }
    }
    out[o++] = c == ':' ? '=' : c == ',' ? ' ' : c;
  }
  out[o] = '\0';
}

static int print_error_record(void *ud, const myr_error_record *e) {
  out_state *st = ud;
  if (st->format == FMT_JSON) {
    printf("%s{", st->n ? ",\n " : "[");
    for (size_t k = 0; k < e->n_keys; k++) {
      json_str(e->key_names[k]);
      putchar(':');
      json_str(e->key_values[k]);
      putchar(',');
    }
    printf("\"run_id\":%lld,\"n_rows\":%llu,\"reason\":", (long long)e->run_id,
           (unsigned long long)e->n_rows);
    json_str(e->reason);
    printf(",\"message\":");
    json_str(e->message);
    putchar('}');
  } else if (st->format == FMT_CSV) {
    if (st->n == 0) {
      for (size_t k = 0; k < e->n_keys; k++) {
        csv_field(e->key_names[k]);
        putchar(',');
      }
      printf("run_id,n_rows,reason,message\n");
    }
    for (size_t k = 0; k < e->n_keys; k++) {
      csv_field(e->key_values[k]);
      putchar(',');
    }
    printf("%lld,%llu,", (long long)e->run_id, (unsigned long long)e->n_rows);
    csv_field(e->reason);
    putchar(',');
    csv_field(e->message);
    putchar('\n');
  } else {
    if (st->n == 0) {
      for (size_t k = 0; k < e->n_keys; k++)
        printf("%-20s ", e->key_names[k]);
      printf("%8s  %-14s %s\n", "rows", "reason", "message");
    }
    for (size_t k = 0; k < e->n_keys; k++)
      printf("%-20s ", e->key_values[k]);
    printf("%8llu  %-14s %s\n", (unsigned long long)e->n_rows, e->reason, e->message);
  }
  st->n++;
  return ferror(stdout) ? MYR_EIO : 0;
}

static int print_record(void *ud, const myr_model_record *m) {
  out_state *st = ud;
  char metrics[256];
  metrics_text(m->metrics_json ? m->metrics_json : "", st->format == FMT_TABLE, metrics,
               sizeof metrics);
  myr_error err = {0};
  if (st->format == FMT_JSON) {
    printf("%s{", st->n ? ",\n " : "[");
    for (size_t k = 0; k < m->n_keys; k++) {
      json_str(m->key_names[k]);
      putchar(':');
      json_str(m->key_values[k]);
      putchar(',');
    }
    printf("\"version\":%lld,\"run_id\":%lld,\"family\":", (long long)m->version,
           (long long)m->run_id);
    json_str(m->family ? m->family : "");
    printf(",\"n_rows\":%llu,\"n_holdout\":%llu,\"metrics\":%s,\"published_at\":",
           (unsigned long long)m->n_rows, (unsigned long long)m->n_holdout,
           m->metrics_json && *m->metrics_json ? m->metrics_json : "{}");
    json_str(m->published_at ? m->published_at : "");
    printf(",\"blob_bytes\":%zu", m->blob_len);
    if (st->describe || st->detail) {
      printf(",\"model\":");
      if (myr_blob_describe(st->reg, m->blob, m->blob_len, write_file, stdout, &err) != MYR_OK) {
        printf("null,\"model_error\":");
        json_str(err.message);
      }
    }
    putchar('}');
  } else if (st->format == FMT_CSV) {
    if (st->n == 0) {
      for (size_t k = 0; k < m->n_keys; k++) {
        csv_field(m->key_names[k]);
        putchar(',');
      }
      printf("version,run_id,family,n_rows,n_holdout,metrics,blob_bytes%s\n",
             st->describe ? ",model" : "");
    }
    for (size_t k = 0; k < m->n_keys; k++) {
      csv_field(m->key_values[k]);
      putchar(',');
    }
    printf("%lld,%lld,%s,%llu,%llu,", (long long)m->version, (long long)m->run_id,
           m->family ? m->family : "", (unsigned long long)m->n_rows,
           (unsigned long long)m->n_holdout);
    csv_field(metrics);
    printf(",%zu", m->blob_len);
    if (st->describe) {
      char *text = NULL;
      size_t len = 0;
      FILE *mem = open_memstream(&text, &len);
      if (mem) {
        if (myr_blob_describe(st->reg, m->blob, m->blob_len, write_file, mem, &err) != MYR_OK)
          fprintf(mem, "error: %s", err.message);
        fclose(mem);
        putchar(',');
        csv_field(text ? text : "");
        free(text);
      }
    }
    putchar('\n');
  } else if (st->detail) {
    for (size_t k = 0; k < m->n_keys; k++)
      printf("%-12s %s\n", m->key_names[k], m->key_values[k]);
    printf("%-12s %lld (run %lld, published %s)\n", "version", (long long)m->version,
           (long long)m->run_id, m->published_at ? m->published_at : "?");
    printf("%-12s %s\n", "family", m->family ? m->family : "");
    printf("%-12s %llu fitted, %llu held out\n", "rows", (unsigned long long)m->n_rows,
           (unsigned long long)m->n_holdout);
    printf("%-12s %s\n", "metrics", metrics[0] ? metrics : "(none)");
    printf("%-12s %zu bytes\n", "blob", m->blob_len);
    printf("%-12s ", "model");
    if (myr_blob_describe(st->reg, m->blob, m->blob_len, write_file, stdout, &err) != MYR_OK)
      printf("cannot decode: %s", err.message);
    printf("\n");
  } else {
    if (st->n == 0) {
      for (size_t k = 0; k < m->n_keys; k++)
        printf("%-20s ", m->key_names[k]);
      printf("%7s %5s %8s  %s\n", "version", "run", "rows", "metrics");
    }
    for (size_t k = 0; k < m->n_keys; k++)
      printf("%-20s ", m->key_values[k]);
    printf("%7lld %5lld %8llu  %s\n", (long long)m->version, (long long)m->run_id,
           (unsigned long long)m->n_rows, metrics);
  }
  st->n++;
  return ferror(stdout) ? MYR_EIO : 0;
}

/* "app=a1,api=/x": split at commas followed by NAME= so values may hold commas. */
static int parse_key_filter(const char *arg, char ***names, char ***values, size_t *n) {
  size_t cap = 8;
  *names = calloc(cap, sizeof **names);
  *values = calloc(cap, sizeof **values);
  *n = 0;
  if (!*names || !*values)
    return 0;
  const char *p = arg;
  while (*p) {
    const char *eq = strchr(p, '=');
    if (!eq || eq == p) {
      fprintf(stderr, "myriad models: --key expects NAME=VALUE[,NAME=VALUE], got '%s'\n", arg);
      return 0;
    }
    const char *end = eq + 1;
    for (;;) {
      const char *comma = strchr(end, ',');
      if (!comma) {
        end += strlen(end);
        break;
      }
      const char *q = comma + 1;
      while (*q && (isalnum((unsigned char)*q) || *q == '_' || *q == '-' || *q == '.'))
        q++;
      if (*q == '=' && q > comma + 1) {
        end = comma;
        break;
      }
      end = comma + 1;
    }
    if (*n == cap)
      return 0;
    (*names)[*n] = strndup(p, (size_t)(eq - p));
    (*values)[*n] = strndup(eq + 1, (size_t)(end - eq - 1));
    (*n)++;
    p = *end ? end + 1 : end;
  }
  return *n > 0;
}

int myr_cmd_models(int argc, char **argv) {
  static const struct option longopts[] = {
      {"store", required_argument, 0, 'S'}, {"key", required_argument, 0, 'k'},
      {"worst", required_argument, 0, 'w'}, {"limit", required_argument, 0, 'n'},
      {"format", required_argument, 0, 'F'}, {"describe", no_argument, 0, 'D'},
      {"errors", no_argument, 0, 'E'},
      {"plugin", required_argument, 0, 'P'},
      {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
  const char *store_path = NULL, *key_arg = NULL;
  myr_model_query q;
  memset(&q, 0, sizeof q);
  out_state st;
  memset(&st, 0, sizeof st);
  char **names = NULL, **values = NULL;
  size_t n_filter = 0;
  myr_store *store = NULL;
  myr_registry *reg = NULL;
  int rc = 2, ch, errors = 0;
  unsigned long long v;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'S': store_path = optarg; break;
    case 'k': key_arg = optarg; break;
    case 'w': q.worst_metric = optarg; break;
    case 'n':
      if (!cli_parse_u64("models", "--limit", optarg, &v))
        goto done;
      q.limit = (size_t)v;
      break;
    case 'F':
      if (!strcmp(optarg, "table"))
        st.format = FMT_TABLE;
      else if (!strcmp(optarg, "csv"))
        st.format = FMT_CSV;
      else if (!strcmp(optarg, "json"))
        st.format = FMT_JSON;
      else {
        fprintf(stderr, "myriad models: --format must be table, csv or json, got '%s'\n",
                optarg);
        goto done;
      }
      break;
    case 'D': st.describe = 1; break;
    case 'E': errors = 1; break;
    case 'P':
      if (!cli_load_plugin("models", &reg, optarg))
        goto done;
      st.reg = reg;
      break;
    case 'h': usage(stdout); rc = 0; goto done;
    default: fprintf(stderr, "Run 'myriad models --help' for the options.\n"); goto done;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "myriad models: unexpected argument '%s'\n", argv[optind]);
    goto done;
  }
  if (!store_path) {
    fprintf(stderr, "myriad models: --store is required\n");
    goto done;
  }
  if (key_arg && !parse_key_filter(key_arg, &names, &values, &n_filter))
    goto done;
  myr_error err = {0};
  rc = 1;
  if (myr_store_open(store_path, MYR_STORE_READONLY, &store, &err) != MYR_OK) {
    fprintf(stderr, "myriad models: %s\n", err.message);
    goto done;
  }
  myr_store_info info;
  if (myr_store_get_info(store, &info, &err) != MYR_OK) {
    fprintf(stderr, "myriad models: %s\n", err.message);
    goto done;
  }
  q.key_names = (const char *const *)names;
  q.key_values = (const char *const *)values;
  q.n_filter = n_filter;
  if (errors) {
    if (key_arg || q.worst_metric) {
      fprintf(stderr, "myriad models: --errors cannot be combined with --key or --worst\n");
      rc = 2;
      goto done;
    }
    int erc = myr_store_errors(store, 0, q.limit, print_error_record, &st, &err);
    if (st.format == FMT_JSON)
      printf(st.n ? "]\n" : "[]\n");
    if (erc != MYR_OK) {
      fprintf(stderr, "myriad models: %s\n", err.message);
      goto done;
    }
    if (st.format == FMT_TABLE)
      printf("%zu failed groups in the latest run (%lld)\n", st.n, (long long)info.latest_run);
    rc = 0;
    goto done;
  }
  st.detail = n_filter > 0 && n_filter == info.n_keys && st.format == FMT_TABLE;
  int qrc = myr_store_models(store, &q, print_record, &st, &err);
  if (st.format == FMT_JSON)
    printf(st.n ? "]\n" : "[]\n");
  if (qrc != MYR_OK) {
    fprintf(stderr, "myriad models: %s\n",
            err.message[0] ? err.message : myr_status_name(qrc));
    goto done;
  }
  if (n_filter && st.n == 0) {
    fprintf(stderr, "myriad models: no model for key %s in %s\n", key_arg, store_path);
    goto done;
  }
  if (st.format == FMT_TABLE && !st.detail) {
    char a[32];
    printf("%zu shown of %s models; latest run %lld; store %.1f MB (%.0f bytes/model)\n",
           st.n, cli_grouped(info.n_models, a, sizeof a), (long long)info.latest_run,
           (double)info.file_bytes / 1e6,
           info.n_models ? (double)info.file_bytes / (double)info.n_models : 0.0);
  }
  rc = 0;
done:
  for (size_t i = 0; i < n_filter; i++) {
    free(names[i]);
    free(values[i]);
  }
  free(names);
  free(values);
  myr_store_close(store);
  myr_registry_destroy(reg);
  return rc;
}
