"""Whether a model named by Hugging Face id can be loaded now, decided in a few seconds.

transformers' from_pretrained asks the hub for every file, and huggingface_hub retries a request the hub does not
answer (1 + 2 + 4 + 8 + 8 s per file): offline, a model that is not cached took ~55 s to fail, and one that is
cached the same wait before the cache was used. Here the hub is asked once, with a short timeout, first.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from .protocol import WorkerError

# One HEAD to the hub's endpoint: an answer of any status means it can be reached. Long enough for a slow link,
# short enough that an offline prep carries on at once (a connection refused returns at once anyway).
HUB_PROBE_TIMEOUT_S = 3.0


def hub_reachable(endpoint: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """urllib follows HTTP(S)_PROXY as huggingface_hub does; any HTTP status is an answer."""
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
        return True
    except urllib.error.HTTPError:
        return True
    except Exception:  # noqa: BLE001 - refused, unresolved, timed out: not reachable
        return False


def local_files_only(model: str, what: str) -> bool:
    """For from_pretrained: False to load as usual (a local folder, or the hub answers), True to load from the
    local cache without asking the hub (offline, or the hub does not answer and the model is cached). A model
    neither local nor cached while the hub does not answer is E_REMOTE at once, naming the endpoint and the cache."""
    if os.path.exists(model) or not _is_repo_id(model):
        return False  # a folder, or a path that is not there: from_pretrained says so without the hub
    from huggingface_hub import constants, try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(model, "config.json"), str)
    if constants.HF_HUB_OFFLINE:
        return True
    if hub_reachable(constants.ENDPOINT):
        return False
    if cached:
        return True
    raise WorkerError(
        "E_REMOTE",
        f"cannot load the {what} model {model!r}: it is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and the hub ({constants.ENDPOINT}) does not answer",
        hint=f"run once with a network connection (the model is then cached), or pass a local folder that holds {model}",
        retryable=True,
    )


def _is_repo_id(model: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if model.startswith(("/", ".", "~")) or os.sep in model.replace("/", "") or model.count("/") > 1:
        return False
    try:
        validate_repo_id(model)
        return True
    except HFValidationError:
        return False
