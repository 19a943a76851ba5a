"""One process of a distributed k-fold grid search, for `test_tuning_distributed.py`.

    KERASTUNER_TUNER_ID=chief|worker<i> KERASTUNER_ORACLE_IP=127.0.0.1 \\
    KERASTUNER_ORACLE_PORT=<port> python tests/distributed_search.py DIR WORKERS

Every process runs the same search on the same data, as KerasTuner's
distributed mode expects. A worker appends one JSON line per trial it ran to
`DIR/<tuner id>.jsonl` and waits for all `WORKERS` workers to be ready before
asking for trials, so that the work is shared. The chief serves the trials,
then prints its oracle's trials and best trial as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_tuner  # noqa: E402

from hw1_keras.regression.data import generate  # noqa: E402
from hw1_keras.regression.model import RegressionHyperModel  # noqa: E402
from tuning.kfold import KFoldGridSearch  # noqa: E402

FOLDS = 2
EPOCHS = 2
READY_TIMEOUT = 120


class LoggedSearch(KFoldGridSearch):
    """Records the trials this process ran."""

    log: Path

    def run_trial(self, trial, *args, **kwargs):
        metrics = super().run_trial(trial, *args, **kwargs)
        with open(self.log, "a") as handle:
            handle.write(json.dumps({"trial_id": trial.trial_id, "tuner": self.tuner_id,
                                     "values": trial.hyperparameters.values,
                                     "metrics": metrics}) + "\n")
        return metrics


def space() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Choice("learning_rate", [1e-3, 3e-3])
    hp.Choice("batch_size", [25, 50])
    hp.Fixed("epochs", EPOCHS)
    return hp


def wait_for_workers(folder: Path, tuner_id: str, workers: int) -> None:
    (folder / f"ready-{tuner_id}").touch()
    deadline = time.monotonic() + READY_TIMEOUT
    while len(list(folder.glob("ready-*"))) < workers:
        if time.monotonic() > deadline:
            sys.exit(f"{tuner_id}: the other workers never got ready")
        time.sleep(0.1)


def main(folder: str, workers: str) -> None:
    folder = Path(folder)
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    train, _ = generate(2020)
    tuner = LoggedSearch(
        RegressionHyperModel(epochs=EPOCHS, log_every=EPOCHS, jit_compile=False),
        objective=keras_tuner.Objective("val_mse", "min"), hyperparameters=space(),
        tune_new_entries=False, folds=FOLDS, fold_seed=0,
        directory=str(folder / tuner_id), project_name="search",
    )
    tuner.log = folder / f"{tuner_id}.jsonl"
    if "chief" not in tuner_id:
        wait_for_workers(folder, tuner_id, int(workers))
    tuner.search(train.x, train.y)
    if "chief" in tuner_id:
        best = tuner.oracle.get_best_trials(1)[0]
        print(json.dumps({
            "trials": {trial_id: {"status": trial.status, "score": trial.score}
                       for trial_id, trial in tuner.oracle.trials.items()},
            "best": {"trial_id": best.trial_id, "score": best.score,
                     "values": best.hyperparameters.values},
        }), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
