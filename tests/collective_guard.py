"""A guard over torch.distributed's collectives: every tensor handed to one must live on the device the process
trains on (NCCL rejects CPU tensors, gloo CUDA ones: a tensor on the wrong device crashes a multi-GPU run).

    install(expected_device, via_cpu=False) -> calls     # [(collective, [devices of its tensors])]

``via_cpu`` runs each collective on CPU copies of its tensors and copies the results back, so a device gloo cannot
serve (the ``lazy`` device standing in for a GPU in tests/test_distributed.py) can still be the training device.

As a script it trains under the guard, expecting the device train.utils.init_distributed picks, and writes each
rank's calls to $GUARD_LOG.rank<R>.json:

    torchrun --nproc-per-node 2 tests/collective_guard.py --settings … (train.train's arguments)
"""
import atexit
import json
import os
import sys

import torch
import torch.distributed as dist

COLLECTIVES = ("all_reduce", "broadcast", "reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter",
               "reduce_scatter_tensor", "gather", "scatter", "all_to_all", "all_to_all_single", "send", "recv",
               "isend", "irecv")


class WrongDevice(AssertionError):
    pass


def tensors_in(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors_in(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensors_in(item)]
    return []


def on_cpu(value, copies):
    """``value`` with each tensor replaced by a CPU copy; ``copies`` collects (original, copy) pairs."""
    if isinstance(value, torch.Tensor):
        copy = value.cpu().clone()
        copies.append((value, copy))
        return copy
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(item, copies) for item in value)
    return value


def install(expected_device, via_cpu=False):
    """Wrap the collectives in torch.distributed; ``expected_device`` is a torch.device or a callable giving it."""
    expected = expected_device if callable(expected_device) else (lambda: torch.device(expected_device))
    calls = []
    for name in COLLECTIVES:
        original = getattr(dist, name)

        def guarded(*args, _name=name, _original=original, **kwargs):
            devices = [t.device for t in tensors_in(args) + tensors_in(kwargs)]
            calls.append((_name, sorted({str(d) for d in devices})))
            wanted = expected()
            wrong = [d for d in devices if d != wanted]
            if wrong:
                raise WrongDevice(f"{_name}: a tensor on {wrong[0]}, but this process trains on {wanted}")
            if not via_cpu:
                return _original(*args, **kwargs)
            copies = []
            result = _original(*on_cpu(args, copies), **{k: on_cpu(v, copies) for k, v in kwargs.items()})
            for tensor, copy in copies:
                tensor.copy_(copy)
            return result

        setattr(dist, name, guarded)
    return calls


def main(argv):
    import train.utils
    from train.train import cli

    device = {}
    init = train.utils.init_distributed

    def recording_init():
        context = init()
        device["training"] = context.device
        return context

    train.utils.init_distributed = recording_init
    calls = install(lambda: device["training"])
    log = os.environ.get("GUARD_LOG")
    if log:
        rank = os.environ.get("RANK", "0")
        atexit.register(lambda: open(f"{log}.rank{rank}.json", "w").write(
            json.dumps({"device": str(device.get("training")), "calls": calls})))
    return cli(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
