"""Denoiser cards: schema, the three ways in, and every refusal."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cards import LoadedDenoiser, load_denoiser, model_sha256, read_card
from bench.errors import InputError
from edm_core import EDMConfig, EDMDenoiser, save_checkpoint
from edm_core.onnx_backend import export_onnx
from tests.reliability import MALFORMED, NO_CONSENT, tally

TINY = EDMConfig(nf=16, n_layers=2)


def card(kind: str, **model) -> dict:
    return {
        "key": "tiny-test", "name": "tiny test denoiser", "version": "0.0.1",
        "model": {"kind": kind, **model},
        "diffusion": {"timesteps": 1000, "schedule": "polynomial_2", "precision": 1e-5},
        "relaxation": {"n_steps": [20, 50]},
        "training": {"datasets": [{"name": "toy", "split": "train", "level_of_theory": "none"}], "epochs": 0},
    }


def write(path, doc) -> str:
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(0)
    model = EDMDenoiser(TINY).eval()
    save_checkpoint(model, tmp_path / "ckpt")
    export_onnx(model, tmp_path / "tiny.onnx")
    return model


class EntryPoint:
    """A Python-object denoiser: the reference network of a seeded tiny model."""

    config = TINY
    _model = None

    @classmethod
    def predict_noise(cls, z, t, node_mask):
        if cls._model is None:
            torch.manual_seed(0)
            cls._model = EDMDenoiser(TINY).eval()
        return cls._model.model.dynamics(z, t, node_mask)


ENTRY = EntryPoint


def relaxed(model, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    mols = [(np.array([6, 1, 1, 1, 1]), rng.normal(scale=0.8, size=(5, 3)))]
    model = model.model if isinstance(model, LoadedDenoiser) else model
    return model.relax(mols, 10, seed=1).positions[0]


def test_the_three_ways_in_give_the_same_denoiser(tmp_path, tiny):
    sha = model_sha256(tmp_path / "ckpt")
    a = load_denoiser(write(tmp_path / "a.yml", card("edm-checkpoint", path="ckpt", sha256=sha)), backend="torch")
    b = load_denoiser(write(tmp_path / "b.yml", card("onnx", path="tiny.onnx")))
    c = load_denoiser(write(tmp_path / "c.yml", card("entry-point", entry_point="tests.bench.test_cards:ENTRY")),
                      trust_code=True)
    ref = relaxed(tiny)
    for model in (a, b, c):
        np.testing.assert_allclose(relaxed(model), ref, atol=1e-4)
    assert a.card["key"] == "tiny-test"


def test_outside_networks_refuse_training_and_other_backends(tmp_path, tiny):
    b = load_denoiser(write(tmp_path / "b.yml", card("onnx", path="tiny.onnx"))).model
    x, one_hot, charges, mask = b.pack([(np.array([6, 1]), np.array([[0, 0, 0], [1.1, 0, 0]]))])
    z = b.normalize(x, one_hot, charges, mask)
    with pytest.raises(RuntimeError, match="no torch network"):
        b.model.predict_noise(z, torch.tensor([[0.5]]), mask)  # grad enabled: would need the torch network
    with pytest.raises(ValueError, match="runs through ONNX file"):
        b.use_backend("cpp")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(colour="blue"), "Additional properties are not allowed \\('colour'"),
        (lambda d: d["model"].update(kind="pickle"), "model/kind"),
        (lambda d: d.pop("training"), "'training' is a required property"),
        (lambda d: d["model"].pop("path"), "needs model.path"),
        (lambda d: d["relaxation"].update(n_steps=[0]), "relaxation/n_steps/0"),
    ],
)
def test_schema_violations_are_listed(tmp_path, mutate, message):
    doc = card("edm-checkpoint", path="ckpt")
    mutate(doc)
    with pytest.raises(InputError, match=message):
        read_card(write(tmp_path / "bad.yml", doc))


def test_paths_shas_signatures_and_entry_points_are_checked(tmp_path, tiny):
    (tmp_path / "cards").mkdir()
    with pytest.raises(InputError, match="leaves the card's folder"):
        load_denoiser(write(tmp_path / "cards" / "x.yml", card("edm-checkpoint", path="../ckpt")))
    assert load_denoiser(write(tmp_path / "cards" / "x.yml", card("edm-checkpoint", path="../ckpt")),
                         allow_outside=True, backend="torch") is not None
    with pytest.raises(InputError, match="does not exist"):
        load_denoiser(write(tmp_path / "m.yml", card("edm-checkpoint", path="missing")))
    with pytest.raises(InputError, match="sha256 .* does not match"):
        load_denoiser(write(tmp_path / "s.yml", card("edm-checkpoint", path="ckpt", sha256="0" * 64)))
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a loadable ONNX model"):
        load_denoiser(write(tmp_path / "o.yml", card("onnx", path="junk.onnx")))
    with pytest.raises(InputError, match="entry point 'tests.bench.test_cards:NOPE' not found"):
        load_denoiser(write(tmp_path / "e.yml", card("entry-point", entry_point="tests.bench.test_cards:NOPE")),
                      trust_code=True)
    with pytest.raises(InputError, match="must have `config`"):
        load_denoiser(write(tmp_path / "e.yml", card("entry-point", entry_point="tests.bench.test_cards:card")),
                      trust_code=True)
    doc = card("edm-checkpoint", path="ckpt")
    doc["diffusion"]["timesteps"] = 500
    with pytest.raises(InputError, match="card says T=500"):
        load_denoiser(write(tmp_path / "t.yml", doc), backend="torch")


def test_training_writes_a_valid_card_beside_each_checkpoint(tmp_path):
    from bench.build import build_dataset
    from bench.cli import app
    from typer.testing import CliRunner

    (tmp_path / "in.smi").write_text("C\nO\nN\nCC\nCO\nCN\nOO\nC=C\nC#N\nC=O\n")
    build_dataset("qm9-xtb", out_dir=tmp_path / "set", smiles_path=tmp_path / "in.smi", workers=1,
                  progress=False)
    result = CliRunner().invoke(app, ["train", "--dataset", str(tmp_path / "set"), "--out", str(tmp_path / "t"),
                                      "--epochs", "2", "--nf", "8", "--n-layers", "1", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    card = read_card(tmp_path / "t" / "epoch_0002" / "card.yml")
    assert card["key"] == "t-e0002" and card["training"]["epochs"] == 2
    assert card["training"]["datasets"][0]["name"] == str(tmp_path / "set")
    model = load_denoiser(tmp_path / "t" / "epoch_0002" / "card.yml", backend="torch").model
    assert model.n_parameters == card["training"]["n_parameters"]


def test_no_path_form_leaves_the_cards_folder_unless_allowed(tmp_path, tiny):
    """Parent steps, absolute paths and symbolic links out of the folder are refused alike."""
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "inside").symlink_to(tmp_path / "ckpt")  # a link to a folder outside
    (cards / "own").mkdir()
    escapes = ["../ckpt", str(tmp_path / "ckpt"), "inside", "own/../../ckpt", "./../ckpt", "//etc/passwd"]
    for path in escapes:
        with pytest.raises(InputError, match=rf"model\.path '{re.escape(path)}' leaves the card's folder"):
            load_denoiser(write(cards / "x.yml", card("edm-checkpoint", path=path)))
    absolute = write(cards / "abs.yml", card("edm-checkpoint", path=str(tmp_path / "ckpt")))
    assert load_denoiser(absolute, allow_outside=True, backend="torch") is not None


def test_the_shipped_card_is_found_from_anywhere_or_refused_clearly(tmp_path, monkeypatch):
    import bench.cards as cards

    monkeypatch.chdir(tmp_path)  # not the checkout: found through the package's root
    found = cards.shipped_card()
    assert found.is_file() and found.name == "card.yml"
    cards.load_denoiser(found)
    # the same weights with the deterministic sampler ride along when shipped
    both = cards.shipped_cards()
    assert both[0] == found and both[1].name == "card-deterministic.yml"
    root = found.parents[len(cards.DEFAULT_CARD.parts) - 1]
    assert both[2:] == [root / p for p in cards.SHIPPED_FAMILY_CARDS if (root / p).is_file()]  # the other families
    # a DRUGS run takes the DRUGS family's cards that are shipped, never the QM9 ones
    drugs = cards.shipped_cards("drugs-xtb")
    assert drugs == [root / p for p in cards.SHIPPED_CARDS_BY_DATASET["drugs-xtb"] if (root / p).is_file()]
    deterministic, ancestral = cards.read_card(both[1]), cards.read_card(found)
    assert deterministic["relaxation"]["noise_scale"] == 0 and deterministic["model"] == ancestral["model"]
    monkeypatch.setattr(cards, "DEFAULT_CARD", Path("denoisers/none/card.yml"))
    with pytest.raises(InputError, match="denoisers/none/card.yml is not in this checkout"):
        cards.shipped_card()


def test_an_entry_point_runs_only_with_consent(tmp_path, monkeypatch):
    """Importing an entry point's module runs its code: refused without trust_code,
    and a module that exits on import is an error of that card, not the end of the run."""
    import sys

    module = tmp_path / "exits_on_import.py"
    marker = tmp_path / "ran"
    module.write_text(f"import pathlib, sys\npathlib.Path({str(marker)!r}).write_text('ran')\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(tmp_path / "e.yml", card("entry-point", entry_point="exits_on_import:NET"))
    with pytest.raises(InputError, match="pass --trust-code"):
        load_denoiser(path)
    assert not marker.exists()  # nothing was imported
    tally(NO_CONSENT)
    with pytest.raises(InputError, match="importing entry point .* failed \\(SystemExit"):
        load_denoiser(path, trust_code=True)
    assert marker.exists()
    sys.modules.pop("exits_on_import", None)


def test_a_link_inside_the_checkpoint_folder_may_not_point_outside_it(tmp_path, tiny):
    import shutil

    (tmp_path / "cards" / "ckpt").mkdir(parents=True)
    shutil.copy(tmp_path / "ckpt" / "config.json", tmp_path / "cards" / "ckpt" / "config.json")
    (tmp_path / "cards" / "ckpt" / "model.safetensors").symlink_to(tmp_path / "ckpt" / "model.safetensors")
    with pytest.raises(InputError, match="is a link to .* outside the card's folder"):
        load_denoiser(write(tmp_path / "cards" / "x.yml", card("edm-checkpoint", path="ckpt")))


def test_the_sha256_covers_the_config_beside_the_weights(tmp_path, tiny):
    import json

    sha = model_sha256(tmp_path / "ckpt")
    assert load_denoiser(write(tmp_path / "a.yml", card("edm-checkpoint", path="ckpt", sha256=sha)), backend="torch")
    config = tmp_path / "ckpt" / "config.json"
    doc = json.loads(config.read_text())
    doc["config"]["norm_constant"] = 2.0  # changes the numbers, not the weights
    config.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="sha256 .* does not match"):
        load_denoiser(write(tmp_path / "a.yml", card("edm-checkpoint", path="ckpt", sha256=sha)))


def test_an_aliased_oversized_or_non_regular_card_is_refused_before_parsing(tmp_path):
    from bench.cards import MAX_CARD_BYTES

    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
    (tmp_path / "laughs.yml").write_text(laughs)
    with pytest.raises(InputError, match=r"YAML aliases \(\*name\) are not allowed"):
        read_card(tmp_path / "laughs.yml")
    doc = card("edm-checkpoint", path="ckpt")
    doc["name"] = "x" * MAX_CARD_BYTES
    with pytest.raises(InputError, match=f"more than the {MAX_CARD_BYTES} a card may have"):
        read_card(write(tmp_path / "big.yml", doc))
    (tmp_path / "dev.yml").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="not a regular file"):
        read_card(tmp_path / "dev.yml")
    (tmp_path / "latin.yml").write_bytes(b"key: \xe9\n")
    with pytest.raises(InputError, match="cannot read the denoiser card"):
        read_card(tmp_path / "latin.yml")
    tally(MALFORMED, 4)


def _card_paths(doc, prefix=()):
    """Every (path, value) of a nested card."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _card_paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _card_paths(value, (*prefix, index))
    yield prefix, doc


