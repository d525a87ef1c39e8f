# SPDX-License-Identifier: Apache-2.0
"""myriad: train, store and serve one machine-learning model per key.

The same C core as the ``myriad`` command line, on any Arrow data::

    import myriad, pandas as pd
    df = pd.read_parquet("sales.parquet")
    results = myriad.train(df, keys=["store", "item"], label="units", model="forest",
                           params={"n_trees": 50}, store="models.db")
    preds = myriad.predict(new_rows, store="models.db")

``data`` is anything that exports an Arrow C stream (``__arrow_c_stream__``): a pyarrow
Table or RecordBatchReader, a pandas DataFrame (pandas >= 2.2), a polars DataFrame ...;
or the path of a CSV or Arrow IPC file. The work runs in C without the GIL, on
``threads`` cores (0: all of them); Ctrl-C stops it cleanly with KeyboardInterrupt.
Errors raise :class:`MyriadError` with the library's message (naming the column, row or
key at fault).
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, Sequence, Union

import pyarrow as pa

from ._core import MyriadError, version as _core_version
from . import _core

__all__ = ["train", "train_store", "predict", "import_models", "summary", "MyriadError",
           "__version__"]
__version__: str = _core_version

PathLike = Union[str, "os.PathLike[str]"]

_SUMMARY_KEY = b"myriad.summary"


def _source(data: Any, what: str):
    """(capsule, path, name) for data: an Arrow C stream exporter or a path."""
    if isinstance(data, (str, os.PathLike)):
        return None, os.fspath(data), None
    export = getattr(data, "__arrow_c_stream__", None)
    if export is None:
        # Older pandas and other table-likes: go through pyarrow.
        try:
            data = pa.table(data)
        except Exception as exc:  # noqa: BLE001 - say what was expected
            raise TypeError(
                f"{what}: expected a path, or an object with __arrow_c_stream__ (pyarrow "
                f"Table or RecordBatchReader, pandas or polars DataFrame); got "
                f"{type(data).__name__}") from exc
        export = data.__arrow_c_stream__
    return export(), None, type(data).__name__


def _params(params: Optional[Union[str, Mapping[str, Any]]]) -> Optional[str]:
    if params is None or isinstance(params, str):
        return params
    parts = []
    for k, v in params.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        parts.append(f"{k}={v}")
    return ",".join(parts) or None


def _table(capsule, summary_json: str) -> pa.Table:
    reader = pa.RecordBatchReader._import_from_c_capsule(capsule)
    table = reader.read_all()
    meta = dict(table.schema.metadata or {})
    meta[_SUMMARY_KEY] = summary_json.encode()
    return table.replace_schema_metadata(meta)


def summary(table: pa.Table) -> dict:
    """The run summary (row and group counts, skip reasons, timings) of a table returned
    by :func:`train` or :func:`predict`, from its schema metadata."""
    meta = table.schema.metadata or {}
    if _SUMMARY_KEY not in meta:
        raise ValueError("this table was not returned by myriad.train or myriad.predict")
    return json.loads(meta[_SUMMARY_KEY])


def train(data: Any,
          keys: Union[str, Sequence[str]],
          label: Optional[str] = None,
          features: Optional[Sequence[str]] = None,
          model: str = "linear",
          params: Optional[Union[str, Mapping[str, Any]]] = None,
          store: Optional[PathLike] = None,
          threads: int = 0,
          seed: int = 0,
          holdout: float = 0.0,
          min_rows: int = 0) -> pa.Table:
    """Train one model per distinct key.

    Args:
        data: rows to train on: an object with ``__arrow_c_stream__`` (pyarrow Table or
            RecordBatchReader, pandas DataFrame, polars DataFrame) or a path to a CSV or
            Arrow IPC file (detected by its first bytes).
        keys: the key column(s); one model per distinct combination.
        label: the column to predict.
        features: feature columns; default every numeric column that is neither a key nor
            the label.
        model: the model family: "linear" (ridge regression) or "forest" (random forest),
            or one loaded from a plugin.
        params: family parameters, as a dict ({"n_trees": 50}) or "k=v,k=v".
        store: a SQLite store to write the models to (created if needed) and publish them
            in; None keeps them only in the returned table.
        threads: worker threads; 0 = one per core.
        seed: run seed; every key's seed derives from it and the key, so models do not
            depend on the thread count, the input format or the engine.
        holdout: fraction of each key's rows held out to compute its metrics.
        min_rows: keys with fewer rows fail (0: the family's minimum).

    Returns:
        A pyarrow Table with one row per key: the key columns, ``model`` (the model blob,
        binary; null if the key failed), ``n_rows``, ``metrics`` (JSON), ``status``
        ("trained" or why not), ``error`` and ``features``. :func:`summary` gives the
        run's counts (rows used and skipped by reason, keys trained and failed).

    Raises:
        MyriadError: bad options, unreadable or unusable data, a store failure.
        KeyboardInterrupt: the run was interrupted (nothing is published).
    """
    if isinstance(keys, str):
        keys = [keys]
    capsule, path, name = _source(data, "data")
    results, js = _core.train(
        capsule, path, list(keys), label, None if features is None else list(features),
        model, _params(params), None if store is None else os.fspath(store),
        int(threads), int(seed), float(holdout), int(min_rows), name, True)
    return _table(results, js)


def _size(v: Union[int, str, None]) -> int:
    """Bytes from an int or a size such as "512M", "4G" (powers of 1024)."""
    if v is None:
        return 0
    if isinstance(v, int):
        if v < 0:
            raise ValueError("memory_limit must be >= 0")
        return v
    text = str(v).strip().upper().removesuffix("IB").removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    mult = units.get(text[-1:], 1)
    try:
        n = float(text[:-1] if mult > 1 else text)
    except ValueError:
        raise ValueError(f"memory_limit: expected bytes or a size such as 4G, got {v!r}") \
            from None
    if n < 0:
        raise ValueError("memory_limit must be >= 0")
    return int(n * mult)


def train_store(data: Any,
                store: PathLike,
                keys: Union[str, Sequence[str]],
                label: Optional[str] = None,
                features: Optional[Sequence[str]] = None,
                model: str = "linear",
                params: Optional[Union[str, Mapping[str, Any]]] = None,
                threads: int = 0,
                seed: int = 0,
                holdout: float = 0.0,
                min_rows: int = 0,
                resume: bool = False,
                memory_limit: Union[int, str, None] = None,
                spill_dir: Optional[PathLike] = None) -> dict:
    """Train one model per key into a store only, at any scale: like :func:`train`, but
    no table of models is built in memory, which allows what that table would not:

    Args:
        resume: complete this spec's earlier run that never published (killed, crashed,
            interrupted): keys it stored are not trained again (``myriad train
            --resume``).
        memory_limit: bytes (or "4G") the rows may take; past half of it they are spilled
            by key to a compressed temporary file and trained a few partitions at a
            time, with the same models (``myriad train --memory-limit``;
            docs/internals/memory.md).
        spill_dir: where that file goes (default: $TMPDIR, else /tmp).
        The other arguments are :func:`train`'s.

    Returns:
        The run summary (as ``myriad train --json`` prints it).
    """
    if isinstance(keys, str):
        keys = [keys]
    capsule, path, name = _source(data, "data")
    _, js = _core.train(
        capsule, path, list(keys), label, None if features is None else list(features),
        model, _params(params), os.fspath(store), int(threads), int(seed), float(holdout),
        int(min_rows), name, False, bool(resume), _size(memory_limit),
        None if spill_dir is None else os.fspath(spill_dir))
    return json.loads(js)


def predict(data: Any,
            store: Optional[PathLike] = None,
            models: Any = None,
            threads: int = 0) -> pa.Table:
    """Score every row with its key's model.

    Args:
        data: the rows (as for :func:`train`), with the key columns and the models'
            features.
        store: a store written by :func:`train` or ``myriad train``: each key's current
            model is used.
        models: instead of a store, a table of models such as :func:`train` returns (key
            columns and a ``model`` column), or anything with ``__arrow_c_stream__``.
        threads: worker threads; 0 = one per core.

    Returns:
        A pyarrow Table with one row per input row, in input order: the key columns,
        ``row`` (1-based input row), ``prediction`` (null when the row has none),
        ``probabilities`` for classifiers, and ``reason`` (why there is no prediction:
        no_model, missing_feature ...).

    Raises:
        MyriadError: bad options, unreadable data, store or models.
    """
    if (store is None) == (models is None):
        raise ValueError("predict needs exactly one of store= and models=")
    capsule, path, name = _source(data, "data")
    mcap = None
    if models is not None:
        mcap, mpath, _ = _source(models, "models")
        if mcap is None:
            raise TypeError("models: expected a table (such as myriad.train's result), "
                            "not a path; use store= for a store")
    preds, js = _core.predict(capsule, path,
                              None if store is None else os.fspath(store), mcap, None,
                              int(threads), name)
    return _table(preds, js)


def import_models(models: Any, store: PathLike, source: str = "import",
                  seed: int = 0) -> dict:
    """Store a table of models as one new published run of ``store``.

    Args:
        models: a table of one row per key, such as :func:`train` or
            :func:`myriad.spark.train` return (key columns, ``model``, ``features``,
            ``n_rows``, ``metrics``, ``status``, ``error``): anything with
            ``__arrow_c_stream__``. Every model must be of one family and one feature
            list; rows without a model become the run's errors.
        store: the store (created if needed). Every model becomes its key's current
            version, as if ``myriad train`` had trained it there.
        source: recorded as the run's input, e.g. "spark".
        seed: the seed the models were trained with (recorded in the run's spec).

    Returns:
        ``{"run_id": ..., "models": ..., "errors": ..., "family": ...}``.

    Raises:
        MyriadError: a corrupt blob, mixed families or features, a store failure (the
            message names the row and key); nothing is published then.
    """
    capsule, path, _ = _source(models, "models")
    if capsule is None:
        raise TypeError("models: expected a table (pyarrow, pandas, polars ...), not a path")
    return _core.import_models(capsule, os.fspath(store), source, int(seed))
