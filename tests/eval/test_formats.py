"""Reading every dataset format from real files, and a clear error for each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipforge.errors import InputError, NotFoundError
from clipforge.eval import load_classification_dataset, load_retrieval_dataset
from eval_data import (
    coco_captions,
    flickr_images,
    image_folder,
    karpathy,
    photo,
    webdataset_classification,
    webdataset_retrieval,
    write_tar,
)


def _per_image(dataset) -> list[int]:
    return np.bincount(dataset.caption_image, minlength=len(dataset.images)).tolist()


# --- Karpathy JSON ---------------------------------------------------------------------


def test_karpathy_takes_the_test_split_by_default(tmp_path):
    ds = load_retrieval_dataset(karpathy(tmp_path))
    assert (ds.format, ds.split) == ("karpathy", "test")
    assert [Path(r.path).name for r in ds.images] == ["a.jpg", "b.jpg", "c.jpg"]
    assert _per_image(ds) == [5, 1, 2]  # every caption kept, not one per image
    assert ds.captions[:2] == ["a photo of a number 0", "a photo of a number 1"]
    assert ds.captions[5] == "a photo of b number 0"
    assert ds.caption_image.tolist() == [0, 0, 0, 0, 0, 1, 2, 2]
    assert "split 'test': 3 images, 8 captions" in ds.describe()


def test_karpathy_other_split_and_image_root(tmp_path):
    path = karpathy(tmp_path)
    ds = load_retrieval_dataset(path, split="train")
    assert [Path(r.path).name for r in ds.images] == ["d.jpg", "e.jpg"]
    # --images may point at the image folder itself rather than the dataset root
    ds = load_retrieval_dataset(path, images=tmp_path / "val2014")
    assert Path(ds.images[0].path) == tmp_path / "val2014" / "a.jpg"


def test_missing_image_is_named(tmp_path):
    with pytest.raises(NotFoundError, match=r"images\[1\] refers to missing image val2014/b\.jpg"):
        load_retrieval_dataset(karpathy(tmp_path, missing=("b",)))


def test_missing_image_outside_the_split_is_not_an_error(tmp_path):
    # Users download only the images of the split they evaluate.
    ds = load_retrieval_dataset(karpathy(tmp_path, missing=("d", "e", "f")))
    assert len(ds.images) == 3


def test_image_without_captions_is_named(tmp_path):
    with pytest.raises(InputError, match=r"image val2014/c\.jpg \(images\[2\]\) has no captions"):
        load_retrieval_dataset(karpathy(tmp_path, no_captions=("c",)))


def test_empty_split_lists_the_splits_there_are(tmp_path):
    expected = r"split 'val' of dataset_coco\.json is empty; it has: restval \(1\), test \(3\), train \(2\)"
    with pytest.raises(InputError, match=expected):
        load_retrieval_dataset(karpathy(tmp_path), split="val")


# --- COCO captions and caption lists ---------------------------------------------------


def test_coco_caption_annotations(tmp_path):
    ds = load_retrieval_dataset(coco_captions(tmp_path))
    assert (ds.format, ds.split) == ("coco-captions", None)
    assert [Path(r.path).name for r in ds.images] == ["x.jpg", "y.jpg", "z.jpg"]
    assert _per_image(ds) == [2, 1, 5]
    assert ds.captions[:2] == ["caption 0", "caption 4"]


def test_coco_caption_for_unknown_image_and_image_without_caption(tmp_path):
    path = coco_captions(tmp_path)
    doc = json.loads(path.read_text())
    doc["annotations"].append({"id": 99, "image_id": 7, "caption": "orphan"})
    path.write_text(json.dumps(doc))
    with pytest.raises(NotFoundError, match=r"annotations\[8\] refers to missing image id 7"):
        load_retrieval_dataset(path)
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in (1, 3)]
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"image y\.jpg \(images\[1\] \(id 2\)\) has no captions"):
        load_retrieval_dataset(path)


def test_caption_list_json(tmp_path):
    flickr_images(tmp_path / "flickr30k-images")
    doc = [
        {"image": "flickr30k-images/1000.jpg", "caption": ["one", "two", "three", "four", "five"]},
        {"image": "flickr30k-images/1001.jpg", "caption": "just one"},
    ]
    (tmp_path / "flickr30k_test.json").write_text(json.dumps(doc))
    ds = load_retrieval_dataset(tmp_path / "flickr30k_test.json")
    assert (ds.format, _per_image(ds)) == ("caption-list", [5, 1])
    assert ds.captions[-1] == "just one"


# --- Flickr text formats and pair tables -----------------------------------------------


def test_flickr8k_captions_txt(tmp_path):
    flickr_images(tmp_path / "Images")
    (tmp_path / "captions.txt").write_text(
        'image,caption\n1000.jpg,"A dog, brown, runs ."\n1000.jpg,A dog runs\n1001.jpg,A cat\n'
    )
    ds = load_retrieval_dataset(tmp_path / "captions.txt", images=tmp_path / "Images")
    assert (ds.format, ds.split) == ("table", None)
    assert ds.captions == ["A dog, brown, runs .", "A dog runs", "A cat"]
    assert _per_image(ds) == [2, 1]


def test_clip_benchmark_flickr_file_with_unquoted_commas(tmp_path):
    flickr_images(tmp_path)
    (tmp_path / "flickr30k_test_karpathy.txt").write_text(
        'image,caption\n1000.jpg,A man, in a hat, waves .\n1000.jpg,"Hi" says a man\n1001.jpg,"A cat, asleep"\n'
    )
    ds = load_retrieval_dataset(tmp_path / "flickr30k_test_karpathy.txt")
    # The caption is everything after the first comma; only a fully quoted caption is unquoted.
    assert ds.captions == ["A man, in a hat, waves .", '"Hi" says a man', "A cat, asleep"]


def test_table_row_with_an_unquoted_delimiter_is_an_error(tmp_path):
    flickr_images(tmp_path)
    (tmp_path / "pairs.csv").write_text("image,caption,split\n1000.jpg,a dog,test\n1001.jpg,a cat, asleep,test\n")
    with pytest.raises(InputError, match="line 3 does not have the header's 3 fields; quote captions"):
        load_retrieval_dataset(tmp_path)


def test_flickr30k_results_csv_with_pipes(tmp_path):
    flickr_images(tmp_path)
    (tmp_path / "results.csv").write_text(
        "image_name| comment_number| comment\n"
        "1000.jpg| 0| Two young guys .\n"
        "1000.jpg| 1| Two men outside .\n"
        "1001.jpg| 4 A dog runs across the grass .\n"  # the row Kaggle's copy lacks a '|' in
    )
    ds = load_retrieval_dataset(tmp_path / "results.csv")
    assert ds.format == "flickr-pipe"
    assert ds.captions == ["Two young guys .", "Two men outside .", "A dog runs across the grass ."]


def test_flickr8k_token_file(tmp_path):
    flickr_images(tmp_path)
    (tmp_path / "Flickr8k.token.txt").write_text("1000.jpg#0\tA child .\n1000.jpg#1\tA girl .\n1002.jpg#0\tA dog .\n")
    ds = load_retrieval_dataset(tmp_path / "Flickr8k.token.txt")
    assert ds.format == "flickr-token"
    assert [Path(r.path).name for r in ds.images] == ["1000.jpg", "1002.jpg"]
    assert _per_image(ds) == [2, 1]


def test_caption_referring_to_missing_image_names_the_line(tmp_path):
    flickr_images(tmp_path)
    (tmp_path / "captions.txt").write_text("image,caption\n1000.jpg,A dog\n404.jpg,A ghost\n")
    with pytest.raises(NotFoundError, match=r"line 3 refers to missing image 404\.jpg"):
        load_retrieval_dataset(tmp_path / "captions.txt")


def test_empty_caption_names_the_line(tmp_path):
    flickr_images(tmp_path)
    (tmp_path / "captions.txt").write_text("image,caption\n1000.jpg,A dog\n1001.jpg,  \n")
    with pytest.raises(InputError, match=r"line 3: empty caption for image 1001\.jpg"):
        load_retrieval_dataset(tmp_path / "captions.txt")


def test_pairs_folder_with_splits(tmp_path):
    flickr_images(tmp_path / "img")
    (tmp_path / "pairs.csv").write_text(
        "image,caption,split\nimg/1000.jpg,a,train\nimg/1001.jpg,b,test\nimg/1001.jpg,c,test\nimg/1002.jpg,d,test\n"
    )
    ds = load_retrieval_dataset(tmp_path)
    assert (ds.format, ds.split, ds.captions) == ("table", "test", ["b", "c", "d"])
    assert load_retrieval_dataset(tmp_path, split="train").captions == ["a"]
    with pytest.raises(InputError, match=r"split 'val' of .*/pairs\.csv is empty; it has: test \(2\), train \(1\)"):
        load_retrieval_dataset(tmp_path, split="val")


def test_pairs_tsv_without_splits_refuses_a_split(tmp_path):
    flickr_images(tmp_path)
    (tmp_path / "pairs.tsv").write_text("image\tcaption\n1000.jpg\ta, b\n1001.jpg\tc\n")
    ds = load_retrieval_dataset(tmp_path / "pairs.tsv")
    assert (ds.split, ds.captions) == (None, ["a, b", "c"])
    with pytest.raises(InputError, match="has no splits; leave out --split"):
        load_retrieval_dataset(tmp_path / "pairs.tsv", split="test")


def test_pairs_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    flickr_images(tmp_path)
    table = pa.table({"image": ["1000.jpg", "1001.jpg"], "caption": ["a", "b"]})
    pq.write_table(table, tmp_path / "pairs.parquet")
    assert load_retrieval_dataset(tmp_path).captions == ["a", "b"]


def test_table_without_the_needed_columns(tmp_path):
    (tmp_path / "pairs.csv").write_text("file,text_en\nx.jpg,a\n")
    with pytest.raises(InputError, match="needs an image column"):
        load_retrieval_dataset(tmp_path)


def test_sidecar_folder(tmp_path):
    photo(tmp_path / "a.jpg", 0)
    photo(tmp_path / "sub" / "b.png", 1)
    (tmp_path / "a.txt").write_text("first caption\nsecond caption\n")
    (tmp_path / "sub" / "b.txt").write_text("only caption\n")
    ds = load_retrieval_dataset(tmp_path)
    assert (ds.format, _per_image(ds)) == ("sidecar-folder", [2, 1])
    assert ds.captions == ["first caption", "second caption", "only caption"]
    photo(tmp_path / "c.jpg", 2)
    with pytest.raises(InputError, match=r"image c\.jpg \(sidecar c\.txt\) has no captions"):
        load_retrieval_dataset(tmp_path)


# --- CLIP_benchmark webdataset ---------------------------------------------------------


def test_webdataset_retrieval(tmp_path):
    ds = load_retrieval_dataset(webdataset_retrieval(tmp_path))
    assert (ds.format, ds.split, _per_image(ds)) == ("webdataset", "test", [5, 1, 2, 5])
    assert ds.images[2].name == f"{tmp_path}/test/1.tar:s0000002.jpg"
    assert ds.captions[5] == "a photo of sample 1 take 0"
    # one shard on its own
    single = load_retrieval_dataset(tmp_path / "test" / "1.tar")
    assert (single.split, _per_image(single)) == (None, [2, 5])
    with pytest.raises(InputError, match=r"split 'train' of .* is empty \(no shards\); it has: test"):
        load_retrieval_dataset(tmp_path, split="train")


def test_webdataset_sample_without_captions(tmp_path):
    write_tar(tmp_path / "test" / "0.tar", [("s1", {"jpg": b"x", "txt": "a cat"}), ("s2", {"jpg": b"y"})])
    with pytest.raises(InputError, match=r"image s2 \(.*0\.tar:s2\) has no captions"):
        load_retrieval_dataset(tmp_path)


def test_webdataset_missing_shard(tmp_path):
    webdataset_retrieval(tmp_path)
    (tmp_path / "test" / "nshards.txt").write_text("3\n")
    with pytest.raises(NotFoundError, match=r"says 3 shards, but .*2\.tar is missing"):
        load_retrieval_dataset(tmp_path)


def test_webdataset_classification(tmp_path):
    ds = load_classification_dataset(webdataset_classification(tmp_path))
    assert (ds.format, ds.split, ds.classnames) == ("webdataset", "test", ["cat", "dog", "bird"])
    assert ds.labels.tolist() == [0, 1, 2, 1, 0, 2]
    assert ds.templates == ["a photo of a {}.", "a drawing of the {}."]  # CLIP_benchmark's {c} slot converted
    assert [r.member.rsplit(".", 1)[1] for r in ds.images] == ["webp", "png"] * 3


def test_webdataset_template_without_a_slot(tmp_path):
    webdataset_classification(tmp_path)
    (tmp_path / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\na photo.\n")
    with pytest.raises(InputError, match=r"zeroshot_classification_templates\.txt: template 'a photo\.' must contain"):
        load_classification_dataset(tmp_path)


def test_webdataset_label_beyond_the_classnames(tmp_path):
    webdataset_classification(tmp_path, labels=(0, 1, 3), classnames=("cat", "dog", "bird"))
    with pytest.raises(InputError, match=r"sample .*0\.tar:s0000002 has label 3, but .*classnames\.txt has 3 names"):
        load_classification_dataset(tmp_path)


def test_webdataset_classnames_override_must_match_count(tmp_path):
    webdataset_classification(tmp_path)
    (tmp_path / "names.txt").write_text("a cat\na dog\n")
    with pytest.raises(InputError, match=r"classnames file has 2 names but .*classnames\.txt has 3"):
        load_classification_dataset(tmp_path, classnames=tmp_path / "names.txt")


# --- ImageFolder -----------------------------------------------------------------------


def test_image_folder(tmp_path):
    image_folder(tmp_path / "val", {"n02": 2, "n01": 1, "n03": 2})
    ds = load_classification_dataset(tmp_path, split="val")
    assert (ds.format, ds.split, ds.classnames) == ("imagefolder", "val", ["n01", "n02", "n03"])
    assert ds.labels.tolist() == [0, 1, 1, 2, 2]
    # a classnames.txt beside the class folders does not make this a webdataset
    (tmp_path / "val" / "classnames.txt").write_text("tench\ngoldfish\nshark\n")
    assert load_classification_dataset(tmp_path / "val", classnames=tmp_path / "val" / "classnames.txt").classnames == [
        "tench", "goldfish", "shark"
    ]


def test_image_folder_bad_input(tmp_path):
    image_folder(tmp_path / "val", {"cat": 1, "dog": 1})
    image_folder(tmp_path / "train", {"cat": 1, "dog": 1})
    with pytest.raises(InputError, match=r"holds split folders \(train, val\), not classes; choose one with --split"):
        load_classification_dataset(tmp_path)
    (tmp_path / "names.txt").write_text("cat\ndog\nbird\n")
    with pytest.raises(InputError, match=r"classnames file .*names\.txt has 3 names but .*val has 2 class folders"):
        load_classification_dataset(tmp_path / "val", classnames=tmp_path / "names.txt")
    (tmp_path / "val" / "bird").mkdir()
    with pytest.raises(InputError, match="class folder bird has no images"):
        load_classification_dataset(tmp_path, split="val")
    with pytest.raises(InputError, match=r"split 'test' of .* is empty: no folder"):
        load_classification_dataset(tmp_path, split="test")


def test_classnames_with_a_blank_line(tmp_path):
    image_folder(tmp_path / "d", {"a": 1, "b": 1, "c": 1})
    (tmp_path / "names.txt").write_text("x\n\ny\n")
    with pytest.raises(InputError, match="line 2 is blank"):
        load_classification_dataset(tmp_path / "d", classnames=tmp_path / "names.txt")


def test_missing_dataset(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        load_retrieval_dataset(tmp_path / "nope.json")
