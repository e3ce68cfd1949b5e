"""Batch scoring with ONNX Runtime, engine-independent.

* :mod:`amlpkg.batch.plan`: how a table's columns map to a model's inputs and outputs;
* :mod:`amlpkg.batch.kernel`: the batch function (Arrow batch in, batch plus outputs out)
  and the per-process session cache, shared by every engine;
* :mod:`amlpkg.batch.local`: the local engine over Parquet/CSV files;
* :mod:`amlpkg.batch.lineage`: the ``scored`` edges of the lineage chain.

The Spark engine is :mod:`amlpkg.spark` (extra ``amlpkg-batch[spark]``).
"""
