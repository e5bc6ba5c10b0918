"""What a kill during a checkpoint write leaves, and what the next start makes of it.

The states are built as the kill would leave them (the kill's timing cannot be chosen from
outside): a rewrite of ``final`` stopped between its two renames, temporary directories of
writes that never got their name, an old checkpoint half deleted, a half-made ``last``."""

from __future__ import annotations

import os

from clipforge.models import load_encoder
from clipforge.train import train
from train_helpers import shapes_small, tiny_config  # noqa: F401 (a fixture)


def _hidden(out) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def test_the_next_start_undoes_an_interrupted_swap_and_clears_a_killed_writes_leftovers(shapes_small, tmp_path):
    out = tmp_path / "run"
    assert train(tiny_config(out, shapes_small)).finished
    # A rewrite of final/ killed after the old one moved aside, before the new one moved in:
    (out / "final").rename(out / ".old-final-99999")
    (out / ".tmp-final-99999").mkdir()
    (out / ".tmp-final-99999" / "config.json").write_text("{")
    # ... and the debris of other kills: a step write, a deletion, a link, a log rewrite.
    (out / ".tmp-step-0000009-99998").mkdir()
    (out / ".trash-step-0000003-99997").mkdir()
    os.symlink("step-0000009", out / ".last-99998")
    (out / ".tmp-log.jsonl-99996").write_text("")
    assert not (out / "last").exists()  # it names final/, which is gone

    resumed = train(tiny_config(out, shapes_small, resume=str(out / "last")))
    assert resumed.finished and resumed.checkpoint == (out / "final").resolve()
    assert _hidden(out) == []
    load_encoder(f"hf:{out}/last", device="cpu").encode_texts(["a red circle"])


def test_resuming_a_finished_run_leaves_its_final_model_untouched(shapes_small, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(out, shapes_small))
    before = (out / "final").stat().st_ino, (out / "final" / "model.safetensors").stat().st_mtime_ns
    resumed = train(tiny_config(out, shapes_small, resume=str(out / "last")))
    assert resumed.finished and resumed.step == 6
    after = (out / "final").stat().st_ino, (out / "final" / "model.safetensors").stat().st_mtime_ns
    assert after == before  # not rewritten: a kill during a rewrite would have left `last` dangling
