"""course_utils.rehearsal: the stand-in real-mode cache (random weights as openai ships them, synthetic CIFAR-100).

One ViT-B/32 archive is built per module (through write_rehearsal_cache) and shared; the rest uses a tiny CLIP."""
import copy
import io
import json
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from course_utils import assets, data, env, models, rehearsal

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit", "ignore:'torch.load' received a zip file")

clip = models.clip
OPENAI_SCALARS = {"input_resolution", "context_length", "vocab_size"}  # extra tensors in openai's archives


def tiny_clip(seed=0):
    """A clip.model.CLIP small enough to trace in a blink; clip.model.build_model infers the same shapes back."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return clip.model.CLIP(embed_dim=32, image_resolution=32, vision_layers=2, vision_width=64,
                               vision_patch_size=16, context_length=77, vocab_size=49408, transformer_width=64,
                               transformer_heads=1, transformer_layers=2).eval()


def fp16_dtypes(model):
    """{key: dtype} of model's state dict after clip.model.convert_weights (on a copy): what openai's files hold."""
    half = copy.deepcopy(model)
    clip.model.convert_weights(half)
    return {k: v.dtype for k, v in half.state_dict().items()}


@pytest.fixture(scope="module")
def rehearsal_cache(tmp_path_factory):
    """write_rehearsal_cache for ViT-B/32 and CIFAR (no ViT-B/16: one trace is enough), built once."""
    folder = tmp_path_factory.mktemp("rehearsal")
    variables = rehearsal.write_rehearsal_cache(folder, models=("ViT-B/32",), n_test=300)
    return folder, variables


@pytest.fixture(scope="module")
def vit_b32():
    """The fp32 model the cache's ViT-B-32.pt was made from (models.build is seeded)."""
    return models.build("ViT-B/32", 0).eval()


# ---- save_openai_archive -------------------------------------------------------------------------------------

def test_archive_is_torchscript_with_openai_keys_and_dtypes(rehearsal_cache, vit_b32):
    folder, _ = rehearsal_cache
    path = folder / "ViT-B-32.pt"
    with pytest.raises(Exception):  # what models.load_clip relies on to hand the file to clip.load
        torch.load(path, map_location="cpu", weights_only=True)
    archive = torch.jit.load(str(path), map_location="cpu")
    assert all(hasattr(archive, m) for m in ("encode_image", "encode_text"))
    sd = archive.state_dict()
    assert set(sd) == set(vit_b32.state_dict()) | OPENAI_SCALARS
    assert {k: int(sd[k]) for k in OPENAI_SCALARS} == {"input_resolution": 224, "context_length": 77,
                                                        "vocab_size": 49408}
    want = fp16_dtypes(vit_b32)
    assert {k: sd[k].dtype for k in want} == want
    assert sd["visual.conv1.weight"].dtype == sd["visual.proj"].dtype == torch.float16
    assert sd["visual.transformer.resblocks.0.attn.in_proj_weight"].dtype == torch.float16
    assert sd["visual.ln_pre.weight"].dtype == torch.float32  # convert_weights leaves layer norms in fp32
    # the values are the model's, rounded to fp16
    torch.testing.assert_close(sd["visual.proj"].float(), vit_b32.visual.proj.detach().half().float())


def test_load_clip_reads_the_archive_and_matches_the_original(rehearsal_cache, vit_b32):
    folder, _ = rehearsal_cache
    loaded, preprocess = models.load_clip(str(folder / "ViT-B-32.pt"), device="cpu")
    assert loaded.visual.input_resolution == 224 and loaded.dtype == torch.float32  # clip.load floats it on CPU
    image = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = vit_b32.encode_image(image), loaded.encode_image(image)
    # weights rounded to fp16 (relative error ~5e-4 each) through 12 blocks: agreement to about 1e-3 of the scale
    assert torch.nn.functional.cosine_similarity(got, want).item() > 0.9999
    assert (got - want).abs().max().item() < 1e-2 * want.abs().max().item()



@pytest.mark.parametrize("archive", [True, False], ids=["torchscript-archive", "state-dict"])
def test_models_are_float32_on_every_device_not_only_the_cpu(archive, rehearsal_cache, tmp_path):
    """clip.load keeps fp16 weights off the CPU; on Colab that broke notebook 03's 1e-4 check (seen on an H200).

    The meta device stands in for a GPU: clip.load only floats a model when the device is "cpu".
    """
    folder, _ = rehearsal_cache
    path = folder / "ViT-B-32.pt"
    if not archive:
        path = tmp_path / "sd.pt"
        torch.save(torch.jit.load(str(folder / "ViT-B-32.pt"), map_location="cpu").state_dict(), path)
    model, _, _ = models._load_checkpoint(path, torch.device("meta"))
    assert model.visual.proj.device.type == "meta"
    assert {p.dtype for p in model.parameters()} == {torch.float32}

