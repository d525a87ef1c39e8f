/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `myriad gen`: write a synthetic per-group regression or classification data set as
 * CSV or Arrow IPC (file or stream). Option parsing, the format's default from the --out
 * extension and the summary line live here; generation is myr_gen_csv()
 * (include/myriad/gen.h).
 * Exit status: 0 ok, 1 runtime error (I/O, memory), 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "myriad/gen.h"

static void usage(FILE *out) {
  fprintf(out,
          "Usage: myriad gen --out PATH [OPTIONS]\n"
          "\n"
          "Write a synthetic data set with one regression or classification problem per\n"
          "group (key), as CSV or Arrow, for demos, tests and benchmarks. The same\n"
          "arguments give byte-identical files.\n"
          "\n"
          "Options:\n"
          "  --out PATH          output file, '-' for stdout (required)\n"
          "  --format FORMAT     csv, arrow (Arrow IPC file, i.e. Feather v2) or arrows\n"
          "                      (Arrow IPC stream); default from the --out extension:\n"
          "                      .arrow, .feather, .ipc -> arrow; .arrows -> arrows;\n"
          "                      anything else (and stdout) -> csv\n"
          "  --compression C     Arrow formats: none, lz4 or zstd, per buffer (default none)\n"
          "  --groups N          number of groups, i.e. distinct keys (default 1000)\n"
          "  --rows N            rows per group (default 100); with --skew zipf the mean:\n"
          "                      the total is exactly groups x rows, every group has >= 1\n"
          "  --skew none|zipf    group sizes: all equal, or Zipf-distributed (default none)\n"
          "  --zipf-s S          Zipf exponent, > 0; larger is more skewed (default 1.1)\n"
          "  --features N        numeric feature columns f0..f{N-1}, 1 to %d (default 8)\n"
          "  --noise SIGMA       std dev of the Gaussian noise added to the label\n"
          "                      (classification: to the value that is binned; default 0.1)\n"
          "  --shape SHAPE       the function of the features behind the label: linear,\n"
          "                      smooth, piecewise or interactions (default linear; see\n"
          "                      Data below)\n"
          "  --task TASK         regression (default) or classification: integer class\n"
          "                      labels 0..K-1\n"
          "  --classes K         classification: number of classes, 2 to %d (default 2)\n"
          "  --flip P            classification: probability that a row's class is\n"
          "                      replaced by a uniformly drawn one (default 0.05)\n"
          "  --seed N            random seed (default 0)\n"
          "  --holdout FRACTION  also write a test file holding about this fraction of each\n"
          "                      group's rows, chosen per row by a seeded draw; in [0, 1)\n"
          "                      (default 0: no test file)\n"
          "  --test-out PATH     test file path, in the same format (default: --out with\n"
          "                      '.test' before the extension: data.csv -> data.test.csv)\n"
          "  --key-columns K     string key columns, 1 to %d (default 2), named in order\n"
          "                      app, api, host, region, zone, tenant, device, metric, with\n"
          "                      values like app-0042 and /api/v1/ep-0007; each group has\n"
          "                      its own key tuple\n"
          "  --label NAME        label column name (default y)\n"
          "  --shuffle           write all rows in one seeded pseudo-random order (default:\n"
          "                      each group's rows together, groups in key order); the\n"
          "                      rows themselves are the same either way\n"
          "  --threads N         generating threads, 0 = one per core (default 0)\n"
          "  --quiet             do not print the summary line to stderr\n"
          "  -h, --help          show this help\n"
          "\n",
          MYR_GEN_MAX_FEATURES, MYR_GEN_MAX_CLASSES, MYR_GEN_MAX_KEY_COLUMNS);
  fputs("Data: features are uniform on [-2, 2] with five decimals (the same for every shape\n"
        "and task). Each group g has its own coefficients, drawn from (seed, g), and a\n"
        "value s(f) by --shape (indices modulo the feature count):\n"
        "  linear        b0 + sum_j b_j*f_j + a*sin(f0) + c*f1*f2  (the f1*f2 term only\n"
        "                with 3 or more features; a linear model per group reaches R^2\n"
        "                of about 0.8-0.95 when the noise is small)\n"
        "  smooth        b0 + sum_j 2^-j*[a_j*sin(w_j*f_j + phi_j) + q_j*f_j^2\n"
        "                   + c_j*cos(f_j + f_{j+1})]\n"
        "  piecewise     b0 + two random depth-2 trees of thresholds on f0..f3: a step\n"
        "                function with at most 16 values per group\n"
        "  interactions  b0 + weak sum_j 2^-j*b_j*f_j + c*(f0-t0)*(f1-t1) + d*f0*f1*f2\n"
        "                   + e*sign(f2)*sign(f3)\n"
        "Regression: y = s(f) + noise*N(0,1), five decimals. Classification: s(f) +\n"
        "noise*N(0,1) is cut at the group's quantiles into K about equally frequent\n"
        "classes, then --flip redraws a fraction of the classes at random.\n"
        "The exact formulas are in include/myriad/gen.h.\n"
        "\n"
        "Columns: the key columns, f0..f{N-1}, then the label. In Arrow, keys are utf8,\n"
        "features and label float64 (the values the CSV text reads as), in record\n"
        "batches of up to 65536 rows.\n"
        "\n"
        "Example:\n"
        "  myriad gen --groups 100000 --rows 50 --skew zipf --holdout 0.2 --out data.csv\n"
        "  (writes data.csv and data.test.csv)\n"
        "  myriad gen --shape piecewise --task classification --classes 3 --out cls.csv\n"
        "  myriad gen --groups 100000 --rows 100 --compression zstd --out data.arrow\n",
        out);
}

