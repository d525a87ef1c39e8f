/* SPDX-License-Identifier: Apache-2.0 */
/*
 * myriad._core: the CPython face of libmyriad. Two functions, train() and predict(),
 * each a thin shell around myr_train() / myr_predict():
 *
 * - Data comes in as an Arrow C stream PyCapsule ("arrow_array_stream", from any object's
 *   __arrow_c_stream__) or as a path. The stream is moved out of the capsule (its release
 *   set to NULL, so the capsule's own destructor does nothing) and handed to the library,
 *   which releases it.
 * - Results and predictions go out the same way: a new capsule owning an ArrowArrayStream,
 *   which pyarrow imports (moving it) and whose destructor releases what nobody took.
 * - The GIL is released while the library works. The library's progress callback (about
 *   every 100 ms, on the calling thread) takes the GIL back briefly to run Python's signal
 *   handlers: when one raises (Ctrl-C: KeyboardInterrupt), the run is cancelled, and that
 *   exception is what the caller sees once the library has stopped cleanly.
 * - Library errors raise myriad.MyriadError(message) with .code and .status set.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "myriad/myriad.h"

#define STREAM_CAPSULE "arrow_array_stream"
#define MAX_KEYS 16
#define MAX_FEATURES 4096

static PyObject *MyriadError; /* myriad._core.MyriadError, re-exported by myriad */

/* ------------------------------------------------------------------ helpers */

/* Raise MyriadError for a failed call (code and message from err). */
static PyObject *raise_error(const myr_error *err, int rc) {
  const char *msg = err->message[0] ? err->message : myr_status_name(rc);
  PyObject *exc = PyObject_CallFunction(MyriadError, "s", msg);
  if (!exc)
    return NULL;
  PyObject *code = PyLong_FromLong(rc);
  PyObject *status = PyUnicode_FromString(myr_status_name(rc));
  if (code && status && PyObject_SetAttrString(exc, "code", code) == 0 &&
      PyObject_SetAttrString(exc, "status", status) == 0)
    PyErr_SetObject(MyriadError, exc);
  Py_XDECREF(code);
  Py_XDECREF(status);
  Py_DECREF(exc);
  return NULL;
}

/* Move the stream out of an "arrow_array_stream" capsule into *out. */
static int take_stream(PyObject *capsule, struct ArrowArrayStream *out, const char *what) {
  if (!PyCapsule_IsValid(capsule, STREAM_CAPSULE)) {
    PyErr_Format(PyExc_TypeError,
                 "%s: expected an Arrow C stream capsule ('arrow_array_stream')", what);
    return -1;
  }
  struct ArrowArrayStream *s = PyCapsule_GetPointer(capsule, STREAM_CAPSULE);
  if (!s)
    return -1;
  if (!s->release) {
    PyErr_Format(PyExc_ValueError, "%s: the Arrow stream was already consumed", what);
    return -1;
  }
  *out = *s;
  s->release = NULL; /* moved: the producer's capsule destructor now does nothing */
  return 0;
}

static void stream_capsule_free(PyObject *capsule) {
  struct ArrowArrayStream *s = PyCapsule_GetPointer(capsule, STREAM_CAPSULE);
  if (!s) {
    PyErr_Clear();
    return;
  }
  if (s->release)
    s->release(s);
  PyMem_RawFree(s);
}

/* A capsule that owns *s (moved), for pyarrow to import. */
static PyObject *give_stream(struct ArrowArrayStream *s) {
  struct ArrowArrayStream *p = PyMem_RawMalloc(sizeof *p);
  if (!p) {
    if (s->release)
      s->release(s);
    return PyErr_NoMemory();
  }
  *p = *s;
  s->release = NULL;
  PyObject *cap = PyCapsule_New(p, STREAM_CAPSULE, stream_capsule_free);
  if (!cap) {
    if (p->release)
      p->release(p);
    PyMem_RawFree(p);
  }
  return cap;
}

