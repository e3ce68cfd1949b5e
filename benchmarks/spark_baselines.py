"""The two baselines of the batch scoring benchmark that run on Spark without amlpkg:
a naive per-row pandas UDF, and ``mapInArrow`` with no model (Spark's row path alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def per_row_udf(df: Any, path: Path, name: str, columns: list[str], shape: tuple[int, ...]) -> Any:
    """The naive baseline: a pandas UDF calling ORT once per row.

    Defined inside this function so Spark pickles it by value (executors cannot import
    ``benchmarks``); the session is made once per task.
    """
    import pandas as pd
    from pyspark.sql.functions import array, pandas_udf

    model = Path(path).read_bytes()

    def first_value(rows: pd.Series) -> pd.Series:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        session = onnxruntime.InferenceSession(model, options)
        out = []
        for row in rows:
            values = np.frombuffer(row, np.float32) if isinstance(row, bytes) else row
            feed = np.asarray(values, dtype=np.float32).reshape(1, *shape)
            out.append(float(np.asarray(session.run(None, {name: feed})[0]).reshape(-1)[0]))
        return pd.Series(out)

    # Real types, not this module's postponed strings: pandas_udf reads them to pick the kind.
    first_value.__annotations__ = {"rows": pd.Series, "return": pd.Series}
    udf = pandas_udf(first_value, "double")
    packed = columns[0] if len(columns) == 1 else array(*columns)
    return df.select(udf(packed).alias("first"))


def transport_only(df: Any) -> Any:
    """mapInArrow with no model, passing only the ids back: what Spark's data path costs."""

    def ids(batches: Any) -> Any:
        for batch in batches:
            yield batch.select(["id"])

    return df.mapInArrow(ids, "id long")
