"""A module's whole training state (parameters, buffers, grads, optimizer state) and a bit-for-bit comparison (fp8
tensors compared as bytes): what the sample-merge tests hold unchanged across a sample."""

import torch


def state(net, optimizer=None) -> dict:
    out = {f"p:{n}": p.detach().clone() for n, p in net.named_parameters()}
    out.update({f"b:{n}": b.clone() for n, b in net.named_buffers()})
    out.update({f"g:{n}": p.grad.clone() for n, p in net.named_parameters() if p.grad is not None})
    for i, s in enumerate((optimizer.state_dict()["state"] if optimizer else {}).values()):
        out.update({f"o:{i}:{k}": v.clone() for k, v in s.items() if torch.is_tensor(v)})
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    bad = [k for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k].view(torch.uint8) if a[k].dtype.itemsize == 1 else a[k], b[k].view(torch.uint8) if b[k].dtype.itemsize == 1 else b[k])]
    assert not bad, bad[:5]


def trained_one_step(net, batch: dict) -> tuple[list, "torch.optim.Optimizer"]:
    """One AdamW step (lr 1e-2) of `net`'s trainable parameters on a squared-output loss, so gradients and
    optimizer state exist; returns (the parameters, the optimizer)."""
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    net(**batch)[0].square().mean().backward()
    optimizer.step()
    return params, optimizer
