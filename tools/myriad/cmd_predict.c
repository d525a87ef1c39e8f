/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `myriad predict`: options to myr_predict_options, plugins into a registry, a progress
 * line on a terminal, and the summary (every row accounted for by reason) at the end.
 * When the predictions go to stdout (--out -), the summary goes to stderr so that stdout
 * holds only the predictions. Ctrl-C stops cleanly: no partial output file is left behind.
 * INPUT may be CSV or Arrow IPC (the library tells them apart); --format (or --out's
 * extension) chooses a CSV or Arrow IPC output.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "myriad/myriad.h"

static void usage(FILE *out) {
  fprintf(
      out,
      "Usage: myriad predict INPUT --store PATH --out PATH [OPTIONS]\n"
      "\n"
      "Score every row of INPUT with the current model of its key in the store. INPUT\n"
      "is a CSV file with a header row, or an Arrow IPC file or stream (.arrow,\n"
      ".feather, .arrows; recognized by its first bytes, whatever its name). A key's\n"
      "model is read and decoded when the key first appears, and kept while decoded\n"
      "models fit in 8 MiB (rows sorted or grouped by key need each model once).\n"
      "INPUT needs the store's key columns and the feature columns the models were\n"
      "trained on (found by name; other columns are ignored). Every input row gets\n"
      "exactly one output row, in input order; rows that cannot be scored say why.\n"
      "\n"
      "Options:\n"
      "  --store PATH         the store written by 'myriad train' (required)\n"
      "  --out PATH           output file, '-' for stdout (required); written to\n"
      "                       PATH.tmp and renamed when complete\n"
      "  --format F           csv, arrow (Arrow IPC file) or arrows (Arrow IPC\n"
      "                       stream); default: from the extension of --out\n"
      "                       (.arrow, .feather, .ipc: arrow; .arrows: arrows;\n"
      "                       otherwise csv)\n"
      "  --delimiter C        ',', ';' or 'tab' (default: detected from the header)\n"
      "  --threads N          worker threads (default: one per core)\n"
      "  --memory-limit SIZE  bound what predict keeps between batches, e.g. 1G (K, M,\n"
      "                       G, T are powers of 1024): decoded models up to a quarter\n"
      "                       of it, keys seen up to another quarter (past it they are\n"
      "                       forgotten and looked up again when they return); rows are\n"
      "                       streamed in batches either way. Default: no limit\n"
      "  --plugin PATH        load model families from a plugin library (repeatable);\n"
      "                       needed to score models of plugin families\n"
      "  --json               print the summary as JSON (on stdout, or on stderr with\n"
      "                       --out -)\n"
      "  --quiet              no progress line and no summary\n"
      "  -h, --help           show this help\n"
      "\n"
      "Output columns (CSV: comma-separated; Arrow: utf8 keys, int64 row, float64\n"
      "prediction, utf8 probabilities and reason, null where the CSV is empty):\n"
      "  <key columns>        the row's key, named as in the store (empty when the\n"
      "                       row could not be read)\n"
      "  row                  1-based data row of INPUT (header excluded): joins back\n"
      "  prediction           regression: the predicted value; classification: the\n"
      "                       class with the highest probability (ties: the first)\n"
      "  probabilities        only when the store has runs of a family that can\n"
      "                       classify (e.g. forest): 'c1:p1;c2:p2' per class of the\n"
      "                       row's model, classes ascending; empty for regressors\n"
      "  reason               empty when predicted, else why not:\n"
      "                         no_model         the key has no model in the store\n"
      "                         bad_row          the row could not be read (wrong\n"
      "                                          field count, bad quoting, NUL byte,\n"
      "                                          blank line, key not UTF-8)\n"
      "                         missing_key      a key cell is empty or NA\n"
      "                         missing_feature  a feature cell is empty/NA/NaN/null\n"
      "                         non_numeric      a feature is not a finite number\n"
      "                         model_error      the model could not be used (run's\n"
      "                                          features not in INPUT, unknown\n"
      "                                          family, corrupt blob ...)\n"
      "Numbers are written so that they read back as the same double.\n"
      "If no model of the store can be used with INPUT's columns, nothing is written\n"
      "and the command fails.\n"
      "\n"
      "Exit status: 0 when every row was written (with or without a prediction),\n"
      "1 on errors, 2 on bad usage.\n"
      "\n"
      "Example:\n"
      "  myriad predict new.csv --store models.db --out predictions.csv\n"
      "  myriad predict new.arrow --store models.db --out predictions.arrow\n");
}

