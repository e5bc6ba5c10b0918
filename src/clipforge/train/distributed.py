"""Running under torchrun: process group set-up, rank facts, and the few collectives used.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/PORT); without them training
runs as a single process and every helper here is a no-op. NCCL is used between GPUs and
gloo between CPU processes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import InputError
from ..models.device import choose_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, logs and the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> DistEnv:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = choose_device(device)
    if torch_device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise InputError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible)")
        torch_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(torch_device)
    if world > 1 and not dist.is_initialized():
        if torch_device.type == "mps":
            raise InputError("distributed training needs CUDA or CPU processes, not MPS")
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
        log.info("rank %d of %d on %s (%s)", rank, world, torch_device, backend)
    return DistEnv(rank, world, local_rank, torch_device)


def under_torchrun() -> bool:
    """Whether torchrun's agent started this process (it passes on the signals it gets)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def mean_across(env: DistEnv, value: float) -> float:
    """The mean of ``value`` over all processes (every process must call this)."""
    if not env.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_collective_device(env))
    dist.all_reduce(tensor)
    return float(tensor.item()) / env.world


def sum_across(env: DistEnv, value: int) -> int:
    return _reduce_int(env, value, dist.ReduceOp.SUM)


def max_across(env: DistEnv, value: int) -> int:
    return _reduce_int(env, value, dist.ReduceOp.MAX)


def _reduce_int(env: DistEnv, value: int, op) -> int:
    if not env.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=_collective_device(env))
    dist.all_reduce(tensor, op=op)
    return int(tensor.item())


def gather_objects(env: DistEnv, obj) -> list:
    """Every process's ``obj``, in rank order (every process must call this)."""
    if not env.distributed:
        return [obj]
    out = [None] * env.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(env: DistEnv, obj):
    """The main process's ``obj`` on every process: decisions such as 'stop with this error'
    are taken once, so that no process waits forever for another that has already left."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def _collective_device(env: DistEnv) -> torch.device:
    # NCCL reduces only CUDA tensors; gloo only CPU ones.
    return env.device if env.device.type == "cuda" else torch.device("cpu")