/* A sequence of str as a NULL-free array of UTF-8 pointers borrowed from the objects,
   which stay referenced by *keep (a tuple) until the caller drops it. */
static int str_list(PyObject *seq, const char *what, size_t max, const char **out,
                    size_t *n_out, PyObject **keep) {
  *n_out = 0;
  *keep = NULL;
  if (seq == Py_None)
    return 0;
  if (PyUnicode_Check(seq)) {
    PyErr_Format(PyExc_TypeError, "%s: expected a list of column names, got a str", what);
    return -1;
  }
  PyObject *t = PySequence_Tuple(seq);
  if (!t)
    return -1;
  Py_ssize_t n = PyTuple_GET_SIZE(t);
  if ((size_t)n > max) {
    Py_DECREF(t);
    PyErr_Format(PyExc_ValueError, "%s: %zd names, at most %zu", what, n, max);
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *o = PyTuple_GET_ITEM(t, i);
    if (!PyUnicode_Check(o)) {
      Py_DECREF(t);
      PyErr_Format(PyExc_TypeError, "%s: item %zd is not a str", what, i);
      return -1;
    }
    out[i] = PyUnicode_AsUTF8(o);
    if (!out[i]) {
      Py_DECREF(t);
      return -1;
    }
  }
  *n_out = (size_t)n;
  *keep = t;
  return 0;
}

/* Collects the library's JSON summary. */
typedef struct jbuf {
  char *p;
  size_t n, cap;
} jbuf;

static int jbuf_write(void *ud, const char *bytes, size_t len) {
  jbuf *b = ud;
  if (b->n + len + 1 > b->cap) {
    size_t cap = (b->cap ? b->cap * 2 : 4096) + len;
    char *np = PyMem_RawRealloc(b->p, cap);
    if (!np)
      return MYR_ENOMEM;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, bytes, len);
  b->n += len;
  b->p[b->n] = '\0';
  return MYR_OK;
}

/* Cancellation on signals: the progress callback runs Python's signal handlers. */
typedef struct watch {
  volatile int cancel;
  PyObject *exc_type, *exc_value, *exc_tb; /* what a handler raised */
} watch;

static void on_progress(void *ud, const myr_progress *p) {
  (void)p;
  watch *w = ud;
  if (w->cancel)
    return;
  PyGILState_STATE st = PyGILState_Ensure();
  if (PyErr_CheckSignals() < 0) {
    PyErr_Fetch(&w->exc_type, &w->exc_value, &w->exc_tb);
    w->cancel = 1;
  }
  PyGILState_Release(st);
}

/* After the call: re-raise what a signal handler raised; 1 when there was one. */
static int reraise(watch *w) {
  if (!w->exc_type)
    return 0;
  PyErr_Restore(w->exc_type, w->exc_value, w->exc_tb);
  w->exc_type = w->exc_value = w->exc_tb = NULL;
  return 1;
}

static PyObject *finish(int rc, myr_error *err, watch *w, jbuf *js,
                        struct ArrowArrayStream *out) {
  PyObject *res = NULL;
  if (reraise(w)) {
    if (out->release)
      out->release(out);
  } else if (rc != MYR_OK) {
    if (out->release)
      out->release(out);
    raise_error(err, rc);
  } else {
    PyObject *cap = Py_None;
    Py_INCREF(cap);
    if (out->release) {
      Py_DECREF(cap);
      cap = give_stream(out);
    }
    if (cap) {
      res = Py_BuildValue("(Ns#)", cap, js->p ? js->p : "{}", (Py_ssize_t)js->n);
    }
  }
  PyMem_RawFree(js->p);
  return res;
}

/* ------------------------------------------------------------------ train */

PyDoc_STRVAR(train_doc,
             "train(source, path, keys, label, features, model, params, store, threads, "
             "seed, holdout, min_rows, name, results, resume=False, memory_limit=0, "
             "spill_dir=None)\n--\n\n"
             "Low-level: use myriad.train(). source is an Arrow C stream capsule or None "
             "(then path is read).\nReturns (results capsule or None, summary JSON str).");

