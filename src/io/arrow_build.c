/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Column builders exported through the Arrow C Data Interface, and an ArrowArrayStream
 * over a list of finished arrays (see arrow.h for the contract).
 *
 * DESIGN. A column keeps its Arrow buffers as they will be exported: values (fixed
 * width, bool bits, or var-width bytes), int32 offsets (utf8/binary) and a validity
 * bitmap that exists only once a null was appended. Buffers grow geometrically; after
 * finish they belong to the exported array, the column restarts empty and reserves the
 * previous batch's size at its first append, so a steady stream of batches costs one
 * allocation per buffer per batch. finish allocates every exported struct before it
 * moves any buffer, so a failure leaves the builder untouched. A view instead lends the
 * buffers for one synchronous use (an IPC writer) and clear keeps them: no allocation at
 * all once the buffers are large enough. Appends check the common case (room, no bitmap)
 * first and take the general path otherwise.
 *
 * Exported structs: every ArrowSchema node owns copies of its strings, its children
 * pointer array and the child structs; every ArrowArray node owns its buffers through
 * a private block. A parent's release releases the children that were not moved out.
 */
#include "io/arrow.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

#define MIN_VALUES 64            /* first reservation of a column, in values */
#define MAX_VAR_BYTES INT32_MAX  /* int32 offsets: bytes of utf8/binary per batch */
#define LIST_ERROR_MAX 256       /* stream error message */

typedef struct bcol {
  char *name;          /* owned copy of the column name */
  int type;            /* enum myr__arrow_type */
  size_t width;        /* bytes per value for fixed-width types; 0 for bool/var-width */
  size_t length;       /* values appended to the current batch */
  int64_t null_count;  /* nulls among them */
  uint8_t *validity;   /* bitmap (1 = valid); NULL until a null was appended */
  size_t validity_cap; /* bytes allocated */
  uint8_t *values;     /* fixed-width values, bool bits, or var-width bytes */
  size_t values_cap;   /* bytes allocated */
  size_t values_len;   /* var-width bytes used */
  int32_t *offsets;    /* var-width: length + 1 entries once a value was appended */
  size_t offsets_cap;  /* entries allocated */
  size_t hint_rows;    /* rows of the previous batch: the next batch reserves as many */
  size_t hint_bytes;   /* var-width bytes of the previous batch */
} bcol;

struct myr__arrow_builder {
  size_t n_columns; /* entries of cols */
  bcol *cols;       /* owned */
  struct ArrowArray *view_kids;    /* myr__arrow_builder_view: child structs (owned) */
  struct ArrowArray **view_ptrs;   /* their pointers (owned) */
  const void **view_bufs;          /* 3 buffer pointers per column (owned) */
  const void *view_top_buf;        /* the struct's validity: NULL */
};

static const char *type_format(int type) {
  switch (type) {
  case MYR__ARROW_UTF8: return "u";
  case MYR__ARROW_BINARY: return "z";
  case MYR__ARROW_F64: return "g";
  case MYR__ARROW_I64: return "l";
  case MYR__ARROW_U64: return "L";
  case MYR__ARROW_BOOL: return "b";
  case MYR__ARROW_I32: return "i";
  default: return NULL;
  }
}

static size_t type_width(int type) {
  switch (type) {
  case MYR__ARROW_F64:
  case MYR__ARROW_I64:
  case MYR__ARROW_U64: return 8;
  case MYR__ARROW_I32: return 4;
  default: return 0;
  }
}

static int is_var(int type) {
  return type == MYR__ARROW_UTF8 || type == MYR__ARROW_BINARY;
}

/* Grow *p (cap bytes) to hold at least need bytes: doubling, and at least first bytes
   the first time. New bytes are zeroed when zero is set (bitmaps). */
static int grow(uint8_t **p, size_t *cap, size_t need, size_t first, int zero) {
  if (need <= *cap)
    return MYR_OK;
  size_t n = *cap ? *cap : (first > need ? first : need);
  while (n < need) {
    if (n > SIZE_MAX / 2)
      return MYR_ENOMEM;
    n *= 2;
  }
  uint8_t *q = myr__realloc(*p, n);
  if (!q)
    return MYR_ENOMEM;
  if (zero)
    memset(q + *cap, 0, n - *cap);
  *p = q;
  *cap = n;
  return MYR_OK;
}

