"""Converting checkpoints and model files of format version 1 to the current one, on a user's explicit request:
`python -m latentbridge.training.checkpoint.convert PATH [PATH ...]`.

Loaders refuse version 1: its model-file header and its manifest were not covered by any digest, so a header
edited to say version 1 (a forged downgrade) could not be told from a real old file. This command is the one
way such a file is read again. It checks what version 1 did record (the sha256 of a model file's tensors,
the size and digest of each file a manifest lists) and rewrites only the header, now under its own digest.
Convert files you wrote yourself: their headers are taken as they are.
"""

from __future__ import annotations

import sys
from pathlib import Path

from latentbridge.errors import UserError
from latentbridge.files import header_digest, publish_file
from latentbridge.training.checkpoint.format import (FORMAT_VERSION, MANIFEST_NAME, MODEL_FILE_FORMAT, PARTIAL_SUFFIX,
                                                     SELF_DIGEST, model_file_digest, tensor_digest, write_json,
                                                     write_safetensors)
from latentbridge.training.checkpoint.load import read_manifest_json, read_model_file, verify_files

OLD_VERSION = 1


def convert(path: str | Path) -> str:
    """Rewrite the version-1 checkpoint folder or model file `path` in the current format; what was done."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist.")
    return _convert_checkpoint(path) if path.is_dir() else _convert_model_file(path)


def _convert_model_file(path: Path) -> str:
    meta, tensors = read_model_file(path)
    if meta.get("format") != MODEL_FILE_FORMAT:
        raise UserError(f"{path} is not a latentbridge model file (format {meta.get('format')!r}).")
    if meta.get("format_version") != str(OLD_VERSION):
        return _already_current(path, meta.get("format_version"))
    if tensor_digest(tensors) != meta.get("tensors_sha256"):
        raise UserError(f"model file {path} is corrupt: its tensors do not match the sha256 in its header; "
                        "it is not converted.")
    new = {key: value for key, value in meta.items() if key != "tensors_sha256"}
    new["format_version"] = str(FORMAT_VERSION)
    new[SELF_DIGEST] = model_file_digest(new, tensors)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    write_safetensors(partial, tensors, new)
    publish_file(partial, path)
    return f"converted model file {path} to format version {FORMAT_VERSION}"


def _convert_checkpoint(path: Path) -> str:
    manifest = read_manifest_json(path)
    if manifest.get("format_version") != OLD_VERSION:
        return _already_current(path, manifest.get("format_version"))
    verify_files(path, manifest)  # the sha256 entries version 1 wrote
    new = {**manifest, "format_version": FORMAT_VERSION}
    new[SELF_DIGEST] = header_digest(new)
    partial = path / (MANIFEST_NAME + PARTIAL_SUFFIX)
    write_json(partial, new)
    publish_file(partial, path / MANIFEST_NAME)
    return f"converted checkpoint {path} to format version {FORMAT_VERSION}"


def _already_current(path: Path, version: object) -> str:
    if version == FORMAT_VERSION or version == str(FORMAT_VERSION):
        return f"{path} is already of format version {FORMAT_VERSION}; nothing to do"
    raise UserError(f"{path} has format version {version!r}; this command converts version {OLD_VERSION} only.")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    code = 0
    for arg in argv:
        try:
            print(convert(arg))
        except UserError as error:
            print(f"Error: {error}", file=sys.stderr)
            code = error.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