junk = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                 st.text(max_size=20), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                                            st.integers(), max_size=2))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_card_is_an_input_error_or_a_valid_card_never_a_crash(tmp_path, data):
    """Replace or delete any value of a valid card: read_card raises InputError, or
    returns a card that validate_card accepts; nothing else escapes."""
    from bench.cards import validate_card

    doc = card("edm-checkpoint", path="ckpt")
    paths = [p for p, _ in _card_paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(junk)
    try:
        result = read_card(write(tmp_path / "fuzz.yml", doc))
    except InputError as exc:
        assert str(exc).startswith(str(tmp_path / "fuzz.yml"))
    else:
        validate_card(result, "again")
    tally(MALFORMED)


def test_an_onnx_model_with_external_data_loads_hashed_and_confined(tmp_path, tiny):
    """Weights stored beside the ONNX file load (onnxruntime is given the path),
    the card's sha256 covers them, and a location outside the folder is refused."""
    import onnx

    from bench.cards import model_files

    folder = tmp_path / "ext"
    folder.mkdir()
    model = onnx.load(str(tmp_path / "tiny.onnx"))
    onnx.save_model(model, str(folder / "net.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (folder / "weights.bin").stat().st_size > 10_000  # the weights left the ONNX file
    doc = card("onnx", path="net.onnx")
    doc["model"]["sha256"] = model_sha256((folder / "net.onnx").resolve())
    path = write(folder / "card.yml", doc)
    np.testing.assert_allclose(relaxed(load_denoiser(path)), relaxed(tiny), atol=1e-4)
    assert [f.name for f in model_files((folder / "net.onnx").resolve())] == ["net.onnx", "weights.bin"]
    data = bytearray((folder / "weights.bin").read_bytes())
    data[-1] ^= 0xFF
    (folder / "weights.bin").write_bytes(bytes(data))
    with pytest.raises(InputError, match="does not match the card"):
        load_denoiser(path)
    # a tensor whose location leaves the folder
    for tensor in model.graph.initializer[:1]:
        tensor.data_location = onnx.TensorProto.EXTERNAL
        del tensor.external_data[:]
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "../secret.bin"
        tensor.ClearField("raw_data")
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    onnx.save_model(model, str(folder / "escape.onnx"))
    with pytest.raises(InputError, match="'../secret.bin', outside the model's folder"):
        load_denoiser(write(folder / "escape.yml", card("onnx", path="escape.onnx")))
    tally(MALFORMED)


def test_export_onnx_enters_a_position_only_checkpoint_through_the_positions_signature(tmp_path):
    """`edm-bench export-onnx` on a position-only checkpoint: an ONNX file with the
    positions signature and a card that relaxes as the checkpoint does."""
    from typer.testing import CliRunner

    from bench.cli import app
    from edm_core.time_predictor import TimePredictor, export_onnx as export_predictor

    torch.manual_seed(0)
    save_checkpoint(EDMDenoiser(EDMConfig(nf=16, n_layers=2, position_only=True)), tmp_path / "ckpt")
    export_predictor(TimePredictor(), tmp_path / "t.onnx")
    source = write(tmp_path / "ckpt" / "card.yml", card("edm-checkpoint", path="."))
    result = CliRunner().invoke(app, ["export-onnx", source, "--out", str(tmp_path / "onnx"),
                                      "--time-predictor", str(tmp_path / "t.onnx")])
    assert result.exit_code == 0, result.output
    exported = load_denoiser(tmp_path / "onnx" / "card.yml")
    assert exported.key == "tiny-test-onnx" and "positions" in exported.card["notes"]
    assert exported.model.capabilities.auto_start and not exported.model.capabilities.generate
    np.testing.assert_allclose(relaxed(exported), relaxed(load_denoiser(source)), atol=1e-4)
    with pytest.raises(InputError, match="inputs \\['node_mask', 'numbers', 'positions'\\], expected edm: .* or "
                                         "positions: "):
        load_denoiser(write(tmp_path / "t.yml", card("onnx", path="t.onnx")))  # a predictor is not a denoiser