def test_save_openai_archive_round_trips_through_clip_load_and_leaves_the_model_alone(tmp_path):
    model = tiny_clip()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = rehearsal.save_openai_archive(model, tmp_path / "tiny.pt")
    assert path == tmp_path / "tiny.pt" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]  # no temporary left behind
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
    assert all(v.dtype == torch.float32 for v in after.values())
    assert model.context_length == 77 and isinstance(model.context_length, int)

    loaded, _ = clip.load(str(path), device="cpu", jit=False)
    assert {k: v.dtype for k, v in torch.jit.load(str(path)).state_dict().items() if k not in OPENAI_SCALARS} \
        == fp16_dtypes(model)
    image = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    text = clip.tokenize(["a red square", "a blue circle"])
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(image), model.encode_image(image), atol=2e-2, rtol=1e-2)
        torch.testing.assert_close(loaded.encode_text(text), model.encode_text(text), atol=2e-2, rtol=1e-2)


# ---- build_cifar100_archive ----------------------------------------------------------------------------------

def extract(archive, root):
    """Unpack like the course's loader does (tarfile's "data" filter)."""
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(root, filter="data")


def read_members(path):
    with tarfile.open(path, "r:gz") as tar:
        names = tar.getnames()
        pickles = {n.rsplit("/", 1)[1]: pickle.load(io.BytesIO(tar.extractfile(n).read()), encoding="latin1")
                   for n in names if tar.getmember(n).isfile()}
    return names, pickles


def test_class_names_are_cifar100s_in_its_order():
    fine, coarse = rehearsal.FINE_LABEL_NAMES, rehearsal.COARSE_LABEL_NAMES
    assert len(fine) == len(set(fine)) == 100 and len(coarse) == 20
    # spot checks against CIFAR-100's meta file (torchvision's CIFAR100().classes)
    assert fine[:6] == ["apple", "aquarium_fish", "baby", "bear", "beaver", "bed"]
    assert fine[48:50] == ["motorcycle", "mountain"] and fine[-1] == "worm" and fine.index("man") == 46
    assert coarse[:3] == ["aquatic_mammals", "fish", "flowers"] and coarse[-2:] == ["vehicles_1", "vehicles_2"]
    assert coarse == list(data.CIFAR100_SUPERCLASSES)  # the dataset page lists them in label order too


def test_cifar_archive_has_cifar100s_python_format(tmp_path):
    path = rehearsal.build_cifar100_archive(tmp_path / "c.tar.gz", n_train=100, n_test=250, seed=3)
    names, pickles = read_members(path)
    assert set(names) == {"cifar-100-python", "cifar-100-python/train", "cifar-100-python/test",
                          "cifar-100-python/meta"}
    meta = pickles["meta"]
    assert meta["fine_label_names"] == rehearsal.FINE_LABEL_NAMES
    assert meta["coarse_label_names"] == rehearsal.COARSE_LABEL_NAMES
    for split, n in (("train", 100), ("test", 250)):
        batch = pickles[split]
        assert set(batch) == {"filenames", "batch_label", "fine_labels", "coarse_labels", "data"}
        assert batch["data"].dtype == np.uint8 and batch["data"].shape == (n, 3072)
        assert batch["fine_labels"] == [i % 100 for i in range(n)] and len(batch["filenames"]) == n
        for fine, coarse in zip(batch["fine_labels"], batch["coarse_labels"]):
            assert meta["fine_label_names"][fine] in data.CIFAR100_SUPERCLASSES[meta["coarse_label_names"][coarse]]
        pictures = batch["data"].reshape(n, 3, 32, 32)
        assert pictures.std(axis=(0, 2, 3)).min() > 20  # colourful, not blank
        assert len({p.tobytes() for p in pictures}) == n  # every picture its own
        # smooth: neighbouring pixels differ far less than random pixels would
        assert np.abs(np.diff(pictures.astype(int), axis=3)).mean() < 10
    # the same seed gives the same bytes; picture i does not depend on how many there are; another seed differs
    again = rehearsal.build_cifar100_archive(tmp_path / "again.tar.gz", n_train=100, n_test=250, seed=3)
    assert assets.sha256_of(again) == assets.sha256_of(path)
    fewer = read_members(rehearsal.build_cifar100_archive(tmp_path / "fewer.tar.gz", n_train=5, n_test=7, seed=3))[1]
    assert np.array_equal(fewer["test"]["data"], pickles["test"]["data"][:7])
    other = read_members(rehearsal.build_cifar100_archive(tmp_path / "other.tar.gz", n_train=5, n_test=7, seed=4))[1]
    assert not np.array_equal(other["test"]["data"], fewer["test"]["data"])


