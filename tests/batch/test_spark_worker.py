"""What a Spark Python worker does once: leave its imports out of PySpark's per-task GC."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_a_worker_freezes_what_it_holds_once_and_later_objects_stay_collectable() -> None:
    # A fresh process: freezing is for the process's lifetime (a Python worker's).
    script = textwrap.dedent(
        """
        import gc, weakref
        import onnxruntime, pyarrow.parquet
        from amlpkg.spark.session import settle_worker

        class Cycle:
            pass

        garbage = Cycle(); garbage.me = garbage; ref = weakref.ref(garbage); del garbage
        settle_worker()
        frozen = gc.get_freeze_count()
        later = [Cycle() for _ in range(1000)]
        settle_worker()  # a later task: nothing more is frozen
        print(frozen, gc.get_freeze_count() - frozen, ref() is None)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    frozen, more, collected = done.stdout.split()
    assert int(frozen) > 10_000  # the modules' objects: PySpark's gc.collect() skips them
    assert int(more) == 0
    assert collected == "True"  # a cycle left before the freeze was collected, not kept
