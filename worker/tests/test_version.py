"""`version`: what `loraspec setup worker` and `loraspec doctor` read from the worker."""

import torch

from loraspec_worker import version


def test_version_reports_torch_build_and_devices():
    result = version.run({})
    assert result["packages"]["torch"] == torch.__version__
    cuda = result["cuda"]
    assert cuda["build"] == torch.version.cuda
    assert len(cuda["device_info"]) == torch.cuda.device_count() == len(cuda["devices"])
    for info in cuda["device_info"]:
        assert set(info) == {"name", "capability", "memory_gib"}
        assert info["memory_gib"] > 0


def test_version_without_cuda_probe():
    assert version.run({"cuda": False})["cuda"] is None