enum {
  OPT_OUT = 256,
  OPT_GROUPS,
  OPT_ROWS,
  OPT_SKEW,
  OPT_ZIPF_S,
  OPT_FEATURES,
  OPT_NOISE,
  OPT_SEED,
  OPT_HOLDOUT,
  OPT_TEST_OUT,
  OPT_KEY_COLUMNS,
  OPT_LABEL,
  OPT_SHUFFLE,
  OPT_THREADS,
  OPT_QUIET,
  OPT_SHAPE,
  OPT_TASK,
  OPT_CLASSES,
  OPT_FLIP,
  OPT_FORMAT,
  OPT_COMPRESSION
};

/* An integer option in [lo, hi]; prints the error and returns 0 when it is not. */
static int parse_range(const char *opt, const char *arg, unsigned long long lo,
                       unsigned long long hi, unsigned long long *out) {
  if (!cli_parse_u64("gen", opt, arg, out))
    return 0;
  if (*out < lo || *out > hi) {
    fprintf(stderr, "myriad gen: %s must be %llu to %llu, got '%s'\n", opt, lo, hi, arg);
    return 0;
  }
  return 1;
}

static void print_size(char *buf, size_t cap, unsigned long long bytes) {
  if (bytes >= 1000000000ULL)
    snprintf(buf, cap, "%.2f GB", (double)bytes / 1e9);
  else if (bytes >= 1000000ULL)
    snprintf(buf, cap, "%.1f MB", (double)bytes / 1e6);
  else
    snprintf(buf, cap, "%llu bytes", bytes);
}