typedef struct progress_state {
  int tty;
  int printed;
} progress_state;

static void on_progress(void *ud, const myr_progress *p) {
  progress_state *st = ud;
  if (!st->tty)
    return;
  char a[32];
  double mb = (double)p->bytes_done / 1e6;
  double pct =
      p->bytes_total ? 100.0 * (double)p->bytes_done / (double)p->bytes_total : 0;
  double rate = p->seconds > 0 ? (double)p->rows_done / p->seconds : 0;
  fprintf(stderr, "\r\033[Kpredicting %5.1f%%  %s rows  %.2fM rows/s  %.0f MB/s", pct,
          cli_grouped(p->rows_done, a, sizeof a), rate / 1e6,
          p->seconds > 0 ? mb / p->seconds : 0.0);
  st->printed = 1;
}

static int write_file(void *ud, const char *bytes, size_t len) {
  return fwrite(bytes, 1, len, (FILE *)ud) == len ? 0 : MYR_EIO;
}

static void print_summary(FILE *f, const myr_predict_options *o,
                          const myr_predict_summary *s) {
  char a[32], b[32], c[32];
  fprintf(f, "myriad predict: wrote %s rows to %s\n",
          cli_grouped(s->rows_total, a, sizeof a),
          strcmp(o->out, "-") == 0 ? "stdout" : o->out);
  fprintf(f, "  rows     %s: %s predicted, %s without a prediction\n",
          cli_grouped(s->rows_total, a, sizeof a),
          cli_grouped(s->rows_predicted, b, sizeof b),
          cli_grouped(s->rows_missed, c, sizeof c));
  for (int i = 0; i < MYR_MISS__COUNT; i++) {
    if (!s->missed[i])
      continue;
    fprintf(f, "           %-16s %10s  first: row %llu", myr_predict_miss_name(i),
            cli_grouped(s->missed[i], a, sizeof a),
            (unsigned long long)s->first_missed_row[i]);
    if (s->first_missed_detail[i][0])
      fprintf(f, ": %s", s->first_missed_detail[i]);
    fprintf(f, "\n");
  }
  fprintf(f, "  keys     %s seen, %s models loaded\n",
          cli_grouped(s->keys_seen, a, sizeof a),
          cli_grouped(s->models_loaded, b, sizeof b));
  double rps = s->seconds_total > 0 ? (double)s->rows_total / s->seconds_total : 0;
  fprintf(f, "  time     %.2f s, %s rows/s, %u threads\n", s->seconds_total,
          cli_grouped((unsigned long long)rps, a, sizeof a), s->n_threads);
}