static size_t first_rows(const bcol *col) {
  return col->hint_rows > MIN_VALUES ? col->hint_rows : MIN_VALUES;
}

/* Room for the validity bit of value col->length; creates the bitmap (all previous
   values valid) when make is set and there is none yet. */
static int reserve_validity(bcol *col, int make) {
  if (!col->validity && !make)
    return MYR_OK;
  size_t need = col->length / 8 + 1;
  int had = col->validity != NULL;
  if (grow(&col->validity, &col->validity_cap, need, (first_rows(col) + 7) / 8, 1) != MYR_OK)
    return MYR_ENOMEM;
  if (!had) {
    memset(col->validity, 0xff, col->length / 8);
    if (col->length % 8)
      col->validity[col->length / 8] = (uint8_t)((1u << (col->length % 8)) - 1);
  }
  return MYR_OK;
}

static void set_bit(uint8_t *bits, size_t i, int v) {
  if (v)
    bits[i / 8] |= (uint8_t)(1u << (i % 8));
  else
    bits[i / 8] &= (uint8_t)~(1u << (i % 8));
}

/* Room for one more value of col (not its validity bit). */
static int reserve_value(bcol *col, size_t bytes) {
  if (col->type == MYR__ARROW_BOOL)
    return grow(&col->values, &col->values_cap, col->length / 8 + 1,
                (first_rows(col) + 7) / 8, 1);
  if (!is_var(col->type))
    return grow(&col->values, &col->values_cap, (col->length + 1) * col->width,
                first_rows(col) * col->width, 0);
  if (bytes > (size_t)MAX_VAR_BYTES - col->values_len)
    return MYR_EINVAL;
  size_t need = (col->length + 2) * sizeof(int32_t), cap = col->offsets_cap * sizeof(int32_t);
  uint8_t *off = (uint8_t *)col->offsets;
  int had = col->offsets != NULL;
  if (grow(&off, &cap, need, (first_rows(col) + 1) * sizeof(int32_t), 0) != MYR_OK)
    return MYR_ENOMEM;
  col->offsets = (int32_t *)(void *)off;
  col->offsets_cap = cap / sizeof(int32_t);
  if (!had)
    col->offsets[0] = 0;
  if (bytes && grow(&col->values, &col->values_cap, col->values_len + bytes,
                    col->hint_bytes > 64 ? col->hint_bytes : 64, 0) != MYR_OK)
    return MYR_ENOMEM;
  return MYR_OK;
}

/* ---- builder ------------------------------------------------------------------------ */

int myr__arrow_builder_new(size_t n_columns, const char *const *names, const int *types,
                           myr__arrow_builder **out, myr_error *err) {
  *out = NULL;
  for (size_t c = 0; c < n_columns; c++) {
    if (!type_format(types[c]))
      return myr_error_set(err, MYR_EINVAL, "arrow builder: column %zu ('%s') has unknown "
                           "type %d", c, names[c] ? names[c] : "", types[c]);
  }
  myr__arrow_builder *b = myr__calloc(1, sizeof *b);
  if (!b)
    return myr_error_set(err, MYR_ENOMEM, "arrow builder: out of memory");
  b->n_columns = n_columns;
  if (n_columns && !(b->cols = myr__calloc(n_columns, sizeof *b->cols))) {
    myr__free(b);
    return myr_error_set(err, MYR_ENOMEM, "arrow builder: out of memory for %zu columns",
                         n_columns);
  }
  for (size_t c = 0; c < n_columns; c++) {
    bcol *col = &b->cols[c];
    col->type = types[c];
    col->width = type_width(types[c]);
    if (!(col->name = myr__strdup(names[c] ? names[c] : ""))) {
      myr__arrow_builder_free(b);
      return myr_error_set(err, MYR_ENOMEM, "arrow builder: out of memory");
    }
  }
  *out = b;
  return MYR_OK;
}

static void col_clear(bcol *col) {
  myr__free(col->validity);
  myr__free(col->values);
  myr__free(col->offsets);
  col->validity = col->values = NULL;
  col->offsets = NULL;
  col->validity_cap = col->values_cap = col->offsets_cap = 0;
  col->length = col->values_len = 0;
  col->null_count = 0;
}

