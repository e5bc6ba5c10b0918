"""``clipforge train``: every config key is also a flag (``--lr``, ``--batch-size``), generated
from the config dataclasses so that the two can never drift apart."""

from __future__ import annotations

import os
import signal
import sys
import typing

import click

from ..train.config import leaf_fields, load_config, parse_assignments
from .output import emit, json_option


def _config_options(command):
    # Added in reverse so that --help lists them in the config's order.
    for leaf, (path, f, kind) in reversed(list(leaf_fields().items())):
        flag = leaf.replace("_", "-")
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        kind = args[0] if type(None) in typing.get_args(kind) else kind  # Optional[X] -> X
        help_text = f"{f.metadata.get('help', '')} [{path}]"
        if kind is bool:
            option = click.option(f"--{flag}/--no-{flag}", leaf, default=None, help=help_text)
        else:
            metavar = "N" if kind is int else "X" if kind is float else "TEXT"
            if typing.get_origin(kind) is tuple:
                metavar = "K,K,..."
            option = click.option(f"--{flag}", leaf, default=None, metavar=metavar, help=help_text)
        command = option(command)
    return command


@click.command("train", context_settings={"max_content_width": 110})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file of config keys.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Set any config key (repeatable).")
@json_option
@_config_options
def train(config_file: str | None, assignments: tuple[str, ...], as_json: bool, **flags) -> None:
    """Train or fine-tune a dual encoder; the result is a Hugging Face model directory,
    OUT/final, that `--model hf:OUT/final` uses.

    Keys come from --config, then --set, then flags. Run the same command under
    `torchrun --nproc-per-node N -m clipforge train ...` for data-parallel training.
    """
    from ..train import train as run_training

    overrides = parse_assignments(list(assignments))
    overrides.update({k: v for k, v in flags.items() if v is not None})
    config = load_config(config_file, overrides)
    result = run_training(config)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, the main process reports
    summary = {
        "out": str(result.out),
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
        "finished": result.finished,
        "step": result.step,
        "total_steps": result.total_steps,
        "bad_samples": result.bad_samples,
        "val": result.val,
        "stopped_by": result.stopped_by,
        "memory": result.memory,
    }
    emit(summary, as_json, _render)
    if result.stopped_by:
        # As a shell reports a process ended by that signal: the run did not finish.
        sys.exit(128 + signal.Signals[result.stopped_by])


def _render(summary: dict) -> None:
    state = "finished" if summary["finished"] else "stopped"
    by = f" by {summary['stopped_by']}" if summary["stopped_by"] else ""
    click.echo(f"{state} at step {summary['step']}/{summary['total_steps']}{by}: {summary['checkpoint']}")
    memory = summary["memory"]
    click.echo("peak memory: " + ", ".join(
        f"{'resident' if key == 'peak_rss_mb' else 'GPU'} {value:,.0f} MB" for key, value in memory.items()))
    if summary["bad_samples"]:
        click.echo(f"skipped {summary['bad_samples']} bad samples (see the log)")
    for key, value in summary["val"].items():
        click.echo(f"  {key}: {value:.4f}")
