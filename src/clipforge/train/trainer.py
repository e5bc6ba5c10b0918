"""The training loop, readable top to bottom.

``train(config)``:
1. joins the process group when run under torchrun, and claims the run directory;
2. reads the training and validation pairs;
3. builds the model (or reopens the checkpoint being resumed), the optimizer, the schedule
   and the data loader, restoring their state when resuming;
4. loops: accumulate micro-batches -> clip gradients -> step -> log, validate, checkpoint,
   until the last step, or until SIGTERM or Ctrl-C asks it to stop with a checkpoint;
5. saves ``final/``, a Hugging Face model directory that ``hf:<out>/final`` names.

Every process runs this code; only the main one writes.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from ..data.pairs import PairSet, load_pairs
from ..errors import ClipforgeError, InputError
from ..models.device import choose_dtype
from ..models.preprocess import ImagePreprocess
from . import checkpoint, distributed
from .augment import TrainTransform
from .config import TrainConfig
from .data import BadSamples, Collate, EpochBatchSampler, PairDataset, caption_words, make_loader
from .distributed import DistEnv
from .grad_cache import backward_in_chunks
from ..allocator import keep_freed_memory
from .logs import RunLog, peak_memory
from .long_text import long_text_loss
from .losses import MAX_LOGIT_SCALE, clip_loss, siglip_loss
from .models import ContrastiveModel, TrainModel, build_model, enable_checkpointing, load_model_dir, lock_towers
from .optim import build_optimizer, build_scheduler
from .signals import StopOnSignals
from .validate import ValData, encoder_for, load_val_data, recall_at_k

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    out: Path
    checkpoint: Path | None  # final/, or the step checkpoint where run_steps stopped the run
    step: int
    total_steps: int
    finished: bool
    val: dict[str, float] = field(default_factory=dict)
    bad_samples: int = 0
    stopped_by: str | None = None  # the signal that stopped the run early: "SIGTERM", "SIGINT"
    memory: dict[str, float] = field(default_factory=dict)  # the main process's peaks, MB


@dataclass
class Run:
    """Everything the loop touches, in one place."""

    config: TrainConfig
    env: DistEnv
    out: Path
    parts: TrainModel
    net: torch.nn.Module  # ContrastiveModel, wrapped in DDP when distributed
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    autocast: Callable
    loss_fn: Callable
    total_steps: int
    micro_per_epoch: int
    val: ValData | None
    step: int = 0
    micro: int = 0  # micro-batches consumed since the start of the run: the data position
    lr: float = 0.0  # the learning rate of the latest step
    bad: BadSamples = field(default_factory=BadSamples)
    last_val: dict[str, float] = field(default_factory=dict)
    saved_as: tuple[int, str] | None = None  # (step, name) of the checkpoint holding the current state
    checkpoint: Path | None = None  # where that checkpoint is (on the main process)


def train(config: TrainConfig) -> TrainResult:
    """Train (or fine-tune, or resume) as ``config`` says. Runs as one process, or as
    every process of a torchrun job."""
    env = distributed.setup(config.device)
    keep_freed_memory()  # each step frees and re-allocates its activations
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    new_folder = not out.exists()
    try:
        try:
            run, train_pairs = _prepare(config, env)
        except BaseException:
            if new_folder and env.is_main:
                _remove_if_empty(out)  # a run refused before it wrote anything leaves no folder
            raise
        return _loop(run, train_pairs)
    finally:
        distributed.teardown()


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty, or never made
        pass


def _on_main(env: DistEnv, action: Callable[[], None]) -> None:
    """Run ``action`` on the main process; if it fails, fail on every process alike."""
    error = None
    if env.is_main:
        try:
            action()
        except ClipforgeError as e:
            error = e
    error = distributed.broadcast_object(env, error)
    if error is not None:
        raise error


def _load_data(config: TrainConfig) -> tuple[PairSet, PairSet | None]:
    data = config.data
    columns = {"image_column": data.image_column, "caption_column": data.caption_column}
    train_pairs = load_pairs(data.train, data.train_split, **columns)
    if not len(train_pairs):
        raise InputError(f"{data.train}: no training pairs (split '{data.train_split}')")
    if not data.val:
        return train_pairs, None
    val_pairs = load_pairs(data.val, data.val_split, **columns)
    if not val_pairs.has_splits and data.val == data.train:
        raise InputError(f"{data.val} has no splits: point data.val at separate validation data")
    if not len(val_pairs):
        raise InputError(f"{data.val}: no validation pairs (split '{data.val_split}')")
    return train_pairs, val_pairs


def _start_model(config: TrainConfig, resume: checkpoint.Resume | None, train_pairs: PairSet) -> TrainModel:
    torch.manual_seed(config.seed)  # the same initial weights on every process
    if resume is None:
        return build_model(config.model, config.seed, caption_words(train_pairs), config.batch_size)
    parts = load_model_dir(str(resume.path))
    lock_towers(parts.model, config.model)
    return parts


def _autocast(config: TrainConfig, device: torch.device) -> tuple[Callable, torch.amp.GradScaler | None]:
    if config.precision == "auto":
        # bf16 where the hardware runs it natively; otherwise full precision.
        dtype = choose_dtype(device, "auto") if device.type in ("cpu", "cuda") else torch.float32
        dtype = dtype if dtype == torch.bfloat16 else torch.float32
    else:
        dtype = choose_dtype(device, config.precision)
    if dtype == torch.float32:
        return nullcontext, None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.type == "cuda" else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def _loss(config: TrainConfig, parts: TrainModel) -> Callable:
    loss = _base_loss(config, parts)
    return long_text_loss(loss, config.model.long_text_components) if config.model.long_text else loss


def _base_loss(config: TrainConfig, parts: TrainModel) -> Callable:
    kind = config.loss if config.loss != "auto" else ("siglip" if parts.family == "siglip" else "clip")
    if kind == "siglip":
        if parts.family != "siglip":
            raise InputError("the siglip loss needs a model with a logit bias: use model.arch siglip")
        return lambda image, text, scale, bias: siglip_loss(image, text, scale, bias)
    if getattr(parts.model, "logit_bias", None) is not None:
        # Unused by this loss; a trainable parameter without a gradient would stall DDP.
        parts.model.logit_bias.requires_grad_(False)
    return lambda image, text, scale, bias: clip_loss(image, text, scale, config.label_smoothing)


def _wrap(config: TrainConfig, env: DistEnv, parts: TrainModel) -> torch.nn.Module:
    if config.grad_checkpointing:
        enable_checkpointing(parts.model)
    net = ContrastiveModel(parts.model).to(env.device)
    if not env.distributed:
        return net
    device_ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=device_ids)


def _prepare(config: TrainConfig, env: DistEnv) -> tuple[Run, PairSet]:
    out = Path(config.out)
    _on_main(env, lambda: checkpoint.tidy(out))  # before reading `last`, which a kill may have left dangling
    resume = checkpoint.open_resume(config.resume, config, env.world) if config.resume else None
    _on_main(env, (lambda: out.mkdir(parents=True, exist_ok=True)) if resume else (lambda: checkpoint.claim_run_dir(out)))
    train_pairs, val_pairs = _load_data(config)
    micro_per_epoch = len(train_pairs) // (config.batch_size * env.world)
    if micro_per_epoch == 0:
        raise InputError(
            f"batch size {config.batch_size} x {env.world} process(es) is larger than the training "
            f"set ({len(train_pairs)} images); lower batch_size"
        )
    total = config.max_steps or max(1, config.epochs * micro_per_epoch // config.accum_steps)
    parts = _start_model(config, resume, train_pairs)
    torch.manual_seed(config.seed + env.rank)  # dropout, where a tower has it, differs per rank
    loss_fn = _loss(config, parts)
    optimizer = build_optimizer(parts.model, config.optim, env.device)
    autocast, scaler = _autocast(config, env.device)
    run = Run(
        config, env, out, parts, _wrap(config, env, parts), optimizer,
        build_scheduler(optimizer, config.optim, total), scaler, autocast, loss_fn,
        total, micro_per_epoch, None,
    )
    if resume is not None:
        _restore(run, resume)
    if val_pairs is not None and env.is_main:
        preprocess = ImagePreprocess.from_hf(parts.image_processor)
        run.val = load_val_data(val_pairs, preprocess, config.data.val_max_images)
    return run, train_pairs


def _restore(run: Run, resume: checkpoint.Resume) -> None:
    state = resume.state
    try:
        run.optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as e:
        raise InputError(f"{resume.path}: optimizer state does not fit this model ({e})") from None
    run.scheduler.load_state_dict(state["scheduler"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    rngs = state["rng"]
    checkpoint.set_rng_state(rngs[run.env.rank] if len(rngs) == run.env.world else rngs[0])
    run.step, run.micro = state["step"], state["micro"]
    run.bad.count = state.get("bad_samples", 0)
    run.saved_as, run.checkpoint = (run.step, resume.path.name), resume.path if run.env.is_main else None
    log.info("resuming %s at step %d (micro-batch %d)", resume.path, run.step, run.micro)


def _loader(run: Run, train_pairs: PairSet, end_step: int):
    config, env, parts = run.config, run.env, run.parts
    preprocess = ImagePreprocess.from_hf(parts.image_processor)
    transform = TrainTransform(preprocess, config.data.crop_scale, config.data.flip, config.data.jitter)
    sampler = EpochBatchSampler(
        len(train_pairs), config.batch_size, env.rank, env.world, config.seed,
        start=run.micro, end=end_step * config.accum_steps,
    )
    max_length = encoder_for(parts, env.device).max_text_length
    collate = Collate(parts.tokenizer, parts.family, max_length, preprocess)
    dataset = PairDataset(train_pairs.pairs, transform, config.seed, long_text=config.model.long_text is not None)
    return make_loader(dataset, sampler, collate, config.data.workers, env.device)


def _train_step(run: Run, micro_batches) -> float:
    """One optimizer step over ``accum_steps`` micro-batches; returns the mean loss."""
    run.optimizer.zero_grad(set_to_none=True)
    accum, total = run.config.accum_steps, 0.0
    for i in range(accum):
        batch = next(micro_batches)
        run.bad.add(batch.bad)
        batch = batch.to(run.env.device)
        # Gradients are averaged across processes once, on the last micro-batch.
        sync = i == accum - 1 or not isinstance(run.net, DistributedDataParallel)
        total += float(_backward(run, batch, sync))
    _optimizer_step(run)
    run.micro += accum
    return total


def _backward(run: Run, batch, sync: bool) -> torch.Tensor:
    """Back-propagate one micro-batch's share of the step's loss; returns that share."""
    accum = run.config.accum_steps

    def loss_of(image, text, scale, bias):
        # The loss itself in float32: softmax sums over bf16 logits lose too much.
        return run.loss_fn(image.float(), text.float(), scale.float(), None if bias is None else bias.float()) / accum

    for_backward = run.scaler.scale if run.scaler else (lambda loss: loss)
    if run.config.grad_cache_chunk:
        return backward_in_chunks(
            run.net, batch, run.config.grad_cache_chunk, run.autocast, loss_of, for_backward, sync, run.env.device
        )
    with nullcontext() if sync else run.net.no_sync():
        with run.autocast():
            image, text, scale, bias = run.net(batch.pixel_values, **batch.text)
        loss = loss_of(image, text, scale, bias)
        for_backward(loss).backward()
    return loss.detach()


def _optimizer_step(run: Run) -> None:
    params = [p for p in run.parts.model.parameters() if p.requires_grad]
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    if run.config.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, run.config.optim.grad_clip)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.lr = run.optimizer.param_groups[0]["lr"]
    run.scheduler.step()
    with torch.no_grad():  # open_clip's clamp: the temperature may not fall below 1/100
        run.parts.model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)


def _validate(run: Run, log_: RunLog) -> None:
    if run.val is None or not run.env.is_main:
        return
    encoder = encoder_for(run.parts, run.env.device)
    run.last_val = recall_at_k(encoder, run.val, run.config.recall_k, run.autocast())
    log_.write({"kind": "val", "step": run.step, **run.last_val})
    log.info("step %d: %s", run.step, ", ".join(f"{k} {v:.3f}" for k, v in run.last_val.items()))


def _save(run: Run, name: str) -> None:
    rngs = distributed.gather_objects(run.env, checkpoint.rng_state())
    path = None
    if run.env.is_main:
        state = {
            "step": run.step, "micro": run.micro, "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict() if run.scaler else None,
            "rng": rngs, "global_batch": run.config.batch_size * run.env.world, "bad_samples": run.bad.count,
        }
        path = checkpoint.save(run.out, name, run.parts, state, run.config, run.config.keep_checkpoints)
    run.saved_as, run.checkpoint = (run.step, name), path
    distributed.barrier(run.env)


def _save_at_end(run: Run, finished: bool) -> None:
    name = "final" if finished else f"step-{run.step:07d}"
    # A stop just after a checkpoint, or a resumed run with nothing left to do, has its state
    # saved already; rewriting it would only open a window in which a kill loses it.
    if run.step > 0 and run.saved_as != (run.step, name):
        _save(run, name)


def _stop_signal(run: Run, signals: StopOnSignals) -> str | None:
    """The stop signal any process has received: all must stop at the same step."""
    number = distributed.max_across(run.env, int(signals.received or 0))
    return signal.Signals(number).name if number else None


def _every(step: int, interval: int) -> bool:
    return interval > 0 and step % interval == 0


def _log_step(run: Run, log_: RunLog, loss: float, samples_per_s: float) -> None:
    loss = distributed.mean_across(run.env, loss)
    bad = distributed.sum_across(run.env, run.bad.count)
    if not math.isfinite(loss):
        raise InputError(f"the loss is {loss} at step {run.step}: lower optim.lr or use fp32")
    record = {
        "kind": "train", "step": run.step, "epoch": round(run.micro / run.micro_per_epoch, 4), "loss": loss,
        "lr": run.lr,
        "logit_scale": float(run.parts.model.logit_scale.detach().exp()),
        "samples_per_s": round(samples_per_s, 2), "bad_samples": bad, **peak_memory(run.env.device),
    }
    log_.write(record)
    log_.advance(run.step, samples_per_s, loss)


def _loop(run: Run, train_pairs: PairSet) -> TrainResult:
    config = run.config
    end = run.total_steps if config.run_steps is None else min(run.total_steps, run.step + config.run_steps)
    log_ = RunLog(run.out, run.env.is_main, run.step, run.total_steps)
    log_.write({
        "kind": "data", "step": run.step, "train_images": len(train_pairs),
        "train_captions": train_pairs.n_captions, "skipped_rows": dict(train_pairs.skipped),
    })
    try:
        with StopOnSignals(repeat_interrupts=not distributed.under_torchrun()) as signals:
            stop = _train_until(run, train_pairs, end, log_, signals)
            _save_at_end(run, run.step >= run.total_steps)
    finally:
        log_.close()
    return TrainResult(
        run.out, run.checkpoint, run.step, run.total_steps, run.step >= run.total_steps, run.last_val,
        run.bad.count, stop, peak_memory(run.env.device),
    )


def _train_until(run: Run, train_pairs: PairSet, end: int, log_: RunLog, signals: StopOnSignals) -> str | None:
    """Train up to step ``end``; returns the signal that stopped it earlier, if one did."""
    config = run.config
    batches = iter(_loader(run, train_pairs, end))
    run.net.train()
    tick, tick_step = time.perf_counter(), run.step
    while run.step < end:
        if stop := _stop_signal(run, signals):
            return stop
        loss = _train_step(run, batches)
        run.step += 1
        if _every(run.step, config.log_every) or run.step == end:
            elapsed = time.perf_counter() - tick
            samples = (run.step - tick_step) * config.accum_steps * config.batch_size * run.env.world
            _log_step(run, log_, loss, samples / max(elapsed, 1e-9))
            tick, tick_step = time.perf_counter(), run.step
        else:
            log_.advance(run.step)
        if _every(run.step, config.val_every) or run.step == run.total_steps:
            _validate(run, log_)
        if _every(run.step, config.save_every) and run.step < end:
            _save(run, f"step-{run.step:07d}")
    return None