void myr__arrow_builder_free(myr__arrow_builder *b) {
  if (!b)
    return;
  for (size_t c = 0; c < b->n_columns; c++) {
    col_clear(&b->cols[c]);
    myr__free(b->cols[c].name);
  }
  myr__free(b->cols);
  myr__free(b->view_kids);
  myr__free(b->view_ptrs);
  myr__free(b->view_bufs);
  myr__free(b);
}

size_t myr__arrow_builder_rows(const myr__arrow_builder *b) {
  if (!b || b->n_columns == 0)
    return 0;
  size_t n = b->cols[0].length;
  for (size_t c = 1; c < b->n_columns; c++)
    if (b->cols[c].length < n)
      n = b->cols[c].length;
  return n;
}

size_t myr__arrow_builder_data_bytes(const myr__arrow_builder *b, size_t c) {
  if (!b || c >= b->n_columns)
    return 0;
  const bcol *col = &b->cols[c];
  if (is_var(col->type))
    return col->values_len;
  if (col->type == MYR__ARROW_BOOL)
    return (col->length + 7) / 8;
  return col->length * col->width;
}

int myr__arrow_append_null(myr__arrow_builder *b, size_t c) {
  if (!b || c >= b->n_columns)
    return MYR_EINVAL;
  bcol *col = &b->cols[c];
  if (col->length >= (size_t)INT32_MAX)
    return MYR_EINVAL;
  if (reserve_value(col, 0) != MYR_OK || reserve_validity(col, 1) != MYR_OK)
    return MYR_ENOMEM;
  if (is_var(col->type))
    col->offsets[col->length + 1] = (int32_t)col->values_len;
  else if (col->type == MYR__ARROW_BOOL)
    set_bit(col->values, col->length, 0);
  else
    memset(col->values + col->length * col->width, 0, col->width);
  set_bit(col->validity, col->length, 0);
  col->length++;
  col->null_count++;
  return MYR_OK;
}

/* Reserve for one valid value of n bytes of type-check ok; sets the validity bit. */
static int begin_value(myr__arrow_builder *b, size_t c, size_t n, bcol **col_out) {
  if (!b || c >= b->n_columns)
    return MYR_EINVAL;
  bcol *col = &b->cols[c];
  if (col->length >= (size_t)INT32_MAX)
    return MYR_EINVAL;
  int rc = reserve_value(col, n);
  if (rc != MYR_OK)
    return rc;
  if (reserve_validity(col, 0) != MYR_OK)
    return MYR_ENOMEM;
  if (col->validity)
    set_bit(col->validity, col->length, 1);
  *col_out = col;
  return MYR_OK;
}

int myr__arrow_append_bytes(myr__arrow_builder *b, size_t c, const void *p, size_t n) {
  if (!b || c >= b->n_columns || !is_var(b->cols[c].type) || (n && !p))
    return MYR_EINVAL;
  bcol *col = &b->cols[c];
  if (!col->validity && col->length + 2 <= col->offsets_cap &&
      col->length < (size_t)INT32_MAX && n <= col->values_cap - col->values_len &&
      n <= (size_t)MAX_VAR_BYTES - col->values_len) { /* the common case: room for all */
    if (n)
      memcpy(col->values + col->values_len, p, n);
    col->values_len += n;
    col->offsets[col->length + 1] = (int32_t)col->values_len;
    col->length++;
    return MYR_OK;
  }
  int rc = begin_value(b, c, n, &col);
  if (rc != MYR_OK)
    return rc;
  if (n)
    memcpy(col->values + col->values_len, p, n);
  col->values_len += n;
  col->offsets[col->length + 1] = (int32_t)col->values_len;
  col->length++;
  return MYR_OK;
}

int myr__arrow_append_f64(myr__arrow_builder *b, size_t c, double v) {
  if (!b || c >= b->n_columns || b->cols[c].type != MYR__ARROW_F64)
    return MYR_EINVAL;
  bcol *col = &b->cols[c];
  if (!col->validity && (col->length + 1) * 8 <= col->values_cap &&
      col->length < (size_t)INT32_MAX) { /* the common case */
    memcpy(col->values + col->length * 8, &v, 8);
    col->length++;
    return MYR_OK;
  }
  int rc = begin_value(b, c, 0, &col);
  if (rc != MYR_OK)
    return rc;
  memcpy(col->values + col->length * 8, &v, 8);
  col->length++;
  return MYR_OK;
}

