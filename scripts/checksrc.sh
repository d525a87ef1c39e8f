#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# House-style checks that a compiler does not make (run by `make lint` and `make test`):
# every C file starts with an SPDX line; the library allocates only through the
# allocator hook; banned functions stay out; lines fit in 100 columns.
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0
report() { echo "checksrc: $1"; fail=1; }
# grep that ignores comment lines (" * ...", "/* ...", "// ...").
code_grep() { grep -nE "$@" | grep -vE '^[^:]+:[0-9]+:\s*(\*|/\*|//)'; }

mapfile -t files < <(git ls-files 'src/*.c' 'src/*.h' 'include/*.h' 'tools/*.c' 'tools/*.h' 'python/*.c' \
                                  'tests/*.c' 'tests/*.h')
for f in "${files[@]}"; do
  head -1 "$f" | grep -q 'SPDX-License-Identifier' || report "$f: first line must be an SPDX line"
  awk -v f="$f" 'length($0) > 100 { printf "checksrc: %s:%d: line over 100 columns\n", f, NR; bad=1 }
                 END { exit bad }' "$f" || fail=1
done

# Banned everywhere: unbounded or non-reentrant string functions.
if code_grep '\b(gets|strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|atof)\s*\(' \
     $(git ls-files 'src/*.c' 'include/*.h') ; then
  report "banned function in the library (use the bounded/reentrant variant)"
fi
# The library allocates only through src/core/alloc.c (fault injection depends on it).
if code_grep '(^|[^_a-z])(malloc|calloc|realloc|free|strdup|strndup)\s*\(' \
     $(git ls-files 'src/*.c' | grep -v 'src/core/alloc.c'); then
  report "direct libc allocation in the library: use myr__malloc/myr__free (src/core/alloc.h)"
fi
# The library never exits or prints.
if code_grep '\b(exit|abort|printf|puts|perror)\s*\(|fprintf\s*\(\s*std(err|out)' \
     $(git ls-files 'src/*.c'); then
  report "the library must not exit or print: return an error instead"
fi
[ $fail -eq 0 ] && echo "checksrc: ok (${#files[@]} files)"
exit $fail