def test_torchvision_cifar100_reads_the_archive(tmp_path):
    from torchvision.datasets import CIFAR100

    class SyntheticCIFAR100(CIFAR100):
        """torchvision's reader minus its md5 checks (which a synthetic archive fails by design)."""

        def _check_integrity(self):
            return True

        def _load_meta(self):
            with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    path = rehearsal.build_cifar100_archive(tmp_path / "cifar-100-python.tar.gz", n_train=100, n_test=120)
    extract(path, tmp_path)
    test, train = SyntheticCIFAR100(str(tmp_path), train=False), SyntheticCIFAR100(str(tmp_path), train=True)
    assert (len(test), len(train)) == (120, 100)
    assert test.classes == rehearsal.FINE_LABEL_NAMES
    for i in (0, 57, 119):
        image, label = test[i]
        assert image.size == (32, 32) and image.mode == "RGB"
        assert type(label) is int and label == i % 100
    # HWC pictures as torchvision builds them == the pickled rows read channel-first
    rows = read_members(path)[1]["test"]["data"]
    assert np.array_equal(np.asarray(test[5][0]), rows[5].reshape(3, 32, 32).transpose(1, 2, 0))
    names, groups = data.superclasses(test)  # the course's superclass lookup accepts it
    assert len(names) == 20 and groups.shape == (100,)


# ---- write_rehearsal_cache and the CLI -----------------------------------------------------------------------

def test_write_rehearsal_cache_files_and_checksums(rehearsal_cache):
    folder, variables = rehearsal_cache
    assert variables == {"COURSE_CACHE": str(folder.resolve()),
                         "COURSE_ASSETS": str(folder.resolve() / "rehearsal_assets.json")}
    table = json.loads((folder / "rehearsal_assets.json").read_text())
    assert set(table) == {"ViT-B/32", "cifar-100-python"}
    for name, entry in table.items():
        path = folder / assets.REGISTRY[name].filename
        assert path.is_file() and entry["sha256"] == assets.sha256_of(path)
        assert "real-mode rehearsal" in entry["note"]
        assert entry["sha256"] != assets.REGISTRY[name].sha256
    assert sorted(p.name for p in folder.iterdir()) == ["ViT-B-32.pt", "cifar-100-python.tar.gz",
                                                         "rehearsal_assets.json"]
    assert read_members(folder / "cifar-100-python.tar.gz")[1]["test"]["data"].shape == (300, 3072)


def test_obtain_takes_the_rehearsal_files_from_the_cache_without_the_network(rehearsal_cache, monkeypatch):
    folder, variables = rehearsal_cache
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("obtain() went to the network for a cached, matching file")

    monkeypatch.setattr(env, "_network_reachable", no_network)
    monkeypatch.setattr(assets, "_download", no_network)
    for name in ("ViT-B/32", "cifar-100-python"):
        path, provenance = assets.obtain(name)
        assert path == folder.resolve() / assets.REGISTRY[name].filename
        assert (provenance.real, provenance.origin, provenance.verified) == (True, "cache", False)
        assert "COURSE_ASSETS" in provenance.detail and "rehearsal" in provenance.detail


def test_a_second_call_and_the_cli_rebuild_nothing(rehearsal_cache, capsys):
    folder, variables = rehearsal_cache
    files = [folder / "ViT-B-32.pt", folder / "cifar-100-python.tar.gz"]
    stamps = [p.stat().st_mtime_ns for p in files]
    assert rehearsal.write_rehearsal_cache(folder, models=("ViT-B/32",), n_test=300) == variables
    assert rehearsal.main([str(folder), "--models", "ViT-B/32", "--n-test", "300"]) == 0
    assert [p.stat().st_mtime_ns for p in files] == stamps
    out = capsys.readouterr().out
    assert "built" not in out and out.count("kept") == 2
    assert f"export COURSE_CACHE={folder.resolve()}" in out
    assert f"export COURSE_ASSETS={folder.resolve() / 'rehearsal_assets.json'}" in out


def test_a_changed_recipe_rebuilds_only_what_changed(tmp_path):
    """CIFAR only (models=()): a new n_test rebuilds the archive and drops the old unpacked copy."""
    rehearsal.write_rehearsal_cache(tmp_path, models=(), n_test=10)
    archive = tmp_path / "cifar-100-python.tar.gz"
    extract(archive, tmp_path)
    rehearsal.write_rehearsal_cache(tmp_path, models=(), n_test=20)
    assert not (tmp_path / "cifar-100-python").exists()
    assert read_members(archive)[1]["test"]["data"].shape == (20, 3072)
    table = json.loads((tmp_path / "rehearsal_assets.json").read_text())
    assert table["cifar-100-python"]["sha256"] == assets.sha256_of(archive)


def test_files_it_did_not_write_are_never_overwritten(tmp_path):
    (tmp_path / "ViT-B-32.pt").write_bytes(b"an instructor's own checkpoint")
    with pytest.raises(ValueError, match="not written by a rehearsal"):
        rehearsal.write_rehearsal_cache(tmp_path, models=("ViT-B/32",))
    assert (tmp_path / "ViT-B-32.pt").read_bytes() == b"an instructor's own checkpoint"
    assert not (tmp_path / "rehearsal_assets.json").exists()
    with pytest.raises(ValueError, match="openai"):
        rehearsal.write_rehearsal_cache(tmp_path / "other", models=("RN50",))