int myr__arrow_append_i64(myr__arrow_builder *b, size_t c, int64_t v) {
  if (!b || c >= b->n_columns)
    return MYR_EINVAL;
  int type = b->cols[c].type;
  if (type != MYR__ARROW_I64 && type != MYR__ARROW_U64 && type != MYR__ARROW_BOOL &&
      type != MYR__ARROW_I32)
    return MYR_EINVAL;
  if (type == MYR__ARROW_I32 && (v < INT32_MIN || v > INT32_MAX))
    return MYR_EINVAL;
  bcol *col;
  int rc = begin_value(b, c, 0, &col);
  if (rc != MYR_OK)
    return rc;
  if (type == MYR__ARROW_BOOL) {
    set_bit(col->values, col->length, v != 0);
  } else if (type == MYR__ARROW_I32) {
    int32_t w = (int32_t)v;
    memcpy(col->values + col->length * 4, &w, 4);
  } else {
    memcpy(col->values + col->length * 8, &v, 8); /* u64: the same 64 bits */
  }
  col->length++;
  return MYR_OK;
}

/* ---- exported schemas --------------------------------------------------------------- */

/* Release of every ArrowSchema node made here: strings, children (those not moved out),
   the dictionary; the node's structs for children and dictionary are ours too. */
static void schema_release(struct ArrowSchema *s) {
  if (!s || !s->release)
    return;
  for (int64_t i = 0; s->children && i < s->n_children; i++) {
    struct ArrowSchema *ch = s->children[i];
    if (ch && ch->release)
      ch->release(ch);
    myr__free(ch);
  }
  myr__free(s->children);
  if (s->dictionary) {
    if (s->dictionary->release)
      s->dictionary->release(s->dictionary);
    myr__free(s->dictionary);
  }
  myr__free((void *)s->format);
  myr__free((void *)s->name);
  myr__free((void *)s->metadata);
  memset(s, 0, sizeof *s);
}

/* Bytes of a C Data Interface metadata blob (int32 count, then per pair int32 length +
   key bytes, int32 length + value bytes). */
static size_t metadata_size(const char *m) {
  int32_t n, len;
  size_t at = 4;
  memcpy(&n, m, 4);
  for (int32_t i = 0; i < 2 * n; i++) {
    memcpy(&len, m + at, 4);
    at += 4 + (size_t)(len > 0 ? len : 0);
  }
  return at;
}

/* A node with copies of the strings and n_children zeroed child structs; on failure
   *s is released (left with release == NULL). */
static int schema_node(struct ArrowSchema *s, const char *format, const char *name,
                       const char *metadata, int64_t flags, int64_t n_children) {
  memset(s, 0, sizeof *s);
  s->release = schema_release;
  s->flags = flags;
  s->format = myr__strdup(format);
  if (!s->format)
    goto fail;
  if (name && !(s->name = myr__strdup(name)))
    goto fail;
  if (metadata) {
    size_t n = metadata_size(metadata);
    char *m = myr__malloc(n);
    if (!m)
      goto fail;
    memcpy(m, metadata, n);
    s->metadata = m;
  }
  if (n_children > 0) {
    s->children = myr__calloc((size_t)n_children, sizeof *s->children);
    if (!s->children)
      goto fail;
    s->n_children = n_children;
    for (int64_t i = 0; i < n_children; i++)
      if (!(s->children[i] = myr__calloc(1, sizeof **s->children)))
        goto fail;
  }
  return MYR_OK;
fail:
  schema_release(s);
  return MYR_ENOMEM;
}

