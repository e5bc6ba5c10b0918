"""The real `clipforge` executable, end to end, in subprocesses."""

import shutil

import pytest

from conftest import make_photo


@pytest.fixture
def indexed(run_cli, photo_dir, tiny_clip_spec):
    result = run_cli("index", photo_dir, "-c", "pics", "--model", tiny_clip_spec, "--json", check=True)
    return result.json()


def test_index_json_counts_and_bare_name_lives_under_home(indexed, clipforge_home, run_cli, photo_dir):
    assert (indexed["encoded"], indexed["reused"], indexed["skipped"]) == (12, 0, 0)
    assert (clipforge_home / "pics" / "collection.sqlite").exists()
    again = run_cli("index", photo_dir, "-c", "pics", "--json", check=True).json()
    assert (again["encoded"], again["unchanged"]) == (0, 12)


def test_collection_given_as_a_path(run_cli, photo_dir, tiny_clip_spec, tmp_path):
    where = tmp_path / "elsewhere" / "coll"
    run_cli("index", photo_dir, "-c", where, "--model", tiny_clip_spec, check=True)
    assert (where / "collection.sqlite").exists()
    info = run_cli("info", "-c", where, "--json", check=True).json()
    assert info["images"] == 12 and info["model"] == tiny_clip_spec


def test_search_text_image_composed_and_image_to_text(indexed, run_cli, photo_dir, tmp_path):
    text = run_cli("search", "-c", "pics", "a dog on a beach", "-k", "3", "--json", check=True).json()
    assert len(text["results"]) == 3 and all(r["path"].startswith(str(photo_dir)) for r in text["results"])
    query = photo_dir / "img_07.jpg"
    image = run_cli("search", "-c", "pics", "--image", query, "-k", "2", "--json", check=True).json()
    assert image["results"][0]["path"] == str(query)
    composed = run_cli("search", "-c", "pics", "--image", query, "--text", "at night", "--weight", "0.4",
                       "--json", check=True).json()
    assert composed["query"]["text_weight"] == 0.4 and len(composed["results"]) == 10
    captions = tmp_path / "captions.csv"
    captions.write_text("text,source\na dog,x\na cat,y\n")
    added = run_cli("index-texts", captions, "-c", "pics", "--json", check=True).json()
    assert added["encoded"] == 2
    to_text = run_cli("search", "-c", "pics", "--image", query, "--target", "text", "--json", check=True).json()
    assert {r["text"] for r in to_text["results"]} == {"a dog", "a cat"}
    assert {r["metadata"]["source"] for r in to_text["results"]} == {"x", "y"}
    human = run_cli("search", "-c", "pics", "a dog", "-k", "2", check=True)
    assert str(photo_dir) in human.stdout


