"""A training script tracked by amlpkg.

Run it as a tracked run (code, environment and logs are recorded)::

    amlpkg run --experiment iris -- python examples/train_iris.py --C 0.5

or on its own (it starts and ends its own run). Then::

    amlpkg runs list
    amlpkg models register iris runs:/<run_id>/model/iris.onnx --run <run_id>
"""

from __future__ import annotations

import argparse

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score, train_test_split

import amlpkg
from amlpkg.trainer import export_onnx


def main() -> None:
    """Train, log params and metrics per fold, export to ONNX with the parity check."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--max-iter", type=int, default=1000)
    args = parser.parse_args()
    amlpkg.log_params({"C": args.C, "max_iter": args.max_iter})

    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    model = LogisticRegression(C=args.C, max_iter=args.max_iter)
    for fold, score in enumerate(cross_val_score(model, x_train, y_train, cv=5)):
        amlpkg.log_metric("cv_accuracy", float(score), step=fold)
    model.fit(x_train, y_train)
    amlpkg.log_metric("test_accuracy", float(model.score(x_test, y_test)))

    result = export_onnx(model, x_test, name="iris")
    print(f"exported {result.uri}: {result.parity.summary()}")


if __name__ == "__main__":
    main()