int myr_cmd_predict(int argc, char **argv) {
  static const struct option longopts[] = {{"store", required_argument, 0, 'S'},
                                           {"out", required_argument, 0, 'o'},
                                           {"format", required_argument, 0, 'F'},
                                           {"delimiter", required_argument, 0, 'd'},
                                           {"threads", required_argument, 0, 't'},
                                           {"plugin", required_argument, 0, 'P'},
                                           {"json", no_argument, 0, 'j'},
                                           {"memory-limit", required_argument, 0, 'M'},
                                           {"quiet", no_argument, 0, 'q'},
                                           {"help", no_argument, 0, 'h'},
                                           {0, 0, 0, 0}};
  myr_predict_options o;
  memset(&o, 0, sizeof o);
  const char **plugins = NULL;
  size_t n_plugins = 0;
  myr_registry *reg = NULL;
  int json = 0, quiet = 0, rc = 2;
  unsigned long long v;
  optind = 1;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'S': o.store = optarg; break;
    case 'o': o.out = optarg; break;
    case 'F':
      if (!strcmp(optarg, "csv"))
        o.out_format = MYR_PREDICT_OUT_CSV;
      else if (!strcmp(optarg, "arrow") || !strcmp(optarg, "feather"))
        o.out_format = MYR_PREDICT_OUT_ARROW_FILE;
      else if (!strcmp(optarg, "arrows"))
        o.out_format = MYR_PREDICT_OUT_ARROW_STREAM;
      else {
        fprintf(stderr,
                "myriad predict: --format must be csv, arrow or arrows, got '%s'\n",
                optarg);
        goto done;
      }
      break;
    case 'd':
      if (!strcmp(optarg, "tab") || !strcmp(optarg, "\\t") || !strcmp(optarg, "\t"))
        o.delimiter = '\t';
      else if (!strcmp(optarg, ",") || !strcmp(optarg, ";"))
        o.delimiter = optarg[0];
      else {
        fprintf(stderr,
                "myriad predict: --delimiter must be ',', ';' or 'tab', got '%s'\n",
                optarg);
        goto done;
      }
      break;
    case 't':
      if (!cli_parse_u64("predict", "--threads", optarg, &v))
        goto done;
      if (v > 1024) {
        fprintf(stderr, "myriad predict: --threads must be at most 1024\n");
        goto done;
      }
      o.n_threads = (unsigned)v;
      break;
    case 'M':
      if (!cli_parse_memory_limit("predict", optarg, &v))
        goto done;
      o.memory_limit = v;
      break;
    case 'P': {
      const char **np = realloc(plugins, (n_plugins + 1) * sizeof *np);
      if (!np) {
        fprintf(stderr, "myriad predict: out of memory\n");
        rc = 1;
        goto done;
      }
      plugins = np;
      plugins[n_plugins++] = optarg;
      break;
    }
    case 'j': json = 1; break;
    case 'q': quiet = 1; break;
    case 'h':
      usage(stdout);
      rc = 0;
      goto done;
    default: fprintf(stderr, "Run 'myriad predict --help' for the options.\n"); goto done;
    }
  }
  if (optind >= argc) {
    fprintf(stderr, "myriad predict: no INPUT file given\n"
                    "Run 'myriad predict --help' for the options.\n");
    goto done;
  }
  if (optind + 1 < argc) {
    fprintf(stderr, "myriad predict: more than one INPUT given ('%s', '%s')\n",
            argv[optind], argv[optind + 1]);
    goto done;
  }
  if (!o.store) {
    fprintf(stderr,
            "myriad predict: --store is required (the store 'myriad train' wrote)\n");
    goto done;
  }
  if (!o.out) {
    fprintf(stderr,
            "myriad predict: --out is required (a file path, or '-' for stdout)\n");
    goto done;
  }
  o.input = argv[optind];

  myr_error err = {0};
  rc = 1;
  if (n_plugins) {
    if (myr_registry_create(&reg, &err) != MYR_OK) {
      fprintf(stderr, "myriad predict: %s\n", err.message);
      goto done;
    }
    for (size_t i = 0; i < n_plugins; i++)
      if (myr_registry_load_plugin(reg, plugins[i], &err) != MYR_OK) {
        fprintf(stderr, "myriad predict: %s\n", err.message);
        goto done;
      }
    o.registry = reg;
  }
  o.cancel = cli_cancel_on_signals();
  int to_stdout = strcmp(o.out, "-") == 0;
  progress_state ps = {isatty(STDERR_FILENO) && !quiet, 0};
  o.progress = on_progress;
  o.progress_ud = &ps;

  myr_predict_summary s;
  int st = myr_predict(&o, &s, &err);
  if (ps.printed)
    fprintf(stderr, "\r\033[K");
  if (st != MYR_OK) {
    fprintf(stderr, "myriad predict: %s\n",
            err.message[0] ? err.message : myr_status_name(st));
    rc = cli_interrupted() ? 130 : 1;
    goto done;
  }
  FILE *sf = to_stdout ? stderr : stdout;
  if (json) {
    myr_predict_summary_json(&s, write_file, sf, &err);
    fprintf(sf, "\n");
  } else if (!quiet) {
    print_summary(sf, &o, &s);
  }
  rc = 0;
done:
  myr_registry_destroy(reg);
  free(plugins);
  return rc;
}
