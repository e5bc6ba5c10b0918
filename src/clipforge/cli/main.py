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

# name -> ("module:attribute" of a click command relative to clipforge.cli, one-line help).
# The help lives here so that `clipforge --help` lists commands without importing them.
COMMANDS = {
    "index": ("index_cmd:index", "Index image folders, tables of images or tar shards into a collection (incremental)."),
    "index-texts": ("index_cmd:index_texts", "Add texts from a CSV/TSV/TXT file to a collection."),
    "import-embeddings": ("exchange_cmd:import_embeddings", "Import embeddings in clip-retrieval's layout (img_emb/, metadata/)."),
    "export-embeddings": ("exchange_cmd:export_embeddings", "Export a collection in clip-retrieval's layout, for autofaiss."),
    "embed": ("embed_cmd:embed", "Embed a whole source into clip-retrieval's layout, here or on a Ray cluster (resumable)."),
    "search": ("search_cmd:search", "Search a collection by text, image, or image plus text."),
    "classify": ("classify_cmd:classify", "Zero-shot classify images against labels."),
    "info": ("info_cmd:info", "Show a collection's model, counts, skipped files and any damage."),
    "repair": ("repair_cmd:repair", "Rebuild what can be rebuilt of a damaged collection."),
    "eval": ("eval_cmd:eval_group", "Measure retrieval Recall@K and zero-shot accuracy."),
    "train": ("train_cmd:train", "Train or fine-tune a dual encoder."),
    "data": ("data_cmd:data_group", "Build image-text datasets offline."),
    "serve": ("serve_cmd:serve", "Serve collections over HTTP with a web page."),
    "convert": ("convert_cmd:convert", "Save a model (an open_clip checkpoint, say) in Hugging Face format."),
    "export": ("export_cmd:export_group", "Export a model to ONNX (fp32 and int8) for `--model onnx:DIR`."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used."""

    def __init__(self, *args, lazy_commands: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands or {}

    def list_commands(self, ctx):
        return sorted(set(self.lazy_commands) | set(self.commands))

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        if name not in self.lazy_commands:
            return None
        module, attr = self.lazy_commands[name][0].split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, self.lazy_commands[name][1]) for name in sorted(self.lazy_commands)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="clipforge")
def cli(verbose: int) -> None:
    """Train, use, measure and serve CLIP-style image-text models."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        _quiet_libraries()


def _quiet_libraries() -> None:
    # Through the environment, read when (and only if) a command imports them: importing
    # transformers here to quieten it would cost every command, even `--help`, half a second.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


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
