"""One job's training across processes: ``torchrun`` + DistributedDataParallel.

Launched by ``torchrun --nproc_per_node=N -m uqbench run ...`` every process runs the same runner
on the same jobs; ``bench.train.fit`` then splits every global batch between the ranks (see
there) and DDP averages the gradients. Only rank 0 evaluates and writes results, checkpoints
and logits. Without ``WORLD_SIZE > 1`` in the environment every helper here is a no-op that
reads one environment variable, and the process group is never created.

The process group is created on first use (gloo on CPU, nccl on CUDA), so every rank must take
the same code path up to each collective; all ranks do, since they run the same jobs with the
same seeds and take rank 0's word for every decision that depends on the file system.
"""

from __future__ import annotations

import atexit
import os
from datetime import timedelta

import torch

# Rank 0 evaluates and measures cost between two trainings while the other ranks wait at the
# next collective: give it time (minutes; ``UQBENCH_DIST_TIMEOUT_MIN``).
DEFAULT_TIMEOUT_MIN = 120
_device: torch.device | None = None  # the run's device (set by ``local_device``), picks the backend


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_distributed() -> bool:
    """Launched by ``torchrun`` (or equivalent) with more than one process."""
    return world_size() > 1


def is_main() -> bool:
    """Whether this process writes results, checkpoints and logits (rank 0, or the only one)."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under ``torchrun`` each rank uses the CUDA device of its local rank."""
    global _device
    if device.type == "cuda" and is_distributed():
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
    _device = device
    return device


def init(device: torch.device | None = None) -> None:
    """Create the process group once: nccl when the run's device is CUDA, else gloo."""
    import torch.distributed as td

    if td.is_initialized():
        return
    cuda = (device or _device or torch.device("cpu")).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank())
    minutes = int(os.environ.get("UQBENCH_DIST_TIMEOUT_MIN", DEFAULT_TIMEOUT_MIN))
    td.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=minutes))
    atexit.register(_shutdown)


def _shutdown() -> None:
    import torch.distributed as td

    if td.is_initialized():
        td.destroy_process_group()


def _comm_device() -> torch.device:
    import torch.distributed as td

    return torch.device("cuda", torch.cuda.current_device()) if td.get_backend() == "nccl" else torch.device("cpu")


def agree(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (the flag itself when not distributed)."""
    if not is_distributed():
        return flag
    import torch.distributed as td

    init()
    t = torch.tensor([int(flag)], device=_comm_device())
    td.broadcast(t, 0)
    return bool(t.item())


def broadcast_state(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers into ``module`` on every rank."""
    if not is_distributed():
        return
    import torch.distributed as td

    init()
    for t in module.state_dict().values():
        td.broadcast(t, 0)


def sync_rng() -> None:
    """Give every rank rank 0's global RNG states (CPU, and CUDA when used).

    Forward-pass randomness (dropout) draws different numbers on ranks that hold shards of
    different sizes; whatever a method draws after training must still be the same on all."""
    if not is_distributed():
        return
    import torch.distributed as td

    init()
    dev = _comm_device()
    states = [torch.get_rng_state()]
    if dev.type == "cuda":
        states.append(torch.cuda.get_rng_state())
    for i, s in enumerate(states):
        t = s.to(dev)
        td.broadcast(t, 0)
        if i == 0:
            torch.set_rng_state(t.cpu())
        else:
            torch.cuda.set_rng_state(t.cpu())


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of a tensor over ranks (a copy; the tensor itself when not distributed)."""
    if not is_distributed():
        return t
    import torch.distributed as td

    out = t.detach().clone()
    td.all_reduce(out)
    return out
