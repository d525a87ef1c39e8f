/* SPDX-License-Identifier: Apache-2.0 */
/* Key encoding and interning: dense ids in first-seen order, exact tuples, frozen hashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/hash.h"
#include "engine/keys.h"
#include "myriad/alloc.h"
#include "testutil.h"

/* Canonical encoding of a tuple of strings: per value a u32 LE length, then the bytes. */
static size_t encode(unsigned char *out, const char *const *v, size_t n) {
  size_t pos = 0;
  for (size_t k = 0; k < n; k++) {
    uint32_t len = (uint32_t)strlen(v[k]);
    for (int b = 0; b < 4; b++)
      out[pos++] = (unsigned char)(len >> (8 * b));
    memcpy(out + pos, v[k], len);
    pos += len;
  }
  return pos;
}

static void test_hashes_are_frozen(void **state) {
  (void)state;
  /* Stored in every store and used to shard across machines: these must never change. */
  const char *v[] = {"app", "/x"};
  unsigned char e[64];
  size_t n = encode(e, v, 2);
  assert_true(myr__key_hash(e, n) == 0x51007fb1b76fbe03ULL);
  assert_true(myr__hash64("app-0001", 8, 0) == 0x1203c8605f55f2f6ULL);
  assert_true(myr__key_seed(7, 1) == 0x885ec18b5c68a5e0ULL);
}

static void test_intern_is_exact_and_ordered(void **state) {
  (void)state;
  myr__keytab kt;
  myr__keytab_init(&kt);
  /* ("ab","c") and ("a","bc") concatenate alike but are different tuples */
  const char *t1[] = {"ab", "c"}, *t2[] = {"a", "bc"};
  unsigned char e1[32], e2[32];
  size_t n1 = encode(e1, t1, 2), n2 = encode(e2, t2, 2);
  uint32_t g1, g2, g3;
  assert_int_equal(myr__keytab_intern(&kt, e1, n1, myr__key_hash(e1, n1), &g1, NULL), MYR_OK);
  assert_int_equal(myr__keytab_intern(&kt, e2, n2, myr__key_hash(e2, n2), &g2, NULL), MYR_OK);
  assert_int_equal(myr__keytab_intern(&kt, e1, n1, myr__key_hash(e1, n1), &g3, NULL), MYR_OK);
  assert_int_equal(g1, 0);
  assert_int_equal(g2, 1);
  assert_int_equal(g3, 0);
  assert_int_equal(kt.count[0], 2);
  assert_int_equal(kt.count[1], 1);
  /* equal hashes, different bytes: still two groups */
  uint32_t g4;
  assert_int_equal(myr__keytab_intern(&kt, e2, n2, myr__key_hash(e1, n1), &g4, NULL), MYR_OK);
  assert_int_equal(g4, 2);
  const char *vals[2];
  size_t lens[2];
  size_t len;
  const unsigned char *k = myr__keytab_key(&kt, 1, &len);
  assert_true(myr__key_split(k, len, 2, vals, lens));
  assert_int_equal(lens[0], 1);
  assert_memory_equal(vals[1], "bc", 2);
  char text[64];
  myr__key_format(k, len, 2, text, sizeof text);
  assert_string_equal(text, "a|bc");
  assert_false(myr__key_split(k, len - 1, 2, vals, lens)); /* truncated */
  assert_false(myr__key_split(k, len, 3, vals, lens));     /* too few values */
  myr__keytab_free(&kt);
}

static void test_many_keys_grow_the_table(void **state) {
  (void)state;
  myr__keytab kt;
  myr__keytab_init(&kt);
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 100000; i++) {
      char s[32];
      snprintf(s, sizeof s, "key-%d", i);
      const char *v[] = {s};
      unsigned char e[64];
      size_t n = encode(e, v, 1);
      uint32_t g;
      assert_int_equal(myr__keytab_intern(&kt, e, n, myr__key_hash(e, n), &g, NULL), MYR_OK);
      assert_int_equal(g, (uint32_t)i);
    }
  assert_int_equal(kt.n, 100000);
  assert_int_equal(kt.count[99999], 2);
  myr__keytab_free(&kt);
}

static void test_out_of_memory(void **state) {
  (void)state;
  tu_alloc_install();
  long live = tu_alloc_live();
  for (long n = 1; n < 20; n++) {
    myr__keytab kt;
    myr__keytab_init(&kt);
    tu_alloc_fail_at(n, 1);
    int rc = MYR_OK;
    for (int i = 0; i < 3000 && rc == MYR_OK; i++) {
      unsigned char e[8] = {4, 0, 0, 0, (unsigned char)i, (unsigned char)(i >> 8), 1, 2};
      uint32_t g;
      myr_error err = {0};
      rc = myr__keytab_intern(&kt, e, 8, myr__key_hash(e, 8), &g, &err);
      if (rc != MYR_OK) {
        assert_int_equal(rc, MYR_ENOMEM);
        assert_non_null(strstr(err.message, "out of memory"));
      }
    }
    tu_alloc_fail_at(0, 0);
    myr__keytab_free(&kt);
    assert_int_equal(tu_alloc_live(), live);
  }
  myr_set_allocator(NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hashes_are_frozen),
      cmocka_unit_test(test_intern_is_exact_and_ordered),
      cmocka_unit_test(test_many_keys_grow_the_table),
      cmocka_unit_test(test_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