static PyObject *py_train(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"source", "path",    "keys",     "label", "features",
                           "model",  "params",  "store",    "threads", "seed",
                           "holdout", "min_rows", "name",   "results", "resume",
                           "memory_limit", "spill_dir", NULL};
  PyObject *source, *keys_o, *features_o;
  const char *path = NULL, *label = NULL, *model = NULL, *params = NULL, *store = NULL;
  const char *name = NULL;
  unsigned int threads = 0;
  unsigned long long seed = 0;
  double holdout = 0;
  Py_ssize_t min_rows = 0;
  int want_results = 1, resume = 0;
  unsigned long long memory_limit = 0;
  const char *spill_dir = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OzOzOzzzIKdnzp|pKz", kwlist, &source, &path,
                                   &keys_o, &label, &features_o, &model, &params, &store,
                                   &threads, &seed, &holdout, &min_rows, &name,
                                   &want_results, &resume, &memory_limit, &spill_dir))
    return NULL;
  if (min_rows < 0)
    return PyErr_Format(PyExc_ValueError, "min_rows must be >= 0");
  const char *keys[MAX_KEYS];
  const char **features = NULL;
  size_t n_keys, n_features;
  PyObject *keep_k = NULL, *keep_f = NULL;
  if (str_list(keys_o, "keys", MAX_KEYS, keys, &n_keys, &keep_k) < 0)
    return NULL;
  if (features_o != Py_None) {
    features = PyMem_RawMalloc(MAX_FEATURES * sizeof *features);
    if (!features) {
      Py_XDECREF(keep_k);
      return PyErr_NoMemory();
    }
    if (str_list(features_o, "features", MAX_FEATURES, features, &n_features,
                 &keep_f) < 0) {
      PyMem_RawFree(features);
      Py_XDECREF(keep_k);
      return NULL;
    }
  }
  struct ArrowArrayStream in = {0}, out = {0};
  if (source != Py_None && take_stream(source, &in, "data") < 0) {
    PyMem_RawFree(features);
    Py_XDECREF(keep_k);
    Py_XDECREF(keep_f);
    return NULL;
  }
  watch w = {0};
  jbuf js = {0};
  myr_train_options o;
  memset(&o, 0, sizeof o);
  o.input = source != Py_None ? (name ? name : "data") : path;
  o.stream = source != Py_None ? &in : NULL;
  o.keys = keys;
  o.n_keys = n_keys;
  o.features = features;
  o.n_features = features ? n_features : 0;
  o.label = label;
  o.model = model;
  o.params = params;
  o.n_threads = threads;
  o.seed = seed;
  o.holdout = holdout;
  o.min_rows = (size_t)min_rows;
  o.store = store;
  o.progress = on_progress;
  o.progress_ud = &w;
  o.cancel = &w.cancel;
  o.results = want_results ? &out : NULL;
  o.resume = resume;
  o.memory_limit = memory_limit;
  o.spill_dir = spill_dir;
  myr_train_summary sum;
  myr_error err = {0};
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = myr_train(&o, &sum, &err);
  if (rc == MYR_OK) {
    myr_error jerr = {0};
    myr_train_summary_json(&sum, jbuf_write, &js, &jerr);
  }
  Py_END_ALLOW_THREADS
  if (in.release) /* the library moves it; defensive */
    in.release(&in);
  PyMem_RawFree(features);
  Py_XDECREF(keep_k);
  Py_XDECREF(keep_f);
  return finish(rc, &err, &w, &js, &out);
}

/* ------------------------------------------------------------------ predict */

PyDoc_STRVAR(predict_doc,
             "predict(source, path, store, models, out, threads, name)\n--\n\n"
             "Low-level: use myriad.predict(). Returns (predictions capsule or None, "
             "summary JSON str).");

