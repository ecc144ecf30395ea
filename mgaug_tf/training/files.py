"""Atomic file writes: a reader (or a killed run) never sees half a file."""

import json
import os


def write_text(path, text):
    """Writes `text` to `path` through a temporary file and a rename."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def write_json(path, payload):
    """Writes `payload` as indented JSON to `path`, atomically."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
