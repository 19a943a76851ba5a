"""What a killed training resumes from: the best weights, Keras' backup and the log, safely.

They survive a `kill -9` at any instant: `BestCheckpoint` renames whole files
into place, `ResumingBackup` falls back to Keras' previous backup when the
newest is torn, and `read_log` drops a log row the kill cut short. `WorkerBackupAndRestore` is the backup of a multi-worker
run's other workers. Why they are needed and what resuming restores:
docs/resume.md.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import h5py
import keras

from hw1_keras import compat
from hw1_keras.errors import InputError
from hw1_keras.runs import write_json, write_text

# The HDF5 attribute of a best checkpoint that says which epoch it holds.
NOTE_ATTRIBUTE = "hw1_keras_best"


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the highest `monitor`, safely across kills.

    Unlike `keras.callbacks.ModelCheckpoint`, which writes the file in place,
    the weights go to a scratch file that is renamed over the checkpoint, so a
    `kill -9` mid-save leaves the previous checkpoint whole. The file also
    says which epoch it holds (1-based `epoch` and the `monitor` value, an
    attribute of the HDF5 file that Keras' loader ignores), so weights and
    note land in one rename and cannot disagree. A resumed run starts from
    that value, so an epoch repeated after a kill competes with the weights
    actually on disk, not with a logged value whose weights may never have
    been saved. A copy of the note sits beside it (`<name>.json`) for people.

    Args:
        path: The checkpoint, a `.weights.h5` file.
        monitor: The logged metric to maximize, e.g. `val_accuracy`.
        resume: Compete with the checkpoint already on disk; otherwise the
            first epoch replaces it (a new run in an old run's folder).
    """

    def __init__(self, path: str | Path, monitor: str = "val_accuracy", resume: bool = False):
        super().__init__()
        self.path = Path(path)
        self.note_path = self.path.with_suffix(".json")  # best.weights.json
        self.monitor = monitor
        saved = self.saved() if resume else None
        self.best = saved[monitor] if saved else -math.inf

    def saved(self) -> dict | None:
        """The note of the checkpoint on disk (`epoch`, monitor value), or None."""
        if not self.path.is_file():
            return None
        with h5py.File(self.path, "r") as weights:
            note = weights.attrs.get(NOTE_ATTRIBUTE)
        return json.loads(note) if note is not None else None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not value > self.best:
            return
        self.best = float(value)
        note = {"epoch": epoch + 1, self.monitor: self.best}
        partial = self.path.with_name("partial." + self.path.name)  # Keras wants .weights.h5.
        self.model.save_weights(partial, overwrite=True)
        with h5py.File(partial, "a") as weights:
            weights.attrs[NOTE_ATTRIBUTE] = json.dumps(note)
        os.replace(partial, self.path)
        write_json(self.note_path, note)


# What loading a backup raises when its metadata file is empty, cut off or
# holds stray bytes: `json` rejects it (`JSONDecodeError`; `UnicodeDecodeError`
# for bytes that are no text), or it parses without its `epoch` (`KeyError`).
# Not every `ValueError`: Keras raises one for an unbuilt model too, which no
# older copy would cure, and the fallback overwrites the newest copy.
TORN_METADATA = (json.JSONDecodeError, UnicodeDecodeError, KeyError)