static PyObject *py_predict(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"source", "path", "store", "models", "out",
                           "threads", "name", NULL};
  PyObject *source, *models;
  const char *path = NULL, *store = NULL, *outp = NULL, *name = NULL;
  unsigned int threads = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OzzOzIz", kwlist, &source, &path, &store,
                                   &models, &outp, &threads, &name))
    return NULL;
  struct ArrowArrayStream in = {0}, mod = {0}, out = {0};
  if (source != Py_None && take_stream(source, &in, "data") < 0)
    return NULL;
  if (models != Py_None && take_stream(models, &mod, "models") < 0) {
    if (in.release)
      in.release(&in);
    return NULL;
  }
  watch w = {0};
  jbuf js = {0};
  myr_predict_options o;
  memset(&o, 0, sizeof o);
  o.input = source != Py_None ? (name ? name : "data") : path;
  o.stream = source != Py_None ? &in : NULL;
  o.store = store;
  o.models = models != Py_None ? &mod : NULL;
  o.out = outp;
  o.n_threads = threads;
  o.progress = on_progress;
  o.progress_ud = &w;
  o.cancel = &w.cancel;
  o.predictions = &out;
  myr_predict_summary sum;
  myr_error err = {0};
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = myr_predict(&o, &sum, &err);
  if (rc == MYR_OK) {
    myr_error jerr = {0};
    myr_predict_summary_json(&sum, jbuf_write, &js, &jerr);
  }
  Py_END_ALLOW_THREADS
  if (in.release)
    in.release(&in);
  if (mod.release)
    mod.release(&mod);
  return finish(rc, &err, &w, &js, &out);
}

PyDoc_STRVAR(import_doc, "import_models(source, store, origin, seed) -> dict as JSON str\n"
                        "Store a models table (capsule) as one published run.");

static PyObject *py_import_models(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"source", "store", "origin", "seed", NULL};
  PyObject *source;
  const char *store = NULL, *origin = NULL;
  unsigned long long seed = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OszK", kwlist, &source, &store, &origin,
                                   &seed))
    return NULL;
  struct ArrowArrayStream in = {0};
  if (take_stream(source, &in, "models") < 0)
    return NULL;
  myr_import_options o;
  memset(&o, 0, sizeof o);
  o.store = store;
  o.models = &in;
  o.source = origin;
  o.seed = seed;
  myr_import_summary sum;
  myr_error err = {0};
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = myr_store_import(&o, &sum, &err);
  Py_END_ALLOW_THREADS
  if (in.release)
    in.release(&in);
  if (rc != MYR_OK)
    return raise_error(&err, rc);
  return Py_BuildValue("{s:L,s:K,s:K,s:s}", "run_id", (long long)sum.run_id, "models",
                       (unsigned long long)sum.models, "errors",
                       (unsigned long long)sum.errors, "family", sum.family);
}

/* ------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"train", (PyCFunction)(void (*)(void))py_train, METH_VARARGS | METH_KEYWORDS,
     train_doc},
    {"predict", (PyCFunction)(void (*)(void))py_predict, METH_VARARGS | METH_KEYWORDS,
     predict_doc},
    {"import_models", (PyCFunction)(void (*)(void))py_import_models,
     METH_VARARGS | METH_KEYWORDS, import_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "myriad._core",
    "libmyriad bindings; use the functions of the myriad package.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void) {
  PyObject *m = PyModule_Create(&module);
  if (!m)
    return NULL;
  MyriadError = PyErr_NewExceptionWithDoc(
      "myriad.MyriadError",
      "A myriad error: the message names the file, row, column or key at fault; .code is "
      "the library's status code (negative) and .status its name (\"MYR_EINVAL\").",
      PyExc_RuntimeError, NULL);
  if (!MyriadError || PyModule_AddObject(m, "MyriadError", MyriadError) < 0) {
    Py_XDECREF(MyriadError);
    Py_DECREF(m);
    return NULL;
  }
  Py_INCREF(MyriadError);
  if (PyModule_AddStringConstant(m, "version", MYR_VERSION_STRING) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
