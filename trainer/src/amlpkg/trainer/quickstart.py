"""The main job on the embedded workspace, as a library function.

Trains a small scikit-learn classifier on the iris data shipped with
scikit-learn (no download) as a tracked run (params, per-fold cross-validation
metrics with steps, test metrics), exports it to ONNX with the parity check,
registers it, points the ``production`` alias at it and returns its lineage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlpkg.trainer import tracking
from amlpkg.trainer.export import ExportResult, export_onnx
from amlpkg.trainer.lineage_view import lineage
from amlpkg.trainer.registry import ModelVersion, register, set_alias

EXPERIMENT = "quickstart"
MODEL_NAME = "iris-classifier"
ALIAS = "production"


@dataclass(frozen=True)
class QuickstartResult:
    """What the quickstart made."""

    run_id: str
    home: Path
    export: ExportResult
    model_version: ModelVersion
    lineage: dict[str, Any]


def _quiet(message: str) -> None:
    """Default progress callback: say nothing."""


def run_quickstart(
    home: str | Path | None = None,
    *,
    model_name: str = MODEL_NAME,
    folds: int = 5,
    on_step: Callable[[str], None] = _quiet,
) -> QuickstartResult:
    """Train, track, export, register and alias a model; ``on_step`` gets one line per step."""
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = {"model": "StandardScaler+LogisticRegression", "C": 1.0, "max_iter": 1000}
    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )

    def make() -> Any:
        return make_pipeline(
            StandardScaler(), LogisticRegression(C=params["C"], max_iter=params["max_iter"])
        )

    from amlpkg.settings import load_settings

    # The quickstart shows the embedded default: a server the user logged in to is not used.
    run = tracking.start_run(EXPERIMENT, run_name="iris-logreg", home=load_settings(home).home)
    assert isinstance(run, tracking.Run)
    on_step(f"started run {run.id} in {run.home}")
    try:
        run.log_params({**params, "dataset": "iris", "test_size": 0.3, "cv_folds": folds})
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
        scores = []
        for step, (fit_idx, val_idx) in enumerate(splitter.split(x_train, y_train)):
            fold_model = make().fit(x_train[fit_idx], y_train[fit_idx])
            score = float(accuracy_score(y_train[val_idx], fold_model.predict(x_train[val_idx])))
            scores.append(score)
            run.log_metrics({"cv_accuracy": score}, step=step)
        on_step(f"cross-validated {folds} folds: mean accuracy {np.mean(scores):.3f}")
        model = make().fit(x_train, y_train)
        predicted = model.predict(x_test)
        accuracy = float(accuracy_score(y_test, predicted))
        run.log_metrics(
            {
                "test_accuracy": accuracy,
                "test_f1_macro": float(f1_score(y_test, predicted, average="macro")),
                "cv_accuracy_mean": float(np.mean(scores)),
            }
        )
        on_step(f"trained on {len(x_train)} rows: test accuracy {accuracy:.3f}")
        exported = export_onnx(model, x_test, name="model")
        on_step(f"exported ONNX (opset {exported.opset}), parity ok: {exported.parity.summary()}")
        version = register(
            model_name,
            exported.uri or str(exported.path),
            tags={"dataset": "iris", "framework": "scikit-learn"},
            description="Iris classifier trained by amlpkg quickstart",
            workspace=run.workspace,
        )
        on_step(f"registered {version.ref} (sha256 {version.sha256[:12]}, {version.size} bytes)")
        version = set_alias(model_name, version.version, ALIAS, workspace=run.workspace)
        on_step(f"alias {model_name}@{ALIAS} -> version {version.version}")
        home_path = run.home
        run_id = run.id
    except BaseException:
        tracking.end_run("failed")
        raise
    tracking.end_run("completed")
    # After the run ended, so the lineage shows its final status.
    chain = lineage(version.ref, home=home_path)
    return QuickstartResult(run_id, home_path, exported, version, chain)
