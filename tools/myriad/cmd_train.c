/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `myriad train`: options to myr_train_options, a progress line on a terminal, and the
 * run summary (every row and group accounted for) at the end. Ctrl-C stops the run
 * cleanly: the store keeps its previous version and the unfinished run is marked failed.
 * --plugin libraries are loaded into one registry that lives until the command returns
 * (the families' code is in them).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "myriad/myriad.h"

static void usage(FILE *out) {
  fputs("Usage: myriad train INPUT --keys COLS --label COL [OPTIONS]\n"
          "\n"
          "Train one model per distinct key (tuple of the --keys columns) from INPUT, and\n"
          "store the models in a SQLite store. INPUT is a CSV file with a header row, or an\n"
          "Arrow IPC file or stream (.arrow, .feather, .arrows; recognized by its first\n"
          "bytes, whatever its name; LZ4 or ZSTD compressed bodies are read too). Rows that\n"
          "cannot be used are skipped and counted by reason; groups that cannot be fitted\n"
          "are recorded as errors; the run goes on either way.\n"
          "\n"
          "Input:\n"
          "  --keys COLS          key columns, comma-separated (required)\n"
          "  --label COL          column to predict (required)\n"
          "  --features COLS      feature columns, comma-separated; 'f0..f7' is a range\n"
          "                       (default: every numeric column that is not a key or label)\n"
          "  --delimiter C        CSV: ',', ';' or 'tab' (default: detected from the header)\n"
          "  Arrow columns of integers, floats, bools, dates and timestamps are numbers as\n"
          "  features and labels (bool 0/1, dates in days, timestamps in their unit); as\n"
          "  keys they are the text a CSV of the same data holds, so models do not depend on\n"
          "  the format. Nulls are skipped as empty CSV cells are.\n"
          "\n"
          "Model:\n"
          "  --model NAME         model family (default linear); --list-models shows them\n"
          "  --plugin PATH        load more model families from a plugin library (a path\n"
          "                       with a '/', e.g. ./libmyriad_knn.so); repeatable; see\n"
          "                       docs/plugins.md\n"
          "  --param K=V[,K=V]    family parameters, e.g. alpha=0.5 (repeatable)\n"
          "  --min-rows N         groups with fewer rows fail as too_few_rows\n"
          "                       (default: the family's minimum)\n"
          "  --holdout FRACTION   hold out this fraction of each group's rows, chosen with\n"
          "                       the key's seed, to compute validation metrics (r2, rmse,\n"
          "                       mae); the model is fitted on the rest (default 0)\n"
          "  --seed N             run seed; each key's seed derives from it (default 0)\n"
          "\n"
          "Run:\n"
          "  --store PATH         SQLite store to write (created if missing); without it the\n"
          "                       models are trained and counted but not kept\n"
          "  --threads N          threads to use (default: one per core); 1 runs everything\n"
          "                       on one core\n"
          "  --resume             complete this command's earlier run that never published\n"
          "                       (killed, crashed, Ctrl-C): the same INPUT and options\n"
          "                       (--threads may differ); keys it stored are not trained\n"
          "                       again, and the store ends as if it had not stopped.\n"
          "                       Without such a run, trains as usual; when that run is\n"
          "                       already published, does nothing. Needs --store\n"
          "  --memory-limit SIZE  bound the memory the rows take, e.g. 4G (K, M, G, T are\n"
          "                       powers of 1024): past half of it, rows are spilled by key\n"
          "                       hash to a compressed temporary file and trained a set of\n"
          "                       partitions at a time; the models are the same. Peak\n"
          "                       memory is about SIZE plus a fixed overhead (about 100 MB\n"
          "                       and each thread's largest group); one group must fit.\n"
          "                       Default: no limit\n"
          "  --spill-dir DIR      where that file goes (default: $TMPDIR, else /tmp); it is\n"
          "                       deleted as soon as it is created, so nothing is left\n"
          "  --json               print the summary as JSON on stdout\n"
          "  --quiet              no progress line and no summary\n"
          "  --list-models        list the model families (with those of --plugin) and exit\n"
          "  -h, --help           show this help\n"
          "\n",
        out);
  fputs("Families (defaults shown; --list-models lists them, --plugin adds more):\n"
          "  linear   alpha=1.0, fit_intercept=true; alpha=0 is least squares and fails\n"
          "           singular groups\n"
          "  forest   task=regression|classification, n_trees=100, max_depth=none,\n"
          "           min_samples_split=2, min_samples_leaf=1, max_features=1.0\n"
          "           (classification: sqrt; also log2, an integer or a fraction),\n"
          "           bootstrap=true, max_samples=none, min_impurity_decrease=0,\n"
          "           leaf_values=float32 (regression leaf means rounded to float32,\n"
          "           as XGBoost stores them; float64 keeps them exact);\n"
          "           classification labels are numbers, classes = the group's values\n"
          "  With --holdout, regression stores r2, rmse, mae; classification stores\n"
          "  accuracy and log_loss (train_* metrics are always stored).\n"
          "\n"
          "Example:\n"
          "  myriad train data.csv --keys app,api --label y --features f0..f7 \\\n"
          "      --param alpha=1 --holdout 0.2 --store models.db\n",
        out);
}

typedef struct progress_state {
  int tty;
  int printed;
} progress_state;

static void on_progress(void *ud, const myr_progress *p) {
  progress_state *st = ud;
  if (!st->tty)
    return;
  char a[32], b[32];
  if (p->phase == 1) {
    double mb = (double)p->bytes_done / 1e6;
    double pct = p->bytes_total ? 100.0 * (double)p->bytes_done / (double)p->bytes_total : 0;
    fprintf(stderr, "\r\033[Kreading  %5.1f%%  %s rows  %.0f MB/s", pct,
            cli_grouped(p->rows_done, a, sizeof a), p->seconds > 0 ? mb / p->seconds : 0.0);
  } else if (p->phase == 2) {
    double frac = p->groups_total ? (double)p->groups_done / (double)p->groups_total : 1;
    int width = 24, fill = (int)(frac * width);
    char bar[32];
    for (int i = 0; i < width; i++)
      bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    double rate = p->seconds > 0 ? (double)p->rows_done / p->seconds : 0;
    double eta = frac > 0 ? p->seconds * (1 - frac) / frac : 0;
    if (p->loads_total) /* spilled: groups are known load by load */
      fprintf(stderr, "\r\033[Ktraining load %u/%u [%s] %s groups  %.2fM rows/s",
              p->loads_done + 1, p->loads_total, bar, cli_grouped(p->groups_done, a, sizeof a),
              rate / 1e6);
    else
      fprintf(stderr, "\r\033[Ktraining [%s] %s/%s groups  %.2fM rows/s  ETA %.0fs", bar,
              cli_grouped(p->groups_done, a, sizeof a),
              cli_grouped(p->groups_total, b, sizeof b), rate / 1e6, eta);
  } else {
    fprintf(stderr, "\r\033[Kpublishing ...");
  }
  st->printed = 1;
}

static int write_stdout(void *ud, const char *bytes, size_t len) {
  (void)ud;
  return fwrite(bytes, 1, len, stdout) == len ? 0 : MYR_EIO;
}

static void print_summary(const myr_train_options *o, const myr_train_summary *s,
                          const char *params) {
  char a[32], b[32], c[32];
  if (s->already_published) {
    printf("myriad train: nothing to resume: run %lld of this spec is already published "
           "to %s\n",
           (long long)s->run_id, o->store);
    return;
  }
  if (o->store && s->run_id)
    printf("myriad train: run %lld published to %s\n", (long long)s->run_id, o->store);
  else
    printf("myriad train: done (no --store: models not kept)\n");
  printf("  model    %s%s%s%s, %zu features, seed %llu, %u threads\n", s->family,
         params ? " (" : "", params ? params : "", params ? ")" : "", s->n_features,
         (unsigned long long)o->seed, s->n_threads);
  printf("  groups   %s total: %s trained, %s failed\n", cli_grouped(s->groups_total, a, sizeof a),
         cli_grouped(s->groups_trained, b, sizeof b), cli_grouped(s->groups_failed, c, sizeof c));
  if (s->groups_resumed)
    printf("           %s of the trained were stored before the run stopped (resumed)\n",
           cli_grouped(s->groups_resumed, a, sizeof a));
  for (int i = 0; i < MYR_FAIL__COUNT; i++)
    if (s->failed[i])
      printf("           %-16s %10s  first: %s\n", myr_group_failure_name(i),
             cli_grouped(s->failed[i], a, sizeof a), s->failed_example[i]);
  printf("  rows     %s read: %s used, %s skipped\n", cli_grouped(s->rows_total, a, sizeof a),
         cli_grouped(s->rows_used, b, sizeof b), cli_grouped(s->rows_skipped, c, sizeof c));
  for (int i = 0; i < MYR_SKIP__COUNT; i++) {
    if (!s->skipped[i])
      continue;
    const myr_skip_example *ex = &s->skip_example[i];
    printf("           %-16s %10s", myr_skip_reason_name(i),
           cli_grouped(s->skipped[i], a, sizeof a));
    if (i == MYR_SKIP_GROUP_FAILED) {
      printf("  (rows of the failed groups)\n");
      continue;
    }
    printf("  first: row %llu", (unsigned long long)ex->row);
    if (ex->line)
      printf(" (line %llu)", (unsigned long long)ex->line);
    if (ex->column[0])
      printf(", column %s", ex->column);
    if (ex->detail[0])
      printf(": %s", ex->detail);
    printf("\n");
  }
  if (s->store_models)
    printf("  store    %.1f MB, %s current models, %s bytes per model\n",
           (double)s->store_bytes / 1e6, cli_grouped(s->store_models, a, sizeof a),
           cli_grouped(s->store_bytes / s->store_models, b, sizeof b));
  if (s->spill_rows)
    printf("  memory   over the limit: %s rows spilled (%.1f MB compressed) to %u partitions, "
           "trained in %u loads\n",
           cli_grouped(s->spill_rows, a, sizeof a), (double)s->spill_bytes / 1e6,
           s->spill_parts, s->spill_loads);
  double mps = s->seconds_total > 0 ? (double)s->groups_trained / s->seconds_total : 0;
  printf("  time     %.2f s (read %.2f s, group %.2f s, train+store %.2f s, publish %.2f s), "
         "%s models/s\n",
         s->seconds_total, s->seconds_read, s->seconds_group, s->seconds_train,
         s->seconds_publish, cli_grouped((unsigned long long)mps, a, sizeof a));
}

int myr_cmd_train(int argc, char **argv) {
  static const struct option longopts[] = {
      {"keys", required_argument, 0, 'k'},      {"label", required_argument, 0, 'l'},
      {"features", required_argument, 0, 'f'},  {"delimiter", required_argument, 0, 'd'},
      {"model", required_argument, 0, 'm'},     {"param", required_argument, 0, 'p'},
      {"min-rows", required_argument, 0, 'r'},  {"holdout", required_argument, 0, 'H'},
      {"seed", required_argument, 0, 's'},      {"store", required_argument, 0, 'S'},
      {"threads", required_argument, 0, 't'},   {"json", no_argument, 0, 'j'},
      {"quiet", no_argument, 0, 'q'},           {"list-models", no_argument, 0, 'L'},
      {"plugin", required_argument, 0, 'P'},    {"help", no_argument, 0, 'h'},
      {"resume", no_argument, 0, 'R'},          {"memory-limit", required_argument, 0, 'M'},
      {"spill-dir", required_argument, 0, 'D'}, {0, 0, 0, 0}};
  myr_train_options o;
  memset(&o, 0, sizeof o);
  char **keys = NULL, **feats = NULL;
  size_t n_keys = 0, n_feats = 0;
  char *params = NULL;
  myr_registry *reg = NULL; /* built-ins plus --plugin families; NULL without plugins */
  int json = 0, quiet = 0, list = 0, rc = 2;
  unsigned long long v;
  optind = 1;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'k':
      cli_free_list(keys, n_keys);
      keys = NULL;
      if (!cli_split_list("train", optarg, &keys, &n_keys))
        goto done;
      break;
    case 'f':
      cli_free_list(feats, n_feats);
      feats = NULL;
      if (!cli_split_list("train", optarg, &feats, &n_feats))
        goto done;
      break;
    case 'l': o.label = optarg; break;
    case 'd':
      if (!strcmp(optarg, "tab") || !strcmp(optarg, "\\t") || !strcmp(optarg, "\t"))
        o.delimiter = '\t';
      else if (!strcmp(optarg, ",") || !strcmp(optarg, ";"))
        o.delimiter = optarg[0];
      else {
        fprintf(stderr, "myriad train: --delimiter must be ',', ';' or 'tab', got '%s'\n",
                optarg);
        goto done;
      }
      break;
    case 'm': o.model = optarg; break;
    case 'p': {
      size_t old = params ? strlen(params) : 0;
      char *np = realloc(params, old + strlen(optarg) + 2);
      if (!np)
        goto done;
      if (old)
        np[old++] = ',';
      strcpy(np + old, optarg);
      params = np;
      break;
    }
    case 'r':
      if (!cli_parse_u64("train", "--min-rows", optarg, &v))
        goto done;
      o.min_rows = (size_t)v;
      break;
    case 'H':
      if (!cli_parse_double("train", "--holdout", optarg, &o.holdout))
        goto done;
      if (!(o.holdout >= 0 && o.holdout < 1)) {
        fprintf(stderr, "myriad train: --holdout must be at least 0 and below 1, got '%s'\n",
                optarg);
        goto done;
      }
      break;
    case 's':
      if (!cli_parse_u64("train", "--seed", optarg, &v))
        goto done;
      o.seed = v;
      break;
    case 'S': o.store = optarg; break;
    case 't':
      if (!cli_parse_u64("train", "--threads", optarg, &v))
        goto done;
      if (v > 1024) {
        fprintf(stderr, "myriad train: --threads must be at most 1024\n");
        goto done;
      }
      o.n_threads = (unsigned)v;
      break;
    case 'j': json = 1; break;
    case 'R': o.resume = 1; break;
    case 'M':
      if (!cli_parse_memory_limit("train", optarg, &v))
        goto done;
      o.memory_limit = v;
      break;
    case 'D': o.spill_dir = optarg; break;
    case 'q': quiet = 1; break;
    case 'P':
      if (!cli_load_plugin("train", &reg, optarg))
        goto done;
      break;
    case 'L': list = 1; break;
    case 'h': usage(stdout); rc = 0; goto done;
    default:
      fprintf(stderr, "Run 'myriad train --help' for the options.\n");
      goto done;
    }
  }
  if (list) { /* after the loop, so --plugin counts wherever it stands */
    for (size_t i = 0; i < myr_registry_count(reg); i++) {
      const myr_model_family *f = myr_registry_at(reg, i);
      printf("%-10s %s\n", f->name, f->summary);
    }
    rc = 0;
    goto done;
  }
  if (optind >= argc) {
    fprintf(stderr, "myriad train: no INPUT file given\n"
                    "Run 'myriad train --help' for the options.\n");
    goto done;
  }
  if (optind + 1 < argc) {
    fprintf(stderr, "myriad train: more than one INPUT given ('%s', '%s')\n", argv[optind],
            argv[optind + 1]);
    goto done;
  }
  if (!keys) {
    fprintf(stderr, "myriad train: --keys is required (the columns that identify a group)\n");
    goto done;
  }
  if (!o.label) {
    fprintf(stderr, "myriad train: --label is required (the column to predict)\n");
    goto done;
  }
  o.input = argv[optind];
  o.keys = (const char *const *)keys;
  o.n_keys = n_keys;
  o.features = (const char *const *)feats;
  o.n_features = n_feats;
  o.params = params;
  o.registry = reg;
  o.cancel = cli_cancel_on_signals();
  progress_state ps = {isatty(STDERR_FILENO) && !quiet, 0};
  o.progress = on_progress;
  o.progress_ud = &ps;

  myr_train_summary s;
  myr_error err = {0};
  int st = myr_train(&o, &s, &err);
  if (ps.printed)
    fprintf(stderr, "\r\033[K");
  if (st != MYR_OK) {
    fprintf(stderr, "myriad train: %s\n", err.message[0] ? err.message : myr_status_name(st));
    if (s.rows_total && !quiet)
      fprintf(stderr, "myriad train: read %llu rows before stopping; nothing was published\n",
              (unsigned long long)s.rows_total);
    rc = cli_interrupted() ? 130 : 1;
    goto done;
  }
  if (json) {
    myr_train_summary_json(&s, write_stdout, NULL, &err);
    printf("\n");
  } else if (!quiet) {
    print_summary(&o, &s, params);
  }
  rc = 0;
done:
  cli_free_list(keys, n_keys);
  cli_free_list(feats, n_feats);
  free(params);
  myr_registry_destroy(reg); /* last: nothing refers to plugin families any more */
  return rc;
}
