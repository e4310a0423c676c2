"""load_pipeline names the component a diffusers base folder is missing (toy-sdxl without vae/ failed with
diffusers' "no file named config.json found in directory <base>"), before diffusers is imported."""

import shutil
import sys
from pathlib import Path

import pytest

from loraspec_worker.protocol import WorkerError
from loraspec_worker.train.model import folder_problems, load_pipeline

TOY_SDXL = Path(__file__).resolve().parents[2] / "models" / "toy-sdxl"


def test_the_whole_toy_base_has_no_problems():
    assert folder_problems(str(TOY_SDXL)) == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: shutil.rmtree(d / "vae"), "vae/ (AutoencoderKL) is missing"),
        (lambda d: (d / "unet" / "config.json").unlink(), "unet/ (UNet2DConditionModel) has no config.json"),
        (lambda d: (d / "text_encoder" / "model.safetensors").unlink(), "text_encoder/ (CLIPTextModel) has no weights"),
        (lambda d: (d / "scheduler" / "scheduler_config.json").unlink(), "scheduler/ (EulerDiscreteScheduler) has no scheduler_config.json"),
    ],
)
def test_a_folder_with_a_component_missing_is_refused_naming_it(tmp_path, change, named):
    base = tmp_path / "base"
    shutil.copytree(TOY_SDXL, base)
    change(base)
    diffusers_loaded = "diffusers.pipelines" in sys.modules
    with pytest.raises(WorkerError) as e:
        load_pipeline(str(base), "sdxl", None)
    assert e.value.code == "E_FILE_NOT_FOUND"
    assert named in str(e.value)
    # Refused from the folder listing: no pipeline class was imported for it.
    assert ("diffusers.pipelines" in sys.modules) == diffusers_loaded
