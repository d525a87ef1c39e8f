/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: Arrow IPC files and streams are untrusted input. Opens the bytes with
 * myr__ipc_open_mem, reads the schema and every batch, touches every value (validity,
 * offsets, data, dictionary values) so ASan sees any out-of-bounds buffer, checks the
 * invariants the reader promises (ipc_touch.h) and releases everything, the stream
 * before the last batch so that arrays are seen to outlive it. A broken invariant on an
 * input the reader accepted aborts: that is a reader bug, not a bad input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/arrow.h"
#include "ipc_touch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Copy to an exact-size block so a sanitizer sees any overread. */
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf)
    return 0;
  memcpy(buf, data, size);
  (void)myr__format_sniff(buf, size);
  struct ArrowArrayStream st;
  myr_error err = {0};
  if (myr__ipc_open_mem(buf, size, "fuzz", &st, &err) == MYR_OK) {
    uint64_t sum = 0, done = 0, total = 0;
    if (ipct_stream(&st, &sum) == -2)
      abort();
    myr__ipc_progress(&st, &done, &total);
    if (done > total || total != size)
      abort();
    st.release(&st);
  } else if (err.message[0] == '\0') {
    abort(); /* every failure names what was wrong */
  }
  /* Arrays outliving their stream: open again, keep the first batch past release. */
  if (myr__ipc_open_mem(buf, size, "fuzz", &st, &err) == MYR_OK) {
    struct ArrowSchema s;
    struct ArrowArray b;
    memset(&b, 0, sizeof b);
    if (st.get_schema(&st, &s) != 0)
      abort();
    int rc = st.get_next(&st, &b);
    st.release(&st);
    uint64_t sum = 0;
    if (rc == 0 && b.release) {
      if (ipct_batch(&s, &b, &sum) != 0)
        abort();
      b.release(&b);
    }
    s.release(&s);
  }
  free(buf);
  return 0;
}
