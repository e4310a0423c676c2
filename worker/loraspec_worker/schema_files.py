"""The files core writes for the worker under the repository's schema/ folder (scripts/write-schema.ts):
the built-in trainer table, the train request's JSON Schema and the event union's. The worker reads
them instead of keeping its own copies; LORASPEC_SCHEMA_DIR points elsewhere (an installed worker)."""

from __future__ import annotations

import functools
import json
import os

from .protocol import WorkerError

REPO_SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "schema")


def schema_dir() -> str:
    return os.environ.get("LORASPEC_SCHEMA_DIR") or REPO_SCHEMA_DIR


@functools.cache
def load(name: str) -> dict:
    path = os.path.join(schema_dir(), name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise WorkerError("E_FILE_NOT_FOUND", f"the worker's schema file is missing: {path}",
                          hint="run the worker from the loraspec checkout, or set LORASPEC_SCHEMA_DIR to its schema/ folder") from None


def builtin_trainer() -> dict:
    """knowledge/builtin-trainer.ts as data: arches, targets, optimizers, fallbacks, levers, setting keys."""
    return load("builtin-trainer.json")


def train_request_schema() -> dict:
    return load("worker-train-request.schema.json")


def event_schema() -> dict:
    return load("loraspec-event.schema.json")
