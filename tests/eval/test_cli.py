"""``clipforge eval`` over a tiny model and real datasets in every format.

Two runs go through the installed executable in a subprocess (each pays several seconds of
torch start-up); the other runs call the same CLI entry point, ``clipforge.cli.main.main``,
in this process, so that the model loads once.
"""

from __future__ import annotations

import json

import pytest

from clipforge.cli.main import main
from eval_data import (
    coco_captions,
    flickr_images,
    image_folder,
    karpathy,
    photo,
    webdataset_classification,
    webdataset_retrieval,
)

FP32 = ("--device", "cpu", "--precision", "fp32")
RECALL_KEYS = [f"{d}_retrieval_recall@{k}" for k in (1, 5, 10) for d in ("image", "text")]


@pytest.fixture
def clipforge(capsys):
    """Run the CLI in this process: (exit code, stdout, stderr)."""

    def run(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _flickr_csv(root):
    flickr_images(root / "Images")
    (root / "captions.txt").write_text(
        "image,caption\n1000.jpg,a dog\n1000.jpg,a brown dog\n1001.jpg,a cat\n1002.jpg,a bird\n"
    )
    return [root / "captions.txt", "--images", root / "Images"], (3, 4)


def _flickr_pipe(root):
    flickr_images(root)
    (root / "results.csv").write_text("image_name| comment_number| comment\n1000.jpg| 0| a dog\n1001.jpg| 0| a cat\n")
    return [root / "results.csv"], (2, 2)


def _caption_list(root):
    flickr_images(root / "imgs")
    doc = [
        {"image": "imgs/1000.jpg", "caption": ["a", "b", "c", "d", "e"]},
        {"image": "imgs/1001.jpg", "caption": ["f"]},
    ]
    (root / "test.json").write_text(json.dumps(doc))
    return [root / "test.json"], (2, 6)


def _pairs(root):
    flickr_images(root)
    (root / "pairs.csv").write_text("image,caption,split\n1000.jpg,a,test\n1001.jpg,b,test\n1002.jpg,c,train\n")
    return [root], (2, 2)


def _sidecars(root):
    for i, name in enumerate("ab"):
        photo(root / f"{name}.jpg", i)
        (root / f"{name}.txt").write_text(f"caption of {name}\n")
    return [root], (2, 2)


FORMATS = {
    "karpathy": lambda root: ([karpathy(root)], (3, 8)),
    "coco-captions": lambda root: ([coco_captions(root)], (3, 8)),
    "caption-list": _caption_list,
    "flickr-csv": _flickr_csv,
    "flickr-pipe": _flickr_pipe,
    "pairs": _pairs,
    "sidecar": _sidecars,
    "webdataset": lambda root: ([webdataset_retrieval(root)], (4, 13)),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_retrieval_in_every_format(clipforge, tiny_clip_spec, tmp_path, fmt):
    data_args, (n_images, n_captions) = FORMATS[fmt](tmp_path)
    code, out, err = clipforge("eval", "retrieval", "--model", tiny_clip_spec, "--data", *data_args, "--json", *FP32)
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"dataset", "model", "task", "metrics", "language", "details"}
    assert result["task"] == "zeroshot_retrieval" and result["model"] == tiny_clip_spec
    assert list(result["metrics"])[:6] == RECALL_KEYS
    assert all(0 <= result["metrics"][k] <= 1 for k in RECALL_KEYS)
    assert (result["details"]["images"], result["details"]["captions"]) == (n_images, n_captions)
    assert f"{n_images} images, {n_captions} captions" in err


@pytest.mark.parametrize("layout", ["imagefolder", "webdataset"])
def test_zeroshot_table(clipforge, tiny_clip_spec, tmp_path, layout):
    if layout == "imagefolder":
        data = image_folder(tmp_path / "d", {"cat": 2, "dog": 1, "bird": 1, "car": 1, "tree": 1})
    else:
        data = webdataset_classification(tmp_path / "d")
    code, out, err = clipforge(
        "eval", "zeroshot", "--model", tiny_clip_spec, "--data", data, "--templates", "openai-imagenet-7", *FP32
    )
    assert code == 0, err
    assert "acc1" in out and "mean_per_class_recall" in out
    acc5_row = next(line for line in out.splitlines() if "acc5" in line)
    assert ("n/a" in acc5_row) == (layout == "webdataset")  # 3 classes there, 5 in the folder
    assert "split 'test'" in err if layout == "webdataset" else "all entries (no splits)" in err


def test_compare(clipforge, tmp_path):
    a = {"dataset": "coco", "model": "hf:a", "task": "zeroshot_retrieval", "language": "en",
         "metrics": {"image_retrieval_recall@1": 0.25, "acc5": float("nan")}}
    b = {"dataset": "coco", "model": "hf:b", "task": "zeroshot_retrieval", "language": "en",
         "metrics": {"image_retrieval_recall@1": 0.5, "image_retrieval_median_rank": 3.0}}
    (tmp_path / "a.json").write_text(json.dumps(a))  # NaN, as CLIP_benchmark writes an undefined acc5
    (tmp_path / "b.json").write_text(json.dumps(b))
    code, out, err = clipforge("eval", "compare", tmp_path / "a.json", tmp_path / "b.json", "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"] == {
        "image_retrieval_recall@1": [0.25, 0.5], "acc5": [None, None], "image_retrieval_median_rank": [None, 3.0],
    }
    code, out, _ = clipforge("eval", "compare", tmp_path / "a.json", tmp_path / "b.json")
    row = next(line for line in out.splitlines() if "image_retrieval_recall@1" in line)
    assert "25.00" in row and "50.00" in row and "+25.00" in row
    code, _, err = clipforge("eval", "compare", tmp_path / "a.json", tmp_path / "missing.json")
    assert code == 3 and "missing.json does not exist" in err


def test_retrieval_from_stored_vectors(clipforge, tiny_clip_spec, tiny_clip_other_dir, tmp_path):
    from clipforge.index.collection import Collection

    path = karpathy(tmp_path / "coco", missing=("d", "e"))  # the train split's images come later
    with Collection.create(tmp_path / "coll", tiny_clip_spec, device="cpu", precision="fp32") as coll:
        coll.add_images([tmp_path / "coco" / "val2014"])
    code, out, err = clipforge("eval", "retrieval", "-c", tmp_path / "coll", "--data", path, "--json", *FP32)
    assert code == 0, err
    stored = json.loads(out)
    assert stored["details"]["collection"] == str(tmp_path / "coll")
    assert stored["model"] == tiny_clip_spec
    code, out, _ = clipforge("eval", "retrieval", "--model", tiny_clip_spec, "--data", path, "--json", *FP32)
    encoded = json.loads(out)
    # Stored vectors are float16: recalls agree, ranks within rounding of each other.
    assert {k: stored["metrics"][k] for k in RECALL_KEYS} == {k: encoded["metrics"][k] for k in RECALL_KEYS}

    code, _, err = clipforge("eval", "retrieval", "-c", tmp_path / "coll", "--model", f"hf:{tiny_clip_other_dir}",
                             "--data", path, *FP32)
    assert code == 5 and "was built with" in err
    photo(tmp_path / "coco" / "val2014" / "d.jpg", 50)
    photo(tmp_path / "coco" / "val2014" / "e.jpg", 51)
    code, _, err = clipforge("eval", "retrieval", "-c", tmp_path / "coll", "--data", path, "--split", "train", *FP32)
    assert code == 3 and "images are not in the collection" in err


def test_zeroshot_classnames_and_template_set(clipforge, tiny_clip_spec, tmp_path):
    data = image_folder(tmp_path / "val", {"cat": 2, "dog": 2})
    (tmp_path / "names.txt").write_text("a cat\na dog\n")
    code, out, err = clipforge("eval", "zeroshot", "--model", tiny_clip_spec, "--data", data, "--classnames",
                               tmp_path / "names.txt", "--templates", "openai-imagenet-7", "--json", *FP32)
    assert code == 0, err
    out = json.loads(out)
    assert out["task"] == "zeroshot_classification" and out["metrics"]["acc5"] is None
    assert out["details"]["templates"] == "openai-imagenet-7"


def test_zeroshot_through_a_text_memory(clipforge, tiny_clip_spec, tmp_path):
    # A memory of the one caption "a dog" reads every image as that text: with the bare
    # class name as the prompt, every image is classified "a dog", so half are right.
    data = image_folder(tmp_path / "val", {"a cat": 2, "a dog": 2})
    (tmp_path / "memory.txt").write_text("a dog\n")
    (tmp_path / "bare.txt").write_text("{}\n")
    plain = ("eval", "zeroshot", "--model", tiny_clip_spec, "--data", data, "--templates", tmp_path / "bare.txt", *FP32)
    args = (*plain, "--json")
    code, out, err = clipforge(*args, "--text-memory", tmp_path / "memory.txt")
    assert code == 0, err
    out = json.loads(out)
    assert out["metrics"]["acc1"] == 0.5 and out["metrics"]["mean_per_class_recall"] == 0.5
    assert out["details"]["text_memory"]["captions"] == 1
    code, table, err = clipforge(*plain, "--text-memory", tmp_path / "memory.txt")
    assert code == 0 and "text_memory=(captions 1 top_k 20" in table, table
    code, out, err = clipforge(*args, "--text-memory", "off")
    assert code == 0 and json.loads(out)["details"]["text_memory"] is None
    code, out, err = clipforge(*args, "--text-memory", tmp_path / "missing.txt")
    assert code == 3 and "neither auto, off nor an existing file" in err and "Traceback" not in err


# --- the installed executable ----------------------------------------------------------


def test_executable_retrieval_writes_json(run_cli, tiny_clip_spec, tmp_path):
    path = karpathy(tmp_path)
    out_file = tmp_path / "results" / "coco.json"
    result = run_cli("eval", "retrieval", "--model", tiny_clip_spec, "--data", path, "--out", out_file, "--json", *FP32)
    assert result.returncode == 0, result
    assert json.loads(out_file.read_text()) == result.json()
    assert result.json()["dataset"] == "dataset_coco.json"
    assert "dataset_coco.json (karpathy), split 'test': 3 images, 8 captions" in result.stderr


def test_executable_bad_input_is_one_line(run_cli, tiny_clip_spec, tmp_path):
    path = karpathy(tmp_path, missing=("c",))
    result = run_cli("eval", "retrieval", "--model", tiny_clip_spec, "--data", path)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        f"clipforge: error: dataset_coco.json: images[2] refers to missing image val2014/c.jpg "
        f"(looked for {tmp_path}/val2014/c.jpg or {tmp_path}/c.jpg)"
    ]