class ResumingBackup(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore` that resumes past a torn metadata file too.

    Keras writes the backup's weights, then `training_metadata.json`, in
    place. With `double_checkpoint=True` it keeps the previous pair (`.bkp`)
    and falls back to it when loading raises `OSError` (torn weights), but a
    `kill -9` or power cut while the metadata is written leaves that file
    empty or cut off, and Keras' `json.loads` fails the resumed run with a
    traceback. This falls back to the previous pair then too, the same way.
    The previous metadata is needed (it holds the epoch to resume at); it
    exists from the second save on.

    Raises:
        InputError: At the start of training, when the backup is damaged and
            has no whole previous copy to resume from.
    """

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except TORN_METADATA as error:
            self._fall_back(error)

    def _fall_back(self, error: Exception) -> None:
        """Restores the previous pair over the damaged one, as Keras does on `OSError`."""
        files = compat.backup_files(self)
        if not all(os.path.exists(files[name]) for name in
                   ("prev_weights_path", "prev_training_metadata_path")):
            raise self._damaged() from error
        shutil.copyfile(files["prev_weights_path"], files["weights_path"])
        shutil.copyfile(files["prev_training_metadata_path"], files["training_metadata_path"])
        try:
            compat.reload_backup(self)
        except (OSError, *TORN_METADATA) as again:  # The previous pair is torn too.
            raise self._damaged() from again

    def _damaged(self) -> InputError:
        return InputError(f"the backup in {self.backup_dir} is damaged (cut short by a kill, "
                          "with no whole earlier copy); pass another --out, or delete "
                          f"{self.backup_dir} to train this run again from the start")


class WorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """A non-chief worker's backup: resumes from the chief's, saves into scratch.

    Under `MultiWorkerMirroredStrategy` every worker must save when the chief
    does (saving can create variables, which is a collective step), but only
    the chief's copy may land in the run folder. Every worker must be able to
    read the chief's backup folder, as with Keras' own multi-worker recipe;
    resuming from it puts each worker at the chief's epoch, with the chief's
    weights, which are its own too.

    Args:
        chief_backup_dir: The chief's backup folder, read at the start.
        scratch_backup_dir: Where this worker's own saves go.
    """

    def __init__(self, chief_backup_dir: str, scratch_backup_dir: str):
        super().__init__(scratch_backup_dir, double_checkpoint=True)
        self.chief = ResumingBackup(chief_backup_dir, double_checkpoint=True)

    def set_model(self, model):
        super().set_model(model)
        self.chief.set_model(model)

    def on_train_begin(self, logs=None):
        self.chief.on_train_begin(logs)


def run_backup(folder: Path, chief_folder: Path | None = None) -> keras.callbacks.Callback:
    """The backup that makes a run resumable, saving into `folder` after every epoch.

    Two alternating copies: a kill -9 in the middle of writing one leaves the
    other whole to resume from (`ResumingBackup`: its weights or its
    metadata). Kept after training, until the run's results are written
    (`hw1_keras.task` removes it then): a run stopped while evaluating or
    exporting then resumes with every epoch done instead of training again.

    Args:
        folder: The run's backup folder.
        chief_folder: On a multi-worker run's other workers, the chief's
            backup folder, which they resume from (`WorkerBackupAndRestore`;
            `folder` is then in scratch).
    """
    if chief_folder is None:
        return ResumingBackup(str(folder), double_checkpoint=True, delete_checkpoint=False)
    return WorkerBackupAndRestore(str(chief_folder), str(folder))


def read_log(path: Path, repair: bool = False) -> dict[str, list[float]]:
    """The CSV log as columns, one row per epoch.

    An epoch interrupted after its row was written but before its backup is
    trained again on resume and logged twice; the later row wins. A row cut
    short by a kill or a power cut (no line end, missing or unreadable
    fields) is left out: its epoch is trained again too.

    Args:
        path: The log (`training_log.csv`).
        repair: Rewrite the file without such a row, so that the row the CSV
            logger appends next starts on a line of its own (on resume).
    """
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:  # Keeps the logger's \r\n line ends.
        lines = handle.readlines()
    header = next(csv.reader(lines[:1]), [])
    kept = [line for line in lines if _whole_row(line, len(header))]
    if repair and kept != lines:
        write_text(path, "".join(kept))
    rows = {int(row["epoch"]): row for row in csv.DictReader(kept)}
    ordered = [rows[epoch] for epoch in sorted(rows)]
    return {key: [float(row[key]) for row in ordered] for key in (ordered[0] if ordered else {})}


def _whole_row(line: str, width: int) -> bool:
    """Whether a log line was written to its end (the header counts as whole)."""
    fields = next(csv.reader([line]), [])
    if not line.endswith("\n") or len(fields) != width:
        return False
    if fields[0] == "epoch":
        return True
    try:
        [float(field) for field in fields]
    except ValueError:  # Also an empty field.
        return False
    return True
