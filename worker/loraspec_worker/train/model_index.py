"""What a diffusers folder's model_index.json lists as its components: one reading for the loader's check
(model.folder_problems) and the read-ahead (readahead.weight_files)."""

from __future__ import annotations


def listed_components(index) -> list[tuple[str, str]]:
    """(folder name, class name) of each component the index lists: a key not starting with "_" whose value is a
    [library, class] pair with neither missing (diffusers loads nothing for [null, null]). [] for an index that is not
    a JSON object."""
    if not isinstance(index, dict):
        return []
    return [(name, str(value[1])) for name, value in index.items()
            if not name.startswith("_") and isinstance(value, list) and len(value) == 2 and None not in value]
