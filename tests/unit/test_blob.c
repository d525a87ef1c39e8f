/* SPDX-License-Identifier: Apache-2.0 */
/* Model blob v1: round trip, and every corruption or truncation is rejected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "models/families.h"
#include "store/blob.h"

static unsigned char *make_blob(size_t *len) {
  double x[] = {0, 1, 2, 3, 4, 5}, y[] = {1, 2, 2, 4, 5, 7};
  myr_dataset d = {6, 1, x, y};
  char params[64];
  myr__family_linear.params_init(params);
  myr__arena a;
  myr__arena_init(&a, 0);
  myr_scratch s = myr__arena_scratch(&a);
  void *m;
  assert_int_equal(myr__family_linear.fit(params, &d, 0, &s, &m, NULL), MYR_OK);
  const char *names[] = {"f0"};
  unsigned char *blob;
  assert_int_equal(myr__blob_encode(&myr__family_linear, m, 1,
                                    myr_feature_schema_hash(names, 1), &blob, len, NULL),
                   MYR_OK);
  myr__arena_free(&a);
  return blob;
}

static void test_crc32c_known_answer(void **state) {
  (void)state;
  /* The CRC-32C check value (RFC 3720, appendix B.4): "123456789" -> 0xE3069283. */
  assert_int_equal(myr_crc32c(0, "123456789", 9), 0xE3069283u);
  /* 32 bytes of zeros -> 0x8A9136AA (RFC 3720 B.4). */
  unsigned char z[32] = {0};
  assert_int_equal(myr_crc32c(0, z, 32), 0x8A9136AAu);
  /* incremental equals one shot */
  assert_int_equal(myr_crc32c(myr_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
  /* the instruction path (where the CPU has one) and the table path agree */
  assert_int_equal(myr__crc32c_portable(0, "123456789", 9), 0xE3069283u);
  unsigned char buf[1031];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char)(i * 131 + 7);
  for (size_t n = 0; n <= sizeof buf; n += 37)
    assert_int_equal(myr_crc32c(5, buf + 3, n - (n ? 3 : 0)),
                     myr__crc32c_portable(5, buf + 3, n - (n ? 3 : 0)));
}

static void test_round_trip(void **state) {
  (void)state;
  size_t len;
  unsigned char *blob = make_blob(&len);
  assert_int_equal(len, 48 + 16 + 4);
  myr_blob_view v;
  assert_int_equal(myr_blob_parse(blob, len, &v, NULL), MYR_OK);
  assert_string_equal(v.family, "linear");
  assert_int_equal(v.n_features, 1);
  assert_int_equal(v.payload_len, 16);
  assert_memory_equal(blob, "MYRB", 4);
  myr__arena a;
  myr__arena_init(&a, 0);
  myr_scratch s = myr__arena_scratch(&a);
  void *m;
  const myr_model_family *f;
  assert_int_equal(myr__blob_decode(NULL, blob, len, &s, &f, &m, NULL, NULL), MYR_OK);
  assert_ptr_equal(f, &myr__family_linear);
  myr__arena_free(&a);
  myr__free(blob);
}

static void test_every_byte_flip_is_rejected(void **state) {
  (void)state;
  size_t len;
  unsigned char *blob = make_blob(&len);
  for (size_t i = 0; i < len; i++)
    for (int bit = 0; bit < 8; bit++) {
      blob[i] ^= (unsigned char)(1u << bit);
      myr_blob_view v;
      myr_error err = {0};
      int rc = myr_blob_parse(blob, len, &v, &err);
      assert_true(rc != MYR_OK);
      assert_true(err.message[0] != '\0');
      blob[i] ^= (unsigned char)(1u << bit);
    }
  myr__free(blob);
}

static void test_every_truncation_is_rejected(void **state) {
  (void)state;
  size_t len;
  unsigned char *blob = make_blob(&len);
  for (size_t n = 0; n < len; n++) {
    unsigned char *copy = malloc(n ? n : 1); /* exact size so ASan sees any overread */
    memcpy(copy, blob, n);
    myr_blob_view v;
    myr_error err = {0};
    assert_true(myr_blob_parse(copy, n, &v, &err) != MYR_OK);
    free(copy);
  }
  myr_blob_view v;
  assert_int_equal(myr_blob_parse(NULL, 0, &v, NULL), MYR_ECORRUPT);
  myr__free(blob);
}

static int sink(void *ud, const char *b, size_t n) {
  char *out = ud;
  strncat(out, b, n);
  return 0;
}

static void test_describe_and_unknown_family(void **state) {
  (void)state;
  size_t len;
  unsigned char *blob = make_blob(&len);
  char text[1024] = "";
  assert_int_equal(myr_blob_describe(NULL, blob, len, sink, text, NULL), MYR_OK);
  assert_non_null(strstr(text, "\"family\":\"linear\""));
  assert_non_null(strstr(text, "\"coef\":["));
  /* rename the family and fix the checksum: decoding must say the family is missing */
  memcpy(blob + 8, "nosuch", 7);
  uint32_t crc = myr_crc32c(0, blob, len - 4);
  for (int i = 0; i < 4; i++)
    blob[len - 4 + i] = (unsigned char)(crc >> (8 * i));
  myr_error err = {0};
  text[0] = '\0';
  assert_int_equal(myr_blob_describe(NULL, blob, len, sink, text, &err), MYR_ENOTFOUND);
  assert_non_null(strstr(err.message, "nosuch"));
  myr__free(blob);
}

static void test_schema_hash_depends_on_names_and_order(void **state) {
  (void)state;
  const char *a[] = {"f0", "f1"}, *b[] = {"f1", "f0"}, *c[] = {"f0f", "1"};
  assert_true(myr_feature_schema_hash(a, 2) != myr_feature_schema_hash(b, 2));
  assert_true(myr_feature_schema_hash(a, 2) != myr_feature_schema_hash(c, 2));
  assert_true(myr_feature_schema_hash(a, 2) == myr_feature_schema_hash(a, 2));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32c_known_answer),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_every_byte_flip_is_rejected),
      cmocka_unit_test(test_every_truncation_is_rejected),
      cmocka_unit_test(test_describe_and_unknown_family),
      cmocka_unit_test(test_schema_hash_depends_on_names_and_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