int myr_cmd_gen(int argc, char **argv) {
  static const struct option longopts[] = {
      {"out", required_argument, NULL, OPT_OUT},
      {"groups", required_argument, NULL, OPT_GROUPS},
      {"rows", required_argument, NULL, OPT_ROWS},
      {"skew", required_argument, NULL, OPT_SKEW},
      {"zipf-s", required_argument, NULL, OPT_ZIPF_S},
      {"features", required_argument, NULL, OPT_FEATURES},
      {"noise", required_argument, NULL, OPT_NOISE},
      {"seed", required_argument, NULL, OPT_SEED},
      {"holdout", required_argument, NULL, OPT_HOLDOUT},
      {"test-out", required_argument, NULL, OPT_TEST_OUT},
      {"key-columns", required_argument, NULL, OPT_KEY_COLUMNS},
      {"label", required_argument, NULL, OPT_LABEL},
      {"shuffle", no_argument, NULL, OPT_SHUFFLE},
      {"threads", required_argument, NULL, OPT_THREADS},
      {"quiet", no_argument, NULL, OPT_QUIET},
      {"shape", required_argument, NULL, OPT_SHAPE},
      {"task", required_argument, NULL, OPT_TASK},
      {"classes", required_argument, NULL, OPT_CLASSES},
      {"flip", required_argument, NULL, OPT_FLIP},
      {"format", required_argument, NULL, OPT_FORMAT},
      {"compression", required_argument, NULL, OPT_COMPRESSION},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  myr_gen_options opt;
  myr_gen_options_init(&opt);
  static const char *const shapes[] = {"linear", "smooth", "piecewise", "interactions"};
  int quiet = 0, c;
  const char *class_opt = NULL; /* a classification-only option given, for the check */
  int format = -1;              /* --format, -1 = from the --out extension */
  int compression = -1;         /* --compression, -1 = not given */
  unsigned long long v;
  double d;

  optind = 0; /* GNU getopt: full reinitialization, in case main or a test parsed before */
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    switch (c) {
    case OPT_OUT: opt.out = optarg; break;
    case OPT_TEST_OUT: opt.test_out = optarg; break;
    case OPT_LABEL: opt.label = optarg; break;
    case OPT_SHUFFLE: opt.shuffle = 1; break;
    case OPT_QUIET: quiet = 1; break;
    case OPT_GROUPS:
      if (!parse_range("--groups", optarg, 1, 1ULL << 40, &v))
        return 2;
      opt.n_groups = v;
      break;
    case OPT_ROWS:
      if (!parse_range("--rows", optarg, 1, 1ULL << 40, &v))
        return 2;
      opt.rows_per_group = v;
      break;
    case OPT_FEATURES:
      if (!parse_range("--features", optarg, 1, MYR_GEN_MAX_FEATURES, &v))
        return 2;
      opt.n_features = (size_t)v;
      break;
    case OPT_KEY_COLUMNS:
      if (!parse_range("--key-columns", optarg, 1, MYR_GEN_MAX_KEY_COLUMNS, &v))
        return 2;
      opt.n_key_columns = (size_t)v;
      break;
    case OPT_SEED:
      if (!cli_parse_u64("gen", "--seed", optarg, &v))
        return 2;
      opt.seed = v;
      break;
    case OPT_THREADS:
      if (!parse_range("--threads", optarg, 0, 1024, &v))
        return 2;
      opt.n_threads = (unsigned)v;
      break;
    case OPT_SKEW:
      if (!strcmp(optarg, "none")) {
        opt.skew = MYR_GEN_SKEW_NONE;
      } else if (!strcmp(optarg, "zipf")) {
        opt.skew = MYR_GEN_SKEW_ZIPF;
      } else {
        fprintf(stderr, "myriad gen: --skew must be none or zipf, got '%s'\n", optarg);
        return 2;
      }
      break;
    case OPT_ZIPF_S:
      if (!cli_parse_double("gen", "--zipf-s", optarg, &d))
        return 2;
      if (!(d > 0)) {
        fprintf(stderr, "myriad gen: --zipf-s must be above 0, got '%s'\n", optarg);
        return 2;
      }
      opt.zipf_s = d;
      break;
    case OPT_NOISE:
      if (!cli_parse_double("gen", "--noise", optarg, &d))
        return 2;
      opt.noise = d; /* range checked by myr_gen_csv */
      break;
    case OPT_HOLDOUT:
      if (!cli_parse_double("gen", "--holdout", optarg, &d))
        return 2;
      opt.holdout = d;
      break;
    case OPT_SHAPE:
      opt.shape = -1;
      for (int k = 0; k < 4; k++)
        if (!strcmp(optarg, shapes[k]))
          opt.shape = k;
      if (opt.shape < 0) {
        fprintf(stderr,
                "myriad gen: --shape must be linear, smooth, piecewise or interactions, "
                "got '%s'\n",
                optarg);
        return 2;
      }
      break;
    case OPT_TASK:
      if (!strcmp(optarg, "regression")) {
        opt.task = MYR_GEN_TASK_REGRESSION;
      } else if (!strcmp(optarg, "classification")) {
        opt.task = MYR_GEN_TASK_CLASSIFICATION;
      } else {
        fprintf(stderr,
                "myriad gen: --task must be regression or classification, got '%s'\n",
                optarg);
        return 2;
      }
      break;
    case OPT_CLASSES:
      if (!parse_range("--classes", optarg, 2, MYR_GEN_MAX_CLASSES, &v))
        return 2;
      opt.n_classes = (unsigned)v;
      class_opt = "--classes";
      break;
    case OPT_FLIP:
      if (!cli_parse_double("gen", "--flip", optarg, &d))
        return 2;
      if (!(d >= 0 && d <= 1)) {
        fprintf(stderr, "myriad gen: --flip must be in [0, 1], got '%s'\n", optarg);
        return 2;
      }
      opt.flip = d;
      class_opt = "--flip";
      break;
    case OPT_FORMAT:
      if (!strcmp(optarg, "csv")) {
        format = MYR_GEN_FORMAT_CSV;
      } else if (!strcmp(optarg, "arrow")) {
        format = MYR_GEN_FORMAT_ARROW_FILE;
      } else if (!strcmp(optarg, "arrows")) {
        format = MYR_GEN_FORMAT_ARROW_STREAM;
      } else {
        fprintf(stderr, "myriad gen: --format must be csv, arrow or arrows, got '%s'\n",
                optarg);
        return 2;
      }
      break;
    case OPT_COMPRESSION:
      if (!strcmp(optarg, "none")) {
        compression = MYR_GEN_COMPRESSION_NONE;
      } else if (!strcmp(optarg, "lz4")) {
        compression = MYR_GEN_COMPRESSION_LZ4;
      } else if (!strcmp(optarg, "zstd")) {
        compression = MYR_GEN_COMPRESSION_ZSTD;
      } else {
        fprintf(stderr, "myriad gen: --compression must be none, lz4 or zstd, got '%s'\n",
                optarg);
        return 2;
      }
      break;
    case 'h': usage(stdout); return 0;
    case ':':
      fprintf(stderr, "myriad gen: %s needs a value\n", argv[optind - 1]);
      return 2;
    default:
      fprintf(stderr, "myriad gen: unknown option '%s' (see myriad gen --help)\n",
              argv[optind - 1]);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "myriad gen: unexpected argument '%s' (see myriad gen --help)\n",
            argv[optind]);
    return 2;
  }
  if (!opt.out) {
    fprintf(stderr, "myriad gen: --out PATH is required (see myriad gen --help)\n");
    return 2;
  }
  if (class_opt && opt.task != MYR_GEN_TASK_CLASSIFICATION) {
    fprintf(stderr, "myriad gen: %s needs --task classification\n", class_opt);
    return 2;
  }
  opt.format = format >= 0 ? format : myr_gen_format_of_path(opt.out);
  if (compression > MYR_GEN_COMPRESSION_NONE && opt.format == MYR_GEN_FORMAT_CSV) {
    fprintf(stderr, "myriad gen: --compression needs an Arrow output (--format arrow or "
                    "arrows, or an .arrow/.arrows --out)\n");
    return 2;
  }
  opt.compression = compression > 0 ? compression : MYR_GEN_COMPRESSION_NONE;

  myr_gen_summary sum;
  myr_error err = {0};
  int rc = myr_gen_csv(&opt, &sum, &err);
  if (rc != MYR_OK) {
    fprintf(stderr, "myriad gen: %s\n", err.message[0] ? err.message : myr_status_name(rc));
    return rc == MYR_EINVAL ? 2 : 1;
  }
  if (!quiet) {
    char rows[32], groups[32], size[32], test[1200] = "";
    print_size(size, sizeof size, sum.bytes_train);
    if (opt.holdout > 0) {
      char tsize[32], trows[32], tpath[1024];
      const char *path = opt.test_out;
      if (!path) {
        myr_gen_test_path(opt.out, tpath, sizeof tpath);
        path = tpath;
      }
      print_size(tsize, sizeof tsize, sum.bytes_test);
      snprintf(test, sizeof test, "; %s test rows (%s) to %s",
               cli_grouped(sum.rows_test, trows, sizeof trows), tsize, path);
    }
    fprintf(stderr, "myriad gen: %s rows in %s groups (%s) to %s%s in %.2f s\n",
            cli_grouped(sum.rows_train, rows, sizeof rows),
            cli_grouped(sum.n_groups, groups, sizeof groups), size,
            strcmp(opt.out, "-") ? opt.out : "stdout", test, sum.seconds);
  }
  return 0;
}
