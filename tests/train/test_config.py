"""Config files and flags: typed, strict, with suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipforge.errors import InputError, NotFoundError
from clipforge.train.config import leaf_fields, load_config, parse_assignments

EXAMPLE = Path(__file__).parents[2] / "examples" / "shapes-tiny.yaml"


def test_the_example_config_loads():
    config = load_config(EXAMPLE)
    assert config.model.preset == "mini" and config.optim.lr == 4e-3 and config.data.train == "data/shapes"


def test_sections_bare_keys_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-4\nbatch_size: 8\ndata:\n  train: d\n  flip: yes\nrecall_k: [1, 3]\n")
    config = load_config(path, {"batch-size": "32", "optim.warmup_steps": 7, "max_steps": "null"})
    assert config.optim.lr == 1e-4  # YAML 1.1 reads 1e-4 as a string; the config makes it a float
    assert config.batch_size == 32 and config.optim.warmup_steps == 7 and config.max_steps is None
    assert config.data.flip is True and config.recall_k == (1, 3)
    assert parse_assignments(["lr=2e-3", "data.workers=0"]) == {"lr": "2e-3", "workers": "0"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lerning_rate: 1\n", "unknown config key 'lerning_rate'"),
        ("data:\n  captoin_column: c\n", "did you mean 'data.caption_column'"),
        ("optim:\n  train: x\n", "unknown config key 'optim.train'; did you mean 'data.train'"),
        ("batch_size: many\n", "batch_size"),
        ("data: {train: x}\nbatch_size: 0\n", "at least 1"),
        ("data: {train: x}\nprecision: fp8\n", "not one of"),
        ("lr: 1\noptim: {lr: 2}\n", "given twice"),
    ],
)
def test_bad_configs_are_refused(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_config(path, {"train": "x"} if "data" not in text else None)


def test_unknown_keys_suggest_the_nearest():
    with pytest.raises(InputError, match="did you mean 'batch_size'"):
        load_config(None, {"train": "x", "batchsize": 3})
    with pytest.raises(NotFoundError):
        load_config("/nonexistent.yaml")


def test_every_key_has_a_unique_flag_name_and_help():
    names = [path.rsplit(".", 1)[-1] for path, _, _ in leaf_fields().values()]
    assert len(names) == len(set(names))
    assert all(f.metadata.get("help") for _, f, _ in leaf_fields().values())


def test_cli_flags_and_one_line_errors(run_cli, tmp_path):
    result = run_cli("train", "--config", EXAMPLE, "--set", "data.captoin_column=c")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "did you mean 'data.caption_column'" in result.stderr
    result = run_cli("train", "--train", tmp_path / "missing", "--out", tmp_path / "run")
    assert result.returncode == 3 and "does not exist" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "run" / "last").exists()