/* Deep copy of any valid schema; on failure dst is released. */
static int schema_copy(const struct ArrowSchema *src, struct ArrowSchema *dst) {
  if (schema_node(dst, src->format, src->name, src->metadata, src->flags,
                  src->n_children) != MYR_OK)
    return MYR_ENOMEM;
  for (int64_t i = 0; i < src->n_children; i++)
    if (schema_copy(src->children[i], dst->children[i]) != MYR_OK)
      goto fail;
  if (src->dictionary) {
    if (!(dst->dictionary = myr__calloc(1, sizeof *dst->dictionary)))
      goto fail;
    if (schema_copy(src->dictionary, dst->dictionary) != MYR_OK)
      goto fail;
  }
  return MYR_OK;
fail:
  schema_release(dst);
  return MYR_ENOMEM;
}

int myr__arrow_builder_schema(const myr__arrow_builder *b, struct ArrowSchema *out,
                              myr_error *err) {
  if (schema_node(out, "+s", "", NULL, 0, (int64_t)b->n_columns) != MYR_OK)
    return myr_error_set(err, MYR_ENOMEM, "arrow builder: out of memory for the schema");
  for (size_t c = 0; c < b->n_columns; c++) {
    const bcol *col = &b->cols[c];
    if (schema_node(out->children[c], type_format(col->type), col->name, NULL,
                    ARROW_FLAG_NULLABLE, 0) != MYR_OK) {
      schema_release(out);
      return myr_error_set(err, MYR_ENOMEM, "arrow builder: out of memory for the schema");
    }
  }
  return MYR_OK;
}

/* ---- exported arrays ---------------------------------------------------------------- */

typedef struct arr_priv {
  void *owned[3];               /* buffers freed by release */
  const void *buffers[3];       /* ArrowArray.buffers points here */
  struct ArrowArray **children; /* child pointers (struct node), into child_structs */
  struct ArrowArray *child_structs; /* the children themselves */
  int64_t n_children;           /* entries of both */
} arr_priv;

static void array_release(struct ArrowArray *a) {
  if (!a || !a->release)
    return;
  arr_priv *p = a->private_data;
  for (int64_t i = 0; i < p->n_children; i++) {
    struct ArrowArray *ch = p->children[i];
    if (ch->release)
      ch->release(ch);
  }
  for (int k = 0; k < 3; k++)
    myr__free(p->owned[k]);
  myr__free(p->children);
  myr__free(p->child_structs);
  myr__free(p);
  memset(a, 0, sizeof *a);
}

/* The exported struct node and its children's private blocks, without any buffer yet;
   on failure nothing is left allocated. */
static int array_skeleton(size_t n, struct ArrowArray *out) {
  memset(out, 0, sizeof *out);
  arr_priv *top = myr__calloc(1, sizeof *top);
  if (!top)
    return MYR_ENOMEM;
  if (n) {
    top->children = myr__calloc(n, sizeof *top->children);
    top->child_structs = myr__calloc(n, sizeof *top->child_structs);
    if (!top->children || !top->child_structs)
      goto fail;
    for (size_t c = 0; c < n; c++) {
      top->children[c] = &top->child_structs[c];
      if (!(top->child_structs[c].private_data = myr__calloc(1, sizeof(arr_priv))))
        goto fail;
    }
  }
  top->n_children = (int64_t)n;
  out->private_data = top;
  out->n_buffers = 1;
  out->buffers = top->buffers;
  out->n_children = (int64_t)n;
  out->children = top->children;
  out->release = array_release;
  return MYR_OK;
fail:
  for (size_t c = 0; top->child_structs && c < n; c++)
    myr__free(top->child_structs[c].private_data);
  myr__free(top->children);
  myr__free(top->child_structs);
  myr__free(top);
  return MYR_ENOMEM;
}