def test_info_lists_skipped_files_with_reasons(run_cli, photo_dir, tiny_clip_spec):
    (photo_dir / "zero.jpg").write_bytes(b"")
    data = (photo_dir / "img_00.jpg").read_bytes()
    (photo_dir / "half.jpg").write_bytes(data[: len(data) // 2])
    indexed = run_cli("index", photo_dir, "-c", "pics", "--model", tiny_clip_spec, "--json", check=True).json()
    assert indexed["skipped"] == 2 and indexed["encoded"] == 12
    info = run_cli("info", "-c", "pics", "--json", check=True).json()
    assert {e["path"].rsplit("/", 1)[1]: e["reason"] for e in info["skipped_files"]}["zero.jpg"] == "empty file"
    human = run_cli("info", "-c", "pics", check=True).stdout
    assert "half.jpg" in human and "12 images" in human


def test_a_retrained_model_is_reported_and_refused(run_cli, photo_dir, tiny_clip_dir, tiny_clip_other_dir, tmp_path):
    model = tmp_path / "final"
    shutil.copytree(tiny_clip_dir, model)
    run_cli("index", photo_dir, "-c", "pics", "--model", f"hf:{model}", check=True)
    before = run_cli("info", "-c", "pics", "--json", check=True).json()
    assert before["model_fingerprint"].startswith("sha256:") and before["model_changed"] is False
    shutil.rmtree(model)
    shutil.copytree(tiny_clip_other_dir, model)  # retrained: same spec, same shapes
    after = run_cli("info", "-c", "pics", check=True).stdout
    assert "have changed since this collection was built" in after
    refused = run_cli("search", "-c", "pics", "a dog")
    assert refused.returncode != 0
    assert "weights of hf:" in refused.stderr and "have changed" in refused.stderr
    assert "Traceback" not in refused.stderr
    shutil.rmtree(model)  # the model gone: info still answers, search says why in one line
    gone = run_cli("info", "-c", "pics", "--json", check=True).json()
    assert gone["model_changed"] is None and gone["images"] == 12
    refused = run_cli("search", "-c", "pics", "a dog")
    assert refused.returncode != 0 and "does not exist" in refused.stderr and "Traceback" not in refused.stderr


def test_classify(run_cli, photo_dir, tiny_clip_spec, tmp_path):
    result = run_cli("classify", photo_dir / "img_01.jpg", photo_dir / "img_02.jpg", "--labels", "cat,dog,bird",
                     "--model", tiny_clip_spec, "--json", check=True).json()
    assert len(result["results"]) == 2
    probs = [p["probability"] for p in result["results"][0]["predictions"]]
    assert sorted(probs, reverse=True) == probs and sum(probs) == pytest.approx(1, abs=1e-4)
    templates = tmp_path / "t.txt"
    templates.write_text("# mine\na photo of a {}.\n{} in the wild\n")
    custom = run_cli("classify", photo_dir / "img_01.jpg", "--labels", "cat,dog", "--templates", templates,
                     "--model", tiny_clip_spec, "--json", check=True).json()
    assert custom["templates"] == 2
    bad = tmp_path / "bad.txt"
    bad.write_text("a photo with no slot\n")
    refused = run_cli("classify", photo_dir / "img_01.jpg", "--labels", "cat,dog", "--templates", bad,
                      "--model", tiny_clip_spec)
    assert refused.returncode != 0 and "{}" in refused.stderr
    memory = tmp_path / "memory.txt"
    memory.write_text("a dog\n")
    bare = tmp_path / "bare.txt"
    bare.write_text("{}\n")
    through = run_cli("classify", photo_dir / "img_01.jpg", "--labels", "a cat,a dog", "--templates", bare,
                      "--text-memory", memory, "--model", tiny_clip_spec, "--json", check=True).json()
    assert through["text_memory"]["captions"] == 1 and custom["text_memory"] is None
    assert through["results"][0]["predictions"][0]["label"] == "a dog"


def one_line_error(result, *fragments):
    assert result.returncode != 0, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result
    assert len(lines) <= 3, result  # click usage errors add a usage and a hint line
    for fragment in fragments:
        assert fragment in result.stderr, result


def test_bad_input_gets_one_clear_line(run_cli, indexed, photo_dir, tmp_path, tiny_clip_spec, tiny_clip_other_dir):
    one_line_error(run_cli("index", tmp_path / "nope", "-c", "x", "--model", tiny_clip_spec), "does not exist")
    (tmp_path / "empty").mkdir()
    one_line_error(run_cli("index", tmp_path / "empty", "-c", "x", "--model", tiny_clip_spec), "no image files")
    one_line_error(run_cli("search", "-c", "missing", "dog"), "no collection 'missing'")
    one_line_error(run_cli("search", "-c", "pics", ""), "empty query")
    one_line_error(run_cli("search", "-c", "pics", "dog", "-k", "0"), "-k")
    one_line_error(run_cli("search", "-c", "pics", "dog", "-k", "-2"), "-k")
    one_line_error(run_cli("index", photo_dir, "-c", "y", "--model", f"hf:{tmp_path}"), "not a model directory")
    one_line_error(run_cli("index", photo_dir, "-c", "y", "--model", "nonsense"), "bad model spec")
    one_line_error(run_cli("index", photo_dir, "-c", "pics", "--model", f"hf:{tiny_clip_other_dir}"), "was built with")
    one_line_error(run_cli("search", "-c", "pics", "--image", tmp_path / "no.jpg"), "does not exist")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    one_line_error(run_cli("search", "-c", "pics", "--image", broken), "broken.jpg")
    (tmp_path / "folder.jpg").mkdir()
    one_line_error(run_cli("index", tmp_path / "folder.jpg", "-c", "pics"), "folder.jpg")
    dangling = tmp_path / "dangling.jpg"
    dangling.symlink_to(tmp_path / "gone.jpg")
    one_line_error(run_cli("index", dangling, "-c", "pics"), "dangling.jpg")


def test_offline_hub_spec_says_how_to_use_a_local_dir(run_cli, photo_dir):
    result = run_cli("index", photo_dir, "-c", "hub", "--model", "hf:no-such-org/no-such-model")
    one_line_error(result, "hf:/path/to/model-dir")


def test_help_lists_every_command(run_cli):
    out = run_cli("--help", check=True).stdout
    for command in ("index", "index-texts", "search", "classify", "info"):
        assert command in out


def test_moved_file_via_cli(run_cli, indexed, photo_dir):
    shutil.move(photo_dir / "img_05.jpg", photo_dir / "nested" / "img_05_moved.jpg")
    make_photo(photo_dir / "brand_new.jpg", seed=4242)
    result = run_cli("index", photo_dir, "-c", "pics", "--json", check=True).json()
    assert (result["encoded"], result["reused"], result["removed"], result["unchanged"]) == (1, 1, 1, 11)


@pytest.mark.parametrize("command, source", [
    ("index", "table.csv --image-column nope"),
    ("index", "shard.tar"),
    ("index-texts", "texts.csv --text-column nope"),
])
def test_a_refused_command_leaves_no_new_collection(run_cli, tiny_clip_spec, tmp_path, command, source):
    (tmp_path / "table.csv").write_text("image,caption\na.jpg,a cat\n")
    (tmp_path / "shard.tar").write_bytes(b"not a tar file")
    (tmp_path / "texts.csv").write_text("text\na cat\n")
    name, *options = source.split()
    refused = run_cli(command, tmp_path / name, *options, "-c", "fresh", "--model", tiny_clip_spec)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused
    missing = run_cli("info", "-c", "fresh")
    assert missing.returncode == 3 and "no collection 'fresh'" in missing.stderr, missing


def test_a_refused_command_removes_only_what_it_made_in_a_folder_it_was_given(run_cli, tiny_clip_spec, tmp_path):
    (tmp_path / "table.csv").write_text("image,caption\na.jpg,a cat\n")
    folder = tmp_path / "theirs"
    (folder / "keep").mkdir(parents=True)
    (folder / "thesis.txt").write_text("years of work")
    (folder / "keep" / "notes.txt").write_text("more")
    refused = run_cli("index", tmp_path / "table.csv", "--image-column", "nope", "-c", f"{folder}/",
                      "--model", tiny_clip_spec)
    assert refused.returncode == 2, refused
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["keep", "keep/notes.txt",
                                                                                   "thesis.txt"]
