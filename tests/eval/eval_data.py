"""Small real datasets on disk, in every format ``clipforge eval`` reads."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path

from PIL import Image

from conftest import make_photo

SIZE = (40, 30)


def photo(path: Path, seed: int) -> Path:
    return make_photo(path, size=SIZE, seed=seed)


def jpeg_bytes(seed: int) -> bytes:
    """The bytes of the JPEG that ``photo(path, seed)`` writes."""
    with tempfile.TemporaryDirectory() as tmp:
        return photo(Path(tmp) / "p.jpg", seed).read_bytes()


def write_tar(path: Path, samples: list[tuple[str, dict[str, bytes | str]]]) -> Path:
    """A webdataset shard: each sample's entries are ``key.ext`` members, in order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, entries in samples:
            for ext, payload in entries.items():
                data = payload.encode() if isinstance(payload, str) else payload
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def karpathy(root: Path, missing: tuple[str, ...] = (), no_captions: tuple[str, ...] = ()) -> Path:
    """dataset_coco.json with images in root/val2014: a, b, c in test (5, 1 and 2 captions),
    d and e in train, f in restval."""
    layout = {"a": ("test", 5), "b": ("test", 1), "c": ("test", 2), "d": ("train", 5), "e": ("train", 5),
              "f": ("restval", 5)}
    images = []
    for seed, (name, (split, count)) in enumerate(layout.items()):
        if name not in missing:
            photo(root / "val2014" / f"{name}.jpg", seed)
        count = 0 if name in no_captions else count
        sentences = [{"raw": f"a photo of {name} number {i}", "tokens": []} for i in range(count)]
        images.append({"filepath": "val2014", "filename": f"{name}.jpg", "split": split, "sentences": sentences})
    path = root / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path


def coco_captions(root: Path) -> Path:
    """captions_val2014.json: images 1, 2, 3 with 2, 1 and 5 captions, annotations interleaved."""
    for seed, name in enumerate(("x", "y", "z")):
        photo(root / f"{name}.jpg", seed)
    doc = {
        "images": [{"id": 1, "file_name": "x.jpg"}, {"id": 2, "file_name": "y.jpg"}, {"id": 3, "file_name": "z.jpg"}],
        "annotations": [{"id": 10 + i, "image_id": image_id, "caption": f"caption {i}"}
                        for i, image_id in enumerate([1, 3, 2, 3, 1, 3, 3, 3])],
    }
    path = root / "captions_val2014.json"
    path.write_text(json.dumps(doc))
    return path


def flickr_images(folder: Path, names=("1000.jpg", "1001.jpg", "1002.jpg")) -> Path:
    for seed, name in enumerate(names):
        photo(folder / name, seed)
    return folder


def image_folder(root: Path, classes: dict[str, int]) -> Path:
    seed = 0
    for name, count in classes.items():
        for i in range(count):
            photo(root / name / f"{i}.jpg", seed)
            seed += 1
    return root


def webdataset_retrieval(root: Path, captions_per_image=(5, 1, 2, 5)) -> Path:
    """root/test/{0,1}.tar with nshards.txt, dataset_type.txt = retrieval."""
    samples = [
        (f"s{i:07d}", {"jpg": jpeg_bytes(i), "txt": "\n".join(f"a photo of sample {i} take {j}" for j in range(n))})
        for i, n in enumerate(captions_per_image)
    ]
    write_tar(root / "test" / "0.tar", samples[:2])
    write_tar(root / "test" / "1.tar", samples[2:])
    (root / "test" / "nshards.txt").write_text("2\n")
    (root / "dataset_type.txt").write_text("retrieval\n")
    return root


def webdataset_classification(root: Path, labels=(0, 1, 2, 1, 0, 2), classnames=("cat", "dog", "bird")) -> Path:
    """root/test/0.tar of (webp or png image, cls) samples plus CLIP_benchmark's metadata."""
    samples = []
    for i, label in enumerate(labels):
        buffer = io.BytesIO()
        Image.open(io.BytesIO(jpeg_bytes(i))).save(buffer, format="PNG" if i % 2 else "WEBP")
        samples.append((f"s{i:07d}", {"png" if i % 2 else "webp": buffer.getvalue(), "cls": f"{label}\n"}))
    write_tar(root / "test" / "0.tar", samples)
    (root / "classnames.txt").write_text("\n".join(classnames) + "\n")
    (root / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\na drawing of the {c}.\n")
    return root
