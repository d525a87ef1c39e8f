/* SPDX-License-Identifier: Apache-2.0 */
/* Entry point of the `myriad` tool: dispatches to one subcommand, plus shared helpers. */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "myriad/myriad.h"

static void usage(FILE *out) {
  fprintf(out,
          "myriad %s: train, store and query one machine-learning model per key\n"
          "\n"
          "Usage: myriad COMMAND [OPTIONS]\n"
          "\n"
          "Commands:\n"
          "  gen      write a synthetic dataset with many groups (for demos and benchmarks)\n"
          "  train    train one model per key from a CSV or Arrow file into a SQLite store\n"
          "  predict  score a CSV or Arrow file with the model of each row's key\n"
          "  models   list, show and rank the models in a store\n"
          "  version  print the version\n"
          "\n"
          "Run 'myriad COMMAND --help' for the options of a command.\n"
          "\n"
          "Example:\n"
          "  myriad gen --groups 100000 --rows 50 --out data.csv\n"
          "  myriad train data.csv --keys app,api --label y --store models.db\n"
          "  myriad models --store models.db --worst r2 --limit 10\n",
          MYR_VERSION_STRING);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "gen"))
    return myr_cmd_gen(argc - 1, argv + 1);
  if (!strcmp(cmd, "train"))
    return myr_cmd_train(argc - 1, argv + 1);
  if (!strcmp(cmd, "models"))
    return myr_cmd_models(argc - 1, argv + 1);
  if (!strcmp(cmd, "predict"))
    return myr_cmd_predict(argc - 1, argv + 1);
  if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
    printf("myriad %s\n", MYR_VERSION_STRING);
    return 0;
  }
  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "myriad: unknown command '%s'\n\n", cmd);
  usage(stderr);
  return 2;
}

void cli_free_list(char **list, size_t n) {
  if (!list)
    return;
  for (size_t i = 0; i < n; i++)
    free(list[i]);
  free(list);
}

static int push(char ***list, size_t *n, size_t *cap, const char *s, size_t len) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 8;
    char **p = realloc(*list, c * sizeof *p);
    if (!p)
      return 0;
    *list = p;
    *cap = c;
  }
  char *copy = malloc(len + 1);
  if (!copy)
    return 0;
  memcpy(copy, s, len);
  copy[len] = '\0';
  (*list)[(*n)++] = copy;
  return 1;
}

/* "f0..f7": the same prefix on both sides, then decimal numbers lo <= hi. */
static int expand_range(const char *item, size_t len, char ***list, size_t *n, size_t *cap,
                        int *expanded) {
  *expanded = 0;
  const char *dots = NULL;
  for (size_t i = 0; i + 1 < len; i++)
    if (item[i] == '.' && item[i + 1] == '.') {
      dots = item + i;
      break;
    }
  if (!dots)
    return 1;
  size_t llen = (size_t)(dots - item), rlen = len - llen - 2;
  const char *right = dots + 2;
  size_t lp = llen, rp = rlen;
  while (lp > 0 && item[lp - 1] >= '0' && item[lp - 1] <= '9')
    lp--;
  while (rp > 0 && right[rp - 1] >= '0' && right[rp - 1] <= '9')
    rp--;
  if (lp == llen || rp == rlen || lp != rp || memcmp(item, right, lp) != 0)
    return 1; /* not a range; take it literally */
  unsigned long lo = strtoul(item + lp, NULL, 10), hi = strtoul(right + rp, NULL, 10);
  if (hi < lo || hi - lo > 100000)
    return 1;
  for (unsigned long v = lo; v <= hi; v++) {
    char name[256];
    int w = snprintf(name, sizeof name, "%.*s%lu", (int)lp, item, v);
    if (w < 0 || (size_t)w >= sizeof name || !push(list, n, cap, name, (size_t)w))
      return 0;
  }
  *expanded = 1;
  return 1;
}

int cli_split_list(const char *cmd, const char *arg, char ***out, size_t *n_out) {
  char **list = NULL;
  size_t n = 0, cap = 0;
  const char *p = arg;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    while (len && *p == ' ') {
      p++;
      len--;
    }
    while (len && p[len - 1] == ' ')
      len--;
    if (len == 0) {
      fprintf(stderr, "myriad %s: empty name in list '%s'\n", cmd, arg);
      cli_free_list(list, n);
      return 0;
    }
    int expanded;
    if (!expand_range(p, len, &list, &n, &cap, &expanded) ||
        (!expanded && !push(&list, &n, &cap, p, len))) {
      fprintf(stderr, "myriad %s: out of memory\n", cmd);
      cli_free_list(list, n);
      return 0;
    }
    if (!comma)
      break;
    p = comma + 1;
  }
  *out = list;
  *n_out = n;
  return 1;
}