int myr__arrow_builder_finish(myr__arrow_builder *b, struct ArrowSchema *schema_out,
                              struct ArrowArray *array_out, myr_error *err) {
  size_t rows = b->n_columns ? b->cols[0].length : 0;
  if (schema_out)
    schema_out->release = NULL;
  array_out->release = NULL;
  for (size_t c = 1; c < b->n_columns; c++) {
    if (b->cols[c].length != rows)
      return myr_error_set(err, MYR_EINVAL,
                           "arrow builder: column '%s' has %zu values but column '%s' has "
                           "%zu: every column needs one value per row",
                           b->cols[c].name, b->cols[c].length, b->cols[0].name, rows);
  }
  /* Allocate everything first: a failure leaves the builder's rows in place. */
  for (size_t c = 0; c < b->n_columns; c++) {
    bcol *col = &b->cols[c];
    if (is_var(col->type) && !col->offsets) {
      if (!(col->offsets = myr__calloc(1, sizeof(int32_t))))
        return myr_error_set(err, MYR_ENOMEM, "arrow builder: out of memory");
      col->offsets_cap = 1;
    }
  }
  if (array_skeleton(b->n_columns, array_out) != MYR_OK)
    return myr_error_set(err, MYR_ENOMEM, "arrow builder: out of memory for the batch");
  if (schema_out && myr__arrow_builder_schema(b, schema_out, err) != MYR_OK) {
    array_release(array_out);
    return MYR_ENOMEM;
  }
  array_out->length = (int64_t)rows;
  array_out->null_count = 0;
  arr_priv *top = array_out->private_data;
  for (size_t c = 0; c < b->n_columns; c++) {
    bcol *col = &b->cols[c];
    struct ArrowArray *ch = &top->child_structs[c];
    arr_priv *p = ch->private_data;
    ch->length = (int64_t)col->length;
    ch->null_count = col->null_count;
    ch->buffers = p->buffers;
    ch->release = array_release;
    p->owned[0] = col->validity;
    if (is_var(col->type)) {
      ch->n_buffers = 3;
      p->owned[1] = col->offsets;
      p->owned[2] = col->values;
    } else {
      ch->n_buffers = 2;
      p->owned[1] = col->values;
    }
    for (int k = 0; k < 3; k++)
      p->buffers[k] = p->owned[k];
    col->hint_rows = col->length;
    col->hint_bytes = col->values_len;
    col->validity = col->values = NULL;
    col->offsets = NULL;
    col_clear(col);
  }
  return MYR_OK;
}

/* ---- borrowed views ----------------------------------------------------------------- */

/* Views own nothing: releasing one only marks it (and its children) released. */
static void view_release(struct ArrowArray *a) {
  for (int64_t i = 0; i < a->n_children; i++)
    a->children[i]->release = NULL;
  a->release = NULL;
}

int myr__arrow_builder_view(myr__arrow_builder *b, struct ArrowArray *out, myr_error *err) {
  static const int32_t zero_offset = 0; /* offsets of an empty var-width column */
  size_t n = b->n_columns, rows = n ? b->cols[0].length : 0;
  out->release = NULL;
  for (size_t c = 1; c < n; c++) {
    if (b->cols[c].length != rows)
      return myr_error_set(err, MYR_EINVAL,
                           "arrow builder: column '%s' has %zu values but column '%s' has "
                           "%zu: every column needs one value per row",
                           b->cols[c].name, b->cols[c].length, b->cols[0].name, rows);
  }
  if (n && !b->view_kids) {
    b->view_kids = myr__calloc(n, sizeof *b->view_kids);
    b->view_ptrs = myr__calloc(n, sizeof *b->view_ptrs);
    b->view_bufs = myr__calloc(3 * n, sizeof *b->view_bufs);
    if (!b->view_kids || !b->view_ptrs || !b->view_bufs) {
      myr__free(b->view_kids);
      myr__free(b->view_ptrs);
      myr__free(b->view_bufs);
      b->view_kids = NULL;
      b->view_ptrs = NULL;
      b->view_bufs = NULL;
      return myr_error_set(err, MYR_ENOMEM, "arrow builder: out of memory for a view");
    }
  }
  for (size_t c = 0; c < n; c++) {
    const bcol *col = &b->cols[c];
    struct ArrowArray *ch = &b->view_kids[c];
    const void **bufs = b->view_bufs + 3 * c;
    memset(ch, 0, sizeof *ch);
    ch->length = (int64_t)col->length;
    ch->null_count = col->null_count;
    ch->n_buffers = is_var(col->type) ? 3 : 2;
    ch->buffers = bufs;
    ch->release = view_release;
    bufs[0] = col->validity;
    if (is_var(col->type)) {
      bufs[1] = col->offsets ? (const void *)col->offsets : &zero_offset;
      bufs[2] = col->values;
    } else {
      bufs[1] = col->values;
    }
    b->view_ptrs[c] = ch;
  }
  memset(out, 0, sizeof *out);
  out->length = (int64_t)rows;
  out->n_buffers = 1;
  b->view_top_buf = NULL;
  out->buffers = &b->view_top_buf;
  out->n_children = (int64_t)n;
  out->children = b->view_ptrs;
  out->release = view_release;
  return MYR_OK;
}

