"""`version`: what `loraspec setup worker` and `loraspec doctor` read from the worker."""

from importlib.metadata import version as dist_version

import torch

from loraspec_worker import version


def test_version_reports_torch_build_and_devices():
    result = version.run({})
    # The installed distribution's version (the H200 image reports 2.11.0 there, 2.11.0+cu130 in torch.__version__).
    assert result["packages"]["torch"] == dist_version("torch")
    cuda = result["cuda"]
    assert cuda["build"] == torch.version.cuda
    assert len(cuda["device_info"]) == torch.cuda.device_count() == len(cuda["devices"])
    for info in cuda["device_info"]:
        assert set(info) == {"name", "capability", "memory_gib"}
        assert info["memory_gib"] > 0


def test_version_without_cuda_probe():
    assert version.run({"cuda": False})["cuda"] is None
