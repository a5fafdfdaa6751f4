"""Checkpoints that survive crashes and never run pickle.

Two kinds of files, both written through `<name>.partial` + fsync + rename (latentbridge.files):

- **Step checkpoints** (`<checkpoint_dir>/step-000000500/`, for `--resume`): a folder with
  `model.safetensors` (the unwrapped model's state dict), `state.safetensors` (every other
  tensor: optimizer moments, RNG states), `state.json` (optimizer/scheduler
  skeletons, loop state incl. data position, python/numpy RNG), `config.json` (the
  resolved config) and `manifest.json`, written LAST, listing every file with its size
  and xxh3_128 (hashed while written), the step, the stage, the config fingerprint and
  the digest of all these fields. A folder without a valid manifest is never loaded and
  never picked by `find_latest`.
- **Model files** (`best_model.pt` and friends, for `infer`/`eval` and stage hand-off): ONE
  safetensors file under the documented name. Its header metadata holds the resolved
  config JSON, step, stage, fingerprint and an xxh3_128 over all of these and the tensors.
  Load it with `load_model_file`; any safetensors tool can read it too.

Every field a loader trusts is covered by a digest, and a missing or malformed one is a UserError naming
the file, as is a state that does not fit the run (`restore`, `restore_optimizer`).

`AsyncCheckpointer.save()` blocks the training loop only while the state is copied (to
reused CPU buffers, pinned when the source is on a GPU); a background thread prunes all but
the newest `keep_last - 1` committed checkpoints (never the newest), writes, fsyncs and commits.

The modules, one concern each: `fingerprint` (which config values make weights compatible),
`format` (names, layout, the JSON-plus-tensor codec), `state` (what a checkpoint holds, RNG state),
`write` (copying the state and writing files), `saver` (the async checkpointer), `load` (loading
with integrity checks). Import the public names from here.
"""

from latentbridge.training.checkpoint.fingerprint import ARCHITECTURE_FIELDS, ConfigFingerprint, config_fingerprint
from latentbridge.training.checkpoint.format import (CHECKPOINT_FORMAT, FORMAT_VERSION, MANIFEST_NAME, MODEL_FILE_FORMAT,
                                                     PARTIAL_SUFFIX, committed_checkpoints, find_latest, step_dir_name)
from latentbridge.training.checkpoint.load import (MODEL_TENSORS, STATE_TENSORS, LoadedCheckpoint, ModelFile,
                                                   load_checkpoint, load_model_file, restore, restore_optimizer)
from latentbridge.training.checkpoint.saver import AsyncCheckpointer, CheckpointStatus, CheckpointWriteError, should_save
from latentbridge.training.checkpoint.state import TrainState, capture_rng_state, restore_rng_state
from latentbridge.training.checkpoint.write import write_model_file

__all__ = [
    "ARCHITECTURE_FIELDS", "AsyncCheckpointer", "CHECKPOINT_FORMAT", "CheckpointStatus", "CheckpointWriteError",
    "ConfigFingerprint", "FORMAT_VERSION", "LoadedCheckpoint", "MANIFEST_NAME", "MODEL_FILE_FORMAT", "MODEL_TENSORS",
    "ModelFile", "PARTIAL_SUFFIX", "STATE_TENSORS", "TrainState", "capture_rng_state", "committed_checkpoints", "config_fingerprint", "find_latest",
    "load_checkpoint", "load_model_file", "restore", "restore_optimizer", "restore_rng_state", "should_save",
    "step_dir_name", "write_model_file",
]
