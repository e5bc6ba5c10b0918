"""The ``clipforge`` command: a thin shell over the library.

Commands are imported only when run, so ``clipforge --help`` answers without loading torch.
Every ClipforgeError becomes one line on stderr and the error's exit code; a traceback means
a bug.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from ..errors import ClipforgeError

# name -> "module:attribute" of a click command, relative to clipforge.cli
COMMANDS = {
    "index": "index_cmd:index",
    "index-texts": "index_cmd:index_texts",
    "search": "search_cmd:search",
    "classify": "classify_cmd:classify",
    "info": "info_cmd:info",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="clipforge")
def cli(verbose: int) -> None:
    """Train, use, measure and serve CLIP-style image-text models."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        _quiet_libraries()


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    try:
        import huggingface_hub.utils

        huggingface_hub.utils.disable_progress_bars()
    except (ImportError, AttributeError):  # pragma: no cover
        pass


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="clipforge", standalone_mode=False)
    except ClipforgeError as e:
        click.echo(f"clipforge: error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("clipforge: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:  # `clipforge search ... | head`
        sys.exit(0)


if __name__ == "__main__":
    main()
