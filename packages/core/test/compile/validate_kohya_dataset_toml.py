"""Validates the kohya dataset-TOML goldens with sd-scripts' own voluptuous schema.

Not part of `npm test` (it needs an sd-scripts checkout and its toml/voluptuous deps). Run:

    PYTHONPATH=<sd-scripts checkout>:<site with toml, voluptuous, and sd-scripts' imports> \
      python packages/core/test/compile/validate_kohya_dataset_toml.py packages/core/test/compile/golden/kohya/*.dataset.toml

It exits non-zero on the first file sd-scripts would reject (unknown key, wrong type).
Last run 2026-11-29 against sd-scripts v0.10.1 (ae72efb): all 9 goldens validated; a file with a
misspelled key (`keep_tokenz`) was rejected with "extra keys not allowed".
"""
import sys

from library import config_util  # sd-scripts

for path in sys.argv[1:]:
    user_config = config_util.load_user_config(path)
    # DreamBooth-style subsets, fine-tuning allowed, no ControlNet, caption dropout supported:
    # the same sanitizer train_network.py builds for LoRA scripts.
    config_util.ConfigSanitizer(True, True, False, True).sanitize_user_config(user_config)
print(f"validated {len(sys.argv) - 1} dataset TOMLs")