void myr__arrow_builder_clear(myr__arrow_builder *b) {
  for (size_t c = 0; b && c < b->n_columns; c++) {
    bcol *col = &b->cols[c];
    col->length = col->values_len = 0;
    col->null_count = 0;
    myr__free(col->validity); /* a bitmap exists only while a batch holds a null */
    col->validity = NULL;
    col->validity_cap = 0;
  }
}

/* ---- list stream -------------------------------------------------------------------- */

struct myr__arrow_list {
  struct ArrowSchema schema; /* owned */
  struct ArrowArray *arrays; /* owned until handed out; [next, n) still ours */
  size_t n;                  /* arrays pushed */
  size_t cap;                /* entries allocated */
  size_t next;               /* next array get_next hands out */
  char error[LIST_ERROR_MAX]; /* last error, "" when none */
};

/* Ownership moves on every return: on failure the schema (or array, in push) has been
   released, so the caller never has anything left to release. */
int myr__arrow_list_new(struct ArrowSchema *schema, myr__arrow_list **out, myr_error *err) {
  *out = NULL;
  myr__arrow_list *l = myr__calloc(1, sizeof *l);
  if (!l) {
    if (schema->release)
      schema->release(schema);
    return myr_error_set(err, MYR_ENOMEM, "arrow stream: out of memory");
  }
  l->schema = *schema;
  schema->release = NULL;
  *out = l;
  return MYR_OK;
}

int myr__arrow_list_push(myr__arrow_list *l, struct ArrowArray *array, myr_error *err) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    struct ArrowArray *a = myr__reallocarray(l->arrays, cap, sizeof *a);
    if (!a) {
      if (array->release)
        array->release(array);
      return myr_error_set(err, MYR_ENOMEM, "arrow stream: out of memory for batch %zu",
                           l->n);
    }
    l->arrays = a;
    l->cap = cap;
  }
  l->arrays[l->n++] = *array;
  array->release = NULL;
  return MYR_OK;
}

void myr__arrow_list_free(myr__arrow_list *l) {
  if (!l)
    return;
  for (size_t i = l->next; i < l->n; i++)
    if (l->arrays[i].release)
      l->arrays[i].release(&l->arrays[i]);
  if (l->schema.release)
    l->schema.release(&l->schema);
  myr__free(l->arrays);
  myr__free(l);
}

static int list_get_schema(struct ArrowArrayStream *s, struct ArrowSchema *out) {
  myr__arrow_list *l = s->private_data;
  out->release = NULL;
  if (!l->schema.release) {
    snprintf(l->error, sizeof l->error, "arrow stream: no schema");
    return EINVAL;
  }
  if (schema_copy(&l->schema, out) != MYR_OK) {
    snprintf(l->error, sizeof l->error, "arrow stream: out of memory copying the schema");
    return ENOMEM;
  }
  return 0;
}

static int list_get_next(struct ArrowArrayStream *s, struct ArrowArray *out) {
  myr__arrow_list *l = s->private_data;
  if (l->next < l->n) {
    *out = l->arrays[l->next];
    l->arrays[l->next].release = NULL;
    l->next++;
  } else {
    memset(out, 0, sizeof *out); /* end of stream: release == NULL */
  }
  return 0;
}

static const char *list_get_last_error(struct ArrowArrayStream *s) {
  myr__arrow_list *l = s->private_data;
  return l->error[0] ? l->error : NULL;
}

static void list_release(struct ArrowArrayStream *s) {
  if (!s || !s->release)
    return;
  myr__arrow_list_free(s->private_data);
  memset(s, 0, sizeof *s);
}

void myr__arrow_list_stream(myr__arrow_list *l, struct ArrowArrayStream *out) {
  out->get_schema = list_get_schema;
  out->get_next = list_get_next;
  out->get_last_error = list_get_last_error;
  out->release = list_release;
  out->private_data = l;
}
