"""Experiment trackers through accelerate's tracker integration (`log_with`, `init_trackers`, `log`): which
ones a run asked for (each checked to be installed), where each writes, and the config they record.

    tensorboard  event files in <run_dir>/tensorboard/<project>/
    wandb        the W&B project <project> (offline runs, WANDB_MODE=offline, in <run_dir>/wandb/)
    mlflow       the experiment <project> at MLflow's tracking URI (MLFLOW_TRACKING_URI; when unset, the
                 SQLite store <run_dir>/mlflow.db, artifacts in <run_dir>/mlflow-artifacts/)

Accelerate starts and logs the trackers on the main process only. Their packages are optional
(requirements-trackers.txt); accelerate imports them itself when a tracker starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from accelerate.utils import ProjectConfiguration, is_mlflow_available, is_tensorboard_available, is_wandb_available

from latentbridge.errors import UserError

TRACKERS = ("tensorboard", "wandb", "mlflow")
PIP_PACKAGES = {"tensorboard": "tensorboard==2.21.0", "wandb": "wandb==0.31.0",
                "mlflow": "mlflow-skinny==3.17.2 sqlalchemy==2.1.9 alembic==1.20.1"}
_INSTALLED = {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available, "mlflow": is_mlflow_available}


def resolve_trackers(report_to: str) -> list[str]:
    """The trackers `report_to` names (none | one of TRACKERS | all = every installed one); UserError naming
    the package to install when one asked for is missing."""
    if report_to == "none":
        return []
    if report_to == "all":
        found = [name for name in TRACKERS if _INSTALLED[name]()]
        if not found:
            raise UserError(f"report_to is all, but none of {', '.join(TRACKERS)} is installed: pip install -r "
                            "requirements-trackers.txt, or set --report-to none.")
        return found
    if report_to not in TRACKERS:
        raise ValueError(f"unknown tracker {report_to!r}; expected none, all or one of {TRACKERS}")
    if not _INSTALLED[report_to]():
        raise UserError(f"report_to is {report_to}, but its package is not installed: pip install "
                        f"{PIP_PACKAGES[report_to]} (or pip install -r requirements-trackers.txt), or set --report-to "
                        "none.")
    return [report_to]


def project_configuration(run_dir: Path) -> ProjectConfiguration:
    """Where accelerate's trackers with a logging folder write: TensorBoard under <run_dir>/tensorboard."""
    return ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "tensorboard"))


def hyperparameters(config: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config as every tracker takes hyperparameters: None written as "none" (TensorBoard's hparams
    take only numbers, strings and bools)."""
    return {k: "none" if v is None else v for k, v in config.items()}


def start_trackers(accelerator: Any, *, project: str, run_name: str, run_dir: Path,
                   config: Mapping[str, Any]) -> None:
    """init_trackers for the accelerator's trackers (no-op without), with the resolved config as hyperparameters."""
    if not accelerator.log_with:
        return
    if "mlflow" in [str(t) for t in accelerator.log_with]:
        _default_mlflow_store(run_dir)
    init_kwargs = {"wandb": {"name": run_name, "dir": str(run_dir)},
                   "mlflow": {"run_name": run_name, "logging_dir": str((run_dir / "mlflow-artifacts").resolve())}}
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator.init_trackers(project, config=hyperparameters(config), init_kwargs=init_kwargs)


def _default_mlflow_store(run_dir: Path) -> None:
    """MLflow's default store is ./mlflow.db of the working folder; keep a run's store in its run folder instead,
    unless MLFLOW_TRACKING_URI names one."""
    import mlflow  # optional (requirements-trackers.txt): present here, resolve_trackers checked it
    from mlflow.environment_variables import MLFLOW_TRACKING_URI

    if not MLFLOW_TRACKING_URI.is_set():
        run_dir.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(f"sqlite:///{(run_dir / 'mlflow.db').resolve()}")