int cli_parse_u64(const char *cmd, const char *opt, const char *arg, unsigned long long *out) {
  char *end;
  errno = 0;
  if (arg[0] == '-') {
    fprintf(stderr, "myriad %s: %s must be a non-negative integer, got '%s'\n", cmd, opt, arg);
    return 0;
  }
  unsigned long long v = strtoull(arg, &end, 10);
  if (end == arg || *end || errno) {
    fprintf(stderr, "myriad %s: %s must be a non-negative integer, got '%s'\n", cmd, opt, arg);
    return 0;
  }
  *out = v;
  return 1;
}

int cli_parse_size(const char *cmd, const char *opt, const char *arg,
                   unsigned long long *out) {
  static const char units[] = "KMGT"; /* 2^10, 2^20, 2^30, 2^40 */
  char *end = (char *)arg;
  errno = 0;
  double v = arg[0] == '-' ? -1 : strtod(arg, &end);
  double unit = 1;
  int number = end != arg; /* strtod read a number */
  const char *u =
      number && *end && v >= 0 ? strchr(units, toupper((unsigned char)*end)) : NULL;
  if (u) {
    unit = (double)(1ull << (10 * (u - units + 1)));
    end++;
    if (toupper((unsigned char)end[0]) == 'I' && toupper((unsigned char)end[1]) == 'B')
      end += 2; /* 4GiB */
    else if (toupper((unsigned char)end[0]) == 'B')
      end++; /* 4GB: still powers of 1024 */
  }
  if (!number || v < 0 || errno || *end || v * unit >= 18e18) {
    fprintf(stderr,
            "myriad %s: %s must be a size such as 512M, 4G or 4096 (bytes), got '%s'\n",
            cmd, opt, arg);
    return 0;
  }
  *out = (unsigned long long)(v * unit);
  return 1;
}

int cli_parse_memory_limit(const char *cmd, const char *arg, unsigned long long *out) {
  if (!cli_parse_size(cmd, "--memory-limit", arg, out))
    return 0;
  if (*out < (1ull << 20)) {
    fprintf(stderr, "myriad %s: --memory-limit must be at least 1M, got '%s'\n", cmd,
            arg);
    return 0;
  }
  return 1;
}

int cli_parse_double(const char *cmd, const char *opt, const char *arg, double *out) {
  char *end;
  errno = 0;
  double v = strtod(arg, &end);
  if (end == arg || *end || errno) {
    fprintf(stderr, "myriad %s: %s must be a number, got '%s'\n", cmd, opt, arg);
    return 0;
  }
  *out = v;
  return 1;
}

const char *cli_grouped(unsigned long long n, char *buf, size_t cap) {
  char tmp[32];
  int len = snprintf(tmp, sizeof tmp, "%llu", n);
  size_t o = 0;
  for (int i = 0; i < len && o + 1 < cap; i++) {
    if (i && (len - i) % 3 == 0 && o + 2 < cap)
      buf[o++] = ',';
    buf[o++] = tmp[i];
  }
  buf[o] = '\0';
  return buf;
}

int cli_load_plugin(const char *cmd, myr_registry **reg, const char *path) {
  myr_error err = {0};
  if (!*reg && myr_registry_create(reg, &err) != MYR_OK) {
    fprintf(stderr, "myriad %s: %s\n", cmd, err.message);
    return 0;
  }
  if (myr_registry_load_plugin(*reg, path, &err) != MYR_OK) {
    fprintf(stderr, "myriad %s: %s\n", cmd, err.message);
    return 0;
  }
  return 1;
}

static volatile sig_atomic_t g_interrupted;
static volatile int g_cancel;

static void on_signal(int sig) {
  (void)sig;
  g_interrupted = 1;
  g_cancel = 1;
}

const volatile int *cli_cancel_on_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  return &g_cancel;
}

int cli_interrupted(void) { return g_interrupted != 0; }
