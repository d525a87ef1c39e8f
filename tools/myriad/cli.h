/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The myriad command-line tool: one myr_cmd_<verb> per subcommand, each returning the
 * process exit status (0 success, 1 runtime error, 2 usage error). The tool uses only
 * the public headers in include/myriad/.
 */
#ifndef MYRIAD_CLI_H
#define MYRIAD_CLI_H

#include <stddef.h>
#include <stdio.h>

int myr_cmd_gen(int argc, char **argv);
int myr_cmd_train(int argc, char **argv);
int myr_cmd_models(int argc, char **argv);
int myr_cmd_predict(int argc, char **argv);

/* Split a comma-separated list into a new array of new strings; "f0..f7" expands to
   f0, f1, ..., f7 (same prefix, increasing numbers). Returns 0 and prints on error. */
int cli_split_list(const char *cmd, const char *arg, char ***out, size_t *n_out);
void cli_free_list(char **list, size_t n);
/* Parse a non-negative integer / fraction option; prints "myriad CMD: ..." on error. */
int cli_parse_u64(const char *cmd, const char *opt, const char *arg, unsigned long long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *arg, double *out);
/* Parse a size: a number with an optional K, M, G or T suffix (powers of 1024; "4G",
   "4GB", "4GiB" and "0.5G" are accepted); prints "myriad CMD: ..." on error. */
int cli_parse_size(const char *cmd, const char *opt, const char *arg,
                   unsigned long long *out);
/* --memory-limit: a size of at least 1M (less is surely a missing suffix). */
int cli_parse_memory_limit(const char *cmd, const char *arg, unsigned long long *out);
/* Load a --plugin library into *reg (created on first use); prints "myriad CMD: ..."
   and returns 0 on failure. */
struct myr_registry;
int cli_load_plugin(const char *cmd, struct myr_registry **reg, const char *path);
/* Make SIGINT and SIGTERM set the flag returned, which the library polls to stop
   cleanly; cli_interrupted() tells whether that happened (exit status 130). */
const volatile int *cli_cancel_on_signals(void);
int cli_interrupted(void);
/* Print n with thousands separators into buf. */
const char *cli_grouped(unsigned long long n, char *buf, size_t cap);

#endif
