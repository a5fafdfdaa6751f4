"""The reliability suite: no lost work and no traceback, whatever the input, the disk or a kill does.

Each file holds one family of failures, driven the way they happen to users:

- `test_user_inputs.py`: every bad input a campaign found (a non-UTF-8 or duplicate-key config file, a
  seed out of range, an output folder that is a file or lies under one, a cache folder that cannot be
  created) exits 2 with one paragraph naming the field or path; legal but unlikely values (an empty
  config file, a batch size larger than a stage's split) are said, not silently accepted.
- `test_disk_full.py`: a full disk under `output_dir` or `preprocess_cache_dir` exits 2 and leaves every
  earlier file intact and readable (metrics lines whole, the summary and earlier caches untouched, no
  half-built cache folder). ENOSPC is injected into the writer in the default run; the slow tests fill a
  real, small tmpfs (in a user and mount namespace, `unshare -rm`; skipped where that is not allowed).
- `test_torn_writes.py`: processes killed (SIGKILL) or stopped (SIGTERM) at chosen moments of a write, by a
  hook on the writer run in a fresh process (`factories.run_main_with_hook`), never by sleeping: a torn
  metrics line is dropped with a note when the file is opened again, atomically written files keep their
  old content, SIGTERM during preprocessing exits 130 leaving no half-built cache. The corruption matrix
  of the files this suite owns (config files cut or flipped at many offsets, metrics files torn at every
  byte of their last line) ends in a value or a UserError, never another exception.
- `test_malicious_pickles.py`: a pickle planted in any file read back (the hand-off model file, every file of
  a step checkpoint, every file of the cache; as a raw pickle, in torch.save's zip, as a numpy object
  array, with its manifest entry recorded again) is never run and ends in a UserError.
- `test_kill_resume.py` (slow): kill -9 during training, then `--resume auto`, ends bit-identical to an
  uninterrupted run.
- `test_cache_integrity.py`, `test_run_lock.py`, `test_checkpoint_integrity.py`: cache content
  verification, the lock on `checkpoint_dir`, the hand-off header covered by its hash (issue 14, 1-3).

Checks of the same families that live beside the code they test: Ctrl-C and SIGTERM during training
(tests/training/test_trainer.py), torn, foreign and pickled `.pt` checkpoints (tests/training/checkpoint/).
`python -m pytest tests/reliability` runs the default subset; add `-m slow` for the heavy ones.
"""
