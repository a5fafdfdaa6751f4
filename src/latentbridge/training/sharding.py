"""Decoders too large for one GPU: FSDP2 shards every backbone transformer block over the ranks, in any family.

Under `accelerate launch --config_file docs/accelerate_fsdp.yaml` (accelerate's distributed type FSDP) the
trainer shards each layer of both backbones with torch's `fully_shard` (FSDP2) instead of wrapping the stage in
DDP. The layers are nearly all of a large decoder's weights; each rank holds 1/N of them and gathers one layer
at a time in forward and backward (and in the recomputation of gradient checkpointing). Everything else stays
replicated: the token embeddings and the LM head tied to them are frozen in every stage, so they have no
gradient to synchronise, and the small trained parts (compressor, middle, adapter, final norms) have their
gradients averaged over the ranks once per accumulation window (`average_replicated_grads`).

Why not accelerate's own FSDP wrapping of the prepared module: it unshards parameters around that root module's
forward, and the trainer calls the model's parts directly (token embeddings, the LM head one chunk at a time,
generate), outside any such forward; and FSDP cannot put the tied embeddings and LM head into two units.
Accelerate still provides the process group, the device and autocast.

Checkpoints stay whole: every rank gathers the trained tensors (`gathered`: DTensor.full_tensor is a collective)
and rank 0 writes the same files as a single-process run, so a model trained under FSDP loads anywhere (infer,
eval, a resume on another number of ranks); loading scatters them back into the shards (`load_sharded`,
`shard_optimizer_state`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
import torch.distributed as dist
from accelerate.utils import DistributedType
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from latentbridge.models.bridge import LatentBridge


def wants_sharding(accelerator: Any) -> bool:
    """True when the run was launched with accelerate's FSDP (docs/accelerate_fsdp.yaml)."""
    return accelerator.distributed_type == DistributedType.FSDP


def shard_units(model: LatentBridge) -> list[nn.Module]:
    """The wrap policy: each transformer block of both backbones, as models/families.py finds them in any family
    (the blocks whose class is in the model's `_no_split_modules`), is one FSDP unit."""
    return [*model.encoder.layers, *model.decoder.layers]


def shard_layers(model: LatentBridge, device: torch.device) -> None:
    """Shard each unit of `shard_units` over all ranks (moving the shards to `device`), and put the replicated
    rest on `device`."""
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for layer in shard_units(model):
        # each layer is its own FSDP root; roots keep their parameters gathered after forward unless told so,
        # which after a validation or generation pass would leave the whole model on every rank
        fully_shard(layer, mesh=mesh, reshard_after_forward=True)
    model.to(device)


def is_sharded(model: nn.Module) -> bool:
    return any(isinstance(p, DTensor) for p in model.parameters())


def average_replicated_grads(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of the trained parameters that are not sharded (FSDP reduces the sharded ones).
    Written here because DDP cannot wrap a model whose layers hold sharded parameters."""
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None and not isinstance(p.grad, DTensor):
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def clip_grad_norm_(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ over sharded and replicated gradients together (torch's own cannot mix
    DTensor and plain gradients): the squares of the local shards summed over the ranks, plus the replicated
    gradients' once. Returns the total norm; max_norm <= 0 only measures."""
    grads = [p.grad for p in params if p.grad is not None]
    sharded = [g.to_local().float().pow(2).sum() for g in grads if isinstance(g, DTensor)]
    replicated = [g.float().pow(2).sum() for g in grads if not isinstance(g, DTensor)]
    device = grads[0].device if grads else torch.device("cpu")
    shard_sq = torch.stack(sharded).sum() if sharded else torch.zeros((), device=device)
    dist.all_reduce(shard_sq, op=dist.ReduceOp.SUM)
    total = (shard_sq + (torch.stack(replicated).sum() if replicated else 0.0)).sqrt()
    if max_norm > 0:
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale)
    return total


def gathered(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """The state with every sharded tensor gathered whole (recursively through dicts and lists); every rank must
    call it, in the same order."""
    def full(value: Any) -> Any:
        if isinstance(value, DTensor):
            return value.full_tensor()
        if isinstance(value, Mapping):
            return {k: full(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(full(v) for v in value)
        return value

    return {k: full(v) for k, v in tensors.items()}


def _like(value: torch.Tensor, param: DTensor) -> DTensor:
    return distribute_tensor(value.to(param.device_mesh.device_type), param.device_mesh, param.placements)


def load_sharded(model: LatentBridge, state: Mapping[str, torch.Tensor]) -> None:
    """`model.load_trainable_state_dict(state)` for whole tensors into a sharded model."""
    current = model.trainable_state_dict()
    model.load_trainable_state_dict({k: _like(v, current[k]) if isinstance(current.get(k), DTensor) else v
                                     for k, v in state.items()})


def shard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After `optimizer.load_state_dict(whole)`: each state tensor of a sharded parameter (AdamW's moments)
    scattered into the parameter's shards."""
    for param, state in optimizer.state.items():
        if isinstance(param, DTensor):
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and not isinstance(value, DTensor) and value.shape == param.shape:
                    state[key] = _like(value, param)
