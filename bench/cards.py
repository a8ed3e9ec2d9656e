"""Denoiser cards: a YAML file per denoiser, checked against a schema, that says
what the denoiser is and how to load it.

Three ways in (``model.kind``):

* ``edm-checkpoint`` - a folder in the original EDM format or edm-bench's own;
* ``onnx``           - an ONNX file with the ``edm`` signature (EDM's joint latent)
  or the ``positions`` signature (a position-only denoiser: positions, atomic
  numbers, node mask, t -> noise on positions), :mod:`edm_core.onnx_backend`;
  the sampler loop is ours;
* ``entry-point``    - ``module:object``, an object with ``config`` (an
  :class:`edm_core.EDMConfig` or its JSON dict) and ``predict_noise(z, t,
  node_mask)`` (the ``edm`` contract), or with ``predict_position_noise(positions,
  numbers, node_mask, t)`` (the ``positions`` contract) and optionally
  ``predict_time(positions, numbers, node_mask)``.

A position-only model from outside names its elements (``model.elements``), its
largest molecule (``model.max_atoms``) and optionally its widest (``model.max_diameter``,
the largest interatomic distance in Angstrom it takes); its schedule is the card's
``diffusion`` section (``polynomial_<p>``, ``cosine``, or ``tabulated`` with
``alpha`` and ``sigma`` per step). Any denoiser may bring a time-step predictor
(``model.time_predictor``: an ONNX file with the ``time`` signature), which makes
``auto`` start steps possible. The card's sampler settings are read once, into
:class:`SamplerSettings`; :func:`load_denoiser` returns a :class:`LoadedDenoiser`.

Unknown keys are rejected. Paths are relative to the card's folder and may not
leave it unless ``allow_outside=True`` is passed (cards are untrusted input).
The model's sha256 (every file of it: weights and config) is checked when the
card gives one.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from bench.artifacts import sha256_file
from bench.errors import InputError

from edm_core.protocol import AUTO_MODES, Denoiser

#: The shipped final checkpoint's card, relative to the repository root: the one
#: place that the asv suite, the CI gate (``edm-bench gate``, ``edm-bench baseline``)
#: and the command line take it from. Consumers skip with a message where a
#: checkout lacks it (an asv run of a commit older than the card).
DEFAULT_CARD = Path("denoisers/edm-qm9xtb-nf64-t05/epoch_0120/card.yml")


def shipped_card() -> Path:
    """:data:`DEFAULT_CARD` from the working directory or, failing that, from this
    checkout's root (an editable install); a clear error when it is not there."""
    for path in (DEFAULT_CARD, Path(__file__).resolve().parents[1] / DEFAULT_CARD):
        if path.is_file():
            return path
    raise InputError(f"the shipped checkpoint's card {DEFAULT_CARD} is not in this checkout")


#: The other shipped families' final cards that the main job ranks beside
#: :data:`DEFAULT_CARD`'s (relative to the repository root; each joins when shipped).
SHIPPED_FAMILY_CARDS = (Path("denoisers/pos-qm9xtb-nf64-t05/final/card-deterministic.yml"),
                        Path("denoisers/edm-qm9xtb-nf64-t05-mmffpairs/epoch_0030/card-deterministic.yml"))

#: Datasets whose molecules the QM9 families cannot take, with the shipped cards that
#: a run on them uses instead (each joins when shipped).
SHIPPED_CARDS_BY_DATASET: dict[str, tuple[Path, ...]] = {
    "drugs-xtb": (Path("denoisers/edm-drugs-zinc-nf64-t05/epoch_0355/card.yml"),
                  Path("denoisers/edm-drugs-zinc-nf64-t05/epoch_0355/card-deterministic.yml")),
}


def shipped_cards(dataset: str = "qm9-xtb") -> list[Path]:
    """The shipped denoisers a run on ``dataset`` uses by default. For the QM9 main job:
    :data:`DEFAULT_CARD` (the study's ancestral sampler), ``card-deterministic.yml``
    beside it when shipped (the same weights with the deterministic sampler, our
    extension), and the other families' cards (:data:`SHIPPED_FAMILY_CARDS`) that
    this checkout has; for a dataset of :data:`SHIPPED_CARDS_BY_DATASET`, its cards."""
    card = shipped_card()
    root = card.parents[len(DEFAULT_CARD.parts) - 1]
    if dataset in SHIPPED_CARDS_BY_DATASET:
        return [root / p for p in SHIPPED_CARDS_BY_DATASET[dataset] if (root / p).is_file()]
    deterministic = card.with_name("card-deterministic.yml")
    extra = [root / p for p in SHIPPED_FAMILY_CARDS if (root / p).is_file()]
    return [card, *([deterministic] if deterministic.is_file() else []), *extra]


CARD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "name", "version", "model", "diffusion", "relaxation", "training"],
    "properties": {
        "key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$"},
        "name": {"type": "string"},
        "version": {"type": "string"},
        "authors": {"type": "array", "items": {"type": "string"}},
        "license": {"type": "string"},
        "links": {"type": "object", "additionalProperties": {"type": "string"}},
        "model": {
            "type": "object", "additionalProperties": False, "required": ["kind"],
            "properties": {
                "kind": {"enum": ["edm-checkpoint", "onnx", "entry-point"]},
                "path": {"type": "string"},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "size_bytes": {"type": "integer", "minimum": 0},
                "entry_point": {"type": "string", "pattern": "^[A-Za-z_][\\w.]*:[A-Za-z_]\\w*$"},
                "elements": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z][a-z]?$"},
                             "minItems": 1, "uniqueItems": True},
                "max_atoms": {"type": "integer", "minimum": 1},
                "max_diameter": {"type": "number", "exclusiveMinimum": 0},
                "time_predictor": {"type": "object", "additionalProperties": False, "required": ["path"],
                                   "properties": {"path": {"type": "string"},
                                                  "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}},
            },
        },
        "diffusion": {
            "type": "object", "additionalProperties": False,
            "required": ["timesteps", "schedule"],
            "properties": {"timesteps": {"type": "integer", "minimum": 1}, "schedule": {"type": "string"},
                           "precision": {"type": "number", "exclusiveMinimum": 0},
                           "alpha": {"type": "array", "items": {"type": "number"}},
                           "sigma": {"type": "array", "items": {"type": "number"}}},
        },
        "relaxation": {
            "type": "object", "additionalProperties": False, "required": ["n_steps"],
            "properties": {"n_steps": {"type": "array", "minItems": 1, "items": {
                               "oneOf": [{"type": "integer", "minimum": 1}, {"enum": ["auto", *AUTO_MODES]}]}},
                           "auto_modes": {"type": "array", "items": {"enum": ["itp", "as"]}, "minItems": 1,
                                          "uniqueItems": True},
                           "max_steps": {"type": "integer", "minimum": 1},
                           "add_noise": {"type": "boolean"}, "sampler": {"type": "string"},
                           "noise_scale": {"type": "number", "minimum": 0},
                           "evaluations": {"type": "array", "items": {"type": "integer", "minimum": 1},
                                           "minItems": 1}},
        },
        "training": {
            "type": "object", "additionalProperties": False, "required": ["datasets"],
            "properties": {
                "datasets": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False, "required": ["name", "split"],
                    "properties": {"name": {"type": "string"}, "split": {"type": "string"},
                                   "level_of_theory": {"type": "string"}, "content_sha256": {"type": "string"}}}},
                "epochs": {"type": "number", "minimum": 0},
                "n_parameters": {"type": "integer", "minimum": 0},
                "wall_s": {"type": "number", "minimum": 0},
                "hardware": {"type": "string"},
                "valid_loss": {"type": "number"},
                "t_max": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "valid_x0_rmse_ang": {"type": "object", "additionalProperties": {"type": "number"}},
                # what the network learned to undo: Gaussian noise (the study), or start structures too
                "corruption": {"type": "string"},
                "valid_start_rmsd_ang": {"type": "object", "additionalProperties": {"type": "number"}},
                "data_overlap": {"type": "string"},
            },
        },
        "notes": {"type": "string"},
        # what was measured on the shipped data, with the command that measured it
        "measured": {
            "type": "object", "additionalProperties": False, "required": ["command", "metrics"],
            "properties": {"command": {"type": "string"}, "date": {"type": "string"},
                           "metrics": {"type": "object", "additionalProperties": {"type": ["number", "null"]}}},
        },
    },
}


def validate_card(card: dict[str, Any], source: str = "card") -> None:
    """Raise :class:`InputError` listing every schema violation of ``card``."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(CARD_SCHEMA).iter_errors(card), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {'/'.join(str(p) for p in e.path) or '(top)'}: {e.message}" for e in errors]
        raise InputError(f"{source}: invalid denoiser card\n" + "\n".join(lines))
    kind = card["model"]["kind"]
    needs = "entry_point" if kind == "entry-point" else "path"
    if needs not in card["model"]:
        raise InputError(f"{source}: model.kind {kind!r} needs model.{needs}")


#: Largest card file read, in bytes (the shipped cards are about 3 KB).
MAX_CARD_BYTES = 64 * 1024


def read_card(path: str | Path) -> dict[str, Any]:
    """Read and validate a card file.

    A card is untrusted: it must be a regular file of at most :data:`MAX_CARD_BYTES`,
    and YAML aliases are refused (nested aliases expand a few bytes into a billion
    nodes for whatever walks the parsed card).
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise InputError(f"{path}: not a regular file")
        if path.stat().st_size > MAX_CARD_BYTES:
            raise InputError(f"{path}: {path.stat().st_size} bytes, more than the {MAX_CARD_BYTES} a card may have")
        text = path.read_text(encoding="utf-8")
        if any(isinstance(token, yaml.AliasToken) for token in yaml.scan(text)):
            raise InputError(f"{path}: YAML aliases (*name) are not allowed in a denoiser card")
        card = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the denoiser card ({exc})") from exc
    if not isinstance(card, dict):
        raise InputError(f"{path}: a denoiser card is a YAML mapping")
    validate_card(card, str(path))
    return card


def resolve_card_path(card_path: Path, relative: str, allow_outside: bool = False) -> Path:
    """The file a card points to; refuses paths leaving the card's folder."""
    base = card_path.resolve().parent
    target = (base / relative).resolve()
    if not allow_outside and base not in target.parents and target != base:
        raise InputError(f"{card_path}: model.path {relative!r} leaves the card's folder "
                         "(pass allow_outside=True to allow it)")
    if not target.exists():
        raise InputError(f"{card_path}: model.path {relative!r} does not exist ({target})")
    if not allow_outside and target.is_dir():
        for inner in target.rglob("*"):
            if inner.is_symlink() and base not in inner.resolve().parents:
                raise InputError(f"{card_path}: {inner} is a link to {inner.resolve()}, outside the card's folder")
    return target


def model_files(path: Path) -> list[Path]:
    """The files a card's sha256 covers: the model file with the external data an
    ONNX file names, or every file of a checkpoint folder except the cards and the
    ONNX files in it (weights and config alike: an edited ``config.json`` changes the
    numbers as much as edited weights; an ONNX file beside a checkpoint is a model of
    its own, a time-step predictor, with its own sha256 in the card)."""
    if path.is_file():
        if path.suffix.lower() != ".onnx":
            return [path]
        from edm_core.onnx_backend import OnnxSignatureError, external_data_files

        try:
            return [path, *external_data_files(path)]
        except OnnxSignatureError as exc:
            raise InputError(str(exc)) from exc
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() not in (".yml", ".yaml", ".onnx"))
    if not files:
        raise InputError(f"{path}: no model files in the checkpoint folder")
    return files


def model_sha256(path: Path) -> str:
    """sha256 of a model: of the file alone, or of the (relative name, file sha256)
    list of a folder or of an ONNX file with its external data."""
    files = model_files(path)
    if files == [path]:
        return sha256_file(path)
    root = (path.parent if path.is_file() else path).resolve()
    listing = "".join(f"{f.resolve().relative_to(root).as_posix()}\t{sha256_file(f)}\n" for f in files)
    return hashlib.sha256(listing.encode()).hexdigest()


@dataclass(frozen=True)
class SamplerSettings:
    """How a run relaxes with one denoiser, read once from its card (and the run's
    ``--n-steps`` / ``--evaluations``, which override the card).

    start_steps : fixed n and learned modes (``auto-itp``, ``auto-as``)
    evaluations : k per fixed n (None: every step)
    noise_scale : 1 the study's ancestral sampler, 0 deterministic
    add_noise : noise the start to step n first (the study did not)
    max_steps : the most reverse steps a learned start may take (None: T)
    """

    start_steps: tuple[int | str, ...]
    evaluations: tuple[int | None, ...] = (None,)
    noise_scale: float = 1.0
    add_noise: bool = False
    max_steps: int | None = None
    start_steps_from: str = "card relaxation.n_steps"

    @property
    def stochastic(self) -> bool:
        return self.noise_scale > 0

    @classmethod
    def from_card(cls, card: dict[str, Any], n_steps: Sequence[int | str] | None = None,
                  evaluations: Sequence[int] | None = None) -> "SamplerSettings":
        relax = card["relaxation"]
        modes = tuple(f"auto-{m}" for m in relax.get("auto_modes", ("itp", "as")))
        steps = []
        for n in (n_steps or relax["n_steps"]):
            steps += modes if n == "auto" else [n]
        return cls(tuple(dict.fromkeys(steps)), tuple(evaluations or relax.get("evaluations") or [None]),
                   float(relax.get("noise_scale", 1.0)), bool(relax.get("add_noise", False)), relax.get("max_steps"),
                   "--n-steps" if n_steps else "card relaxation.n_steps")


@dataclass(frozen=True)
class LoadedDenoiser:
    """A denoiser as a run holds it: its card, the model behind the
    :class:`~edm_core.protocol.Denoiser` protocol, and its sampler settings."""

    key: str
    card: dict[str, Any]
    card_path: str
    model: Denoiser
    sampler: SamplerSettings

    @property
    def backend(self) -> str:
        return self.model.backend

    @classmethod
    def bare(cls, model: Denoiser, key: str = "denoiser", **sampler: Any) -> "LoadedDenoiser":
        """A model without a card (tests, timings), with the sampler settings given."""
        return cls(key, {}, "", model, SamplerSettings(start_steps=(), **sampler))

    def require(self, capability: str, task: str) -> None:
        """InputError naming this denoiser when it lacks ``capability`` for ``task``."""
        reason = self.model.capabilities.missing(capability)
        if reason is not None:
            raise InputError(f"{self.card_path or self.key}: {task} needs a denoiser that can {capability.replace('_', ' ')}: "
                             f"{reason}")

    def with_sampler(self, n_steps: Sequence[int | str] | None, evaluations: Sequence[int] | None
                     ) -> "LoadedDenoiser":
        """This denoiser with a run's ``--n-steps`` / ``--evaluations`` over the card's."""
        return replace(self, sampler=SamplerSettings.from_card(self.card, n_steps, evaluations))


def _entry_point(card_path: Path, model: dict[str, Any], trust_code: bool) -> Any:
    """The object a card's entry point names, imported only with consent."""
    if not trust_code:
        raise InputError(f"{card_path}: entry point {model['entry_point']!r} would import and run Python code "
                         "with your rights; pass --trust-code (trust_code=True) if you trust it")
    module_name, attr = model["entry_point"].split(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"{card_path}: entry point {model['entry_point']!r} not found ({exc})") from exc
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - outside code failing on import
        raise InputError(f"{card_path}: importing entry point {model['entry_point']!r} failed "
                         f"({type(exc).__name__}: {exc})") from exc


def card_schedule(card: dict[str, Any], source: str) -> dict[str, Any]:
    """The EDMConfig fields of the card's ``diffusion`` section (a tabulated schedule's
    alpha^2 from its alpha and sigma, checked to be variance preserving)."""
    from edm_core.schedule import alpha2_from_alpha_sigma

    d = card["diffusion"]
    fields: dict[str, Any] = {"diffusion_steps": d["timesteps"], "diffusion_noise_schedule": d["schedule"],
                              "diffusion_noise_precision": d.get("precision", 1e-5), "diffusion_alpha2": None}
    if d["schedule"] == "tabulated":
        if "alpha" not in d or "sigma" not in d:
            raise InputError(f"{source}: a tabulated schedule needs diffusion.alpha and diffusion.sigma "
                             f"({d['timesteps'] + 1} values each)")
        try:
            fields["diffusion_alpha2"] = tuple(float(v) for v in alpha2_from_alpha_sigma(d["alpha"], d["sigma"], source))
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    elif "alpha" in d or "sigma" in d:
        raise InputError(f"{source}: diffusion.alpha/sigma are for schedule 'tabulated', not {d['schedule']!r}")
    return fields


def _position_config(card: dict[str, Any], source: str) -> Any:
    """The EDMConfig of an outside position-only model: its elements, size limit and
    the card's schedule (the network is the model's; the rest is our sampler)."""
    from edm_core import EDMConfig
    from edm_core.dataset_info import atomic_numbers_of

    model = card["model"]
    if "elements" not in model:
        raise InputError(f"{source}: a position-only model must name its elements (model.elements, e.g. "
                         "[H, C, N, O, F])")
    try:
        atomic_numbers_of(tuple(model["elements"]))
        return EDMConfig(dataset="outside", atom_decoder=tuple(model["elements"]), include_charges=False, nf=1,
                         n_layers=1, position_only=True, max_n_nodes=int(model.get("max_atoms", 1000)),
                         max_diameter=model.get("max_diameter"),
                         n_nodes_histogram={1: 1}, **card_schedule(card, source))
    except (ValueError, KeyError) as exc:
        raise InputError(f"{source}: {exc}") from exc


def _time_predictor(card_path: Path, card: dict[str, Any], allow_outside: bool, entry: Any) -> Any:
    """The card's time-step predictor (an ONNX file, or the entry point's
    ``predict_time``), or None."""
    spec = card["model"].get("time_predictor")
    if spec is None:
        return getattr(entry, "predict_time", None) if entry is not None else None
    from edm_core.onnx_backend import OnnxNetwork, OnnxSignatureError

    target = resolve_card_path(card_path, spec["path"], allow_outside)
    if "sha256" in spec and model_sha256(target) != spec["sha256"]:
        raise InputError(f"{card_path}: sha256 of the time-step predictor {target} does not match the card")
    try:
        return OnnxNetwork(target, source=str(target), allowed=("time",))
    except OnnxSignatureError as exc:
        raise InputError(f"{card_path}: time predictor: {exc}") from exc


def _outside_denoiser(card_path: Path, card: dict[str, Any], target: Path | None, entry: Any) -> Any:
    """An EDMDenoiser around an outside network: an ONNX file (either signature) or
    an entry point (either contract)."""
    from edm_core import EDMConfig, EDMDenoiser

    model = card["model"]
    if entry is not None:
        if callable(getattr(entry, "predict_position_noise", None)):
            config = _position_config(card, str(card_path))
            return EDMDenoiser.from_network(config, entry.predict_position_noise,
                                            f"entry point {model['entry_point']}")
        if not callable(getattr(entry, "predict_noise", None)) or not hasattr(entry, "config"):
            raise InputError(f"{card_path}: entry point {model['entry_point']!r} must have `config` and "
                             "`predict_noise(z, t, node_mask)` (the edm contract), or "
                             "`predict_position_noise(positions, numbers, node_mask, t)` (the positions contract)")
        config = entry.config if isinstance(entry.config, EDMConfig) else EDMConfig.from_json(dict(entry.config))
        return EDMDenoiser.from_network(config, entry.predict_noise, f"entry point {model['entry_point']}")
    from edm_core.onnx_backend import OnnxNetwork, OnnxSignatureError

    try:
        network = OnnxNetwork(target, source=str(target), allowed=("edm", "positions"))
    except OnnxSignatureError as exc:
        raise InputError(f"{card_path}: {exc}") from exc
    config = network.config
    if network.signature.name == "positions":
        if config is None or "elements" in model:
            config = _position_config(card, str(card_path))
        elif not config.position_only:
            raise InputError(f"{card_path}: {target} has the positions signature but its edm_config is not "
                             "position-only")
    elif config is None:
        raise InputError(f"{card_path}: {target} has no edm_config metadata (export it with "
                         "edm_core.onnx_backend.export_onnx, or use the positions signature with model.elements)")
    return EDMDenoiser.from_network(config, network, f"ONNX file {target.name}")


def load_denoiser(card_path: str | Path, allow_outside: bool = False, backend: str = "auto",
                  trust_code: bool = False) -> LoadedDenoiser:
    """The denoiser a card describes, behind the :class:`~edm_core.protocol.Denoiser`
    protocol, with its card and sampler settings.

    An ``entry-point`` card imports a Python module, which runs its code with the
    user's rights: it is refused unless ``trust_code`` (``--trust-code``) says so.
    Checkpoints and ONNX files are data and never run code.

    Raises
    ------
    InputError
        Invalid card, missing or escaping path, sha256 mismatch, unknown entry
        point or one without consent, an ONNX file with the wrong signature, a
        schedule that differs from the model's, ``auto`` without a predictor.
    """
    from edm_core import CheckpointError, load_checkpoint

    card_path = Path(card_path)
    card = read_card(card_path)
    model = card["model"]
    kind = model["kind"]
    entry = _entry_point(card_path, model, trust_code) if kind == "entry-point" else None
    target = None
    if kind != "entry-point":
        target = resolve_card_path(card_path, model["path"], allow_outside)
        if "sha256" in model and model_sha256(target) != model["sha256"]:
            raise InputError(f"{card_path}: sha256 of {target} (" + ", ".join(f.name for f in model_files(target))
                             + ") does not match the card")
    if kind == "edm-checkpoint":
        try:
            denoiser = load_checkpoint(target)
        except CheckpointError as exc:
            raise InputError(f"{card_path}: {exc}") from exc
        try:
            denoiser.use_backend(backend)
        except ValueError as exc:  # unknown, not built here, or no device for it
            raise InputError(f"--backend {backend}: {exc}") from exc
    else:
        denoiser = _outside_denoiser(card_path, card, target, entry)
        if backend != "auto" and not (kind == "onnx" and backend == "onnx"):
            raise InputError(f"{card_path}: --backend {backend} chooses how an EDM checkpoint's network runs; this "
                             f"card's network is {denoiser.backend} (use --backend auto)")
    c = denoiser.config
    fields = card_schedule(card, str(card_path))
    mine = {k: getattr(c, k) for k in fields}
    if (fields["diffusion_steps"], fields["diffusion_noise_schedule"], fields["diffusion_alpha2"]) != (
            mine["diffusion_steps"], mine["diffusion_noise_schedule"], mine["diffusion_alpha2"]):
        raise InputError(f"{card_path}: card says T={fields['diffusion_steps']} {fields['diffusion_noise_schedule']}, "
                         f"the model has T={c.diffusion_steps} {c.diffusion_noise_schedule}"
                         + (" (its tables differ)" if fields["diffusion_noise_schedule"] == "tabulated" else ""))
    denoiser.time_predictor = _time_predictor(card_path, card, allow_outside, entry)
    sampler = SamplerSettings.from_card(card)
    if any(isinstance(n, str) for n in sampler.start_steps) and denoiser.time_predictor is None:
        raise InputError(f"{card_path}: relaxation.n_steps has 'auto', which needs a time-step predictor "
                         "(model.time_predictor)")
    return LoadedDenoiser(card["key"], card, str(card_path), denoiser, sampler)


def load_denoisers(paths: Sequence[str | Path], trust_code: bool = False, backend: str = "auto"
                   ) -> dict[str, LoadedDenoiser]:
    """The denoisers of the cards, keyed by card key (a checkpoint series keeps its
    order), each on ``backend``; two cards with one key are refused, as their rows
    would merge."""
    denoisers: dict[str, LoadedDenoiser] = {}
    for path in paths:
        denoiser = load_denoiser(path, trust_code=trust_code, backend=backend)
        if denoiser.key in denoisers:
            raise InputError(f"{path}: card key {denoiser.key!r} is used by another card of this run")
        denoisers[denoiser.key] = denoiser
    return denoisers


def card_for_checkpoint(checkpoint_dir: str | Path, key: str, name: str | None = None,
                        level_of_theory: str = "GFN2-xTB") -> dict[str, Any]:
    """A card for an own-format checkpoint written by ``edm-bench train``, from
    its metadata (data, size, epochs, wall time, validation loss); the card
    lives in the checkpoint folder (``model.path: .``)."""
    import json

    root = Path(checkpoint_dir)
    doc = json.loads((root / "config.json").read_text())
    meta, config = doc.get("metadata", {}), doc["config"]
    data = meta.get("data", {})
    settings = meta.get("train_settings", {})
    t_max = settings.get("t_max", 1.0)
    card = {
        "key": key,
        "name": name or f"EDM nf {config['nf']}, {config['n_layers']} layers, epoch {meta.get('epoch')}",
        "version": "1",
        "authors": ["edm-bench"],
        "license": "MIT",
        "model": {"kind": "edm-checkpoint", "path": ".", "sha256": model_sha256(root),
                  "size_bytes": (root / "model.safetensors").stat().st_size},
        "diffusion": {"timesteps": config["diffusion_steps"], "schedule": config["diffusion_noise_schedule"],
                      "precision": config["diffusion_noise_precision"]},
        "relaxation": {"n_steps": [20, 30, 50], "add_noise": False, "sampler": "ancestral (EDM), study's start"},
        "training": {
            "datasets": [{"name": str(data.get("dataset", "?")), "split": str(data.get("split", "train")),
                          "level_of_theory": level_of_theory,
                          "content_sha256": str(data.get("content_sha256", ""))}],
            "epochs": meta.get("epoch", 0), "n_parameters": meta.get("n_parameters", 0),
            "wall_s": meta.get("wall_s", 0.0), "hardware": meta.get("hardware", "unknown"),
            "valid_loss": meta.get("valid_loss", float("nan")), "t_max": t_max,
            "valid_x0_rmse_ang": {k.removeprefix("x0_rmse_"): v for k, v in meta.items() if k.startswith("x0_rmse_")},
            "corruption": corruption_description(settings, data),
            "data_overlap": overlap_description(data),
        },
        "notes": (f"EMA weights (decay {settings.get('ema_decay')}), batch {settings.get('batch_size')}, "
                  f"lr {settings.get('lr')}"
                  + (f" cosine to {settings['lr_final']}" if settings.get("lr_final") is not None else "")
                  + (f"; trained on t <= {t_max} only (our extension)" if t_max < 1 else "")
                  + (f"; samples of 1, 2, ... molecules side by side with probabilities {settings['pack']} "
                     "(size augmentation, our extension)" if len(settings.get("pack") or ()) > 1 else "")
                  + init_description(data)),
    }
    start_rmsd = {k.removeprefix("start_x0_rmsd_"): v for k, v in meta.items() if k.startswith("start_x0_rmsd_")}
    if start_rmsd:
        card["training"]["valid_start_rmsd_ang"] = {"start": meta.get("start_rmsd", float("nan")), **start_rmsd}
    validate_card(card, str(root))
    return card


def init_description(data: dict[str, Any]) -> str:
    """The card's statement of the checkpoint a run started from ('' for a fresh start)."""
    init = data.get("init")
    if not init:
        return ""
    text = f"; fine-tuned from {init['checkpoint']} (its epochs count from that checkpoint)"
    donors = init.get("new_elements_from")
    if donors:
        text += (f", moved to the atom decoder {' '.join(init['atom_decoder'])}; elements new to it started as "
                 + ", ".join(f"{e} from {d}" for e, d in donors.items()))
    return text


def overlap_description(data: dict[str, Any]) -> str:
    """The card's statement of what the training set shares with the evaluation sets."""
    text = "trained on the train split only; valid and test are disjoint by canonical-SMILES hash"
    overlap = data.get("overlap")
    if overlap:
        n = data.get("n_used", data.get("n_train", "?"))
        text += "; training molecules sharing a canonical SMILES with " + ", ".join(
            f"{split}: {count} of {n}" for split, count in overlap.items())
    return text


def corruption_description(settings: dict[str, Any], data: dict[str, Any]) -> str:
    """What a checkpoint's network was trained to undo, in words (from its train settings)."""
    fraction = settings.get("start_fraction", 0.0)
    if not fraction:
        return "Gaussian noise (the study's objective: ground states only)"
    lo, hi = settings.get("start_steps", (20, 50))
    return (f"start structures ({data.get('starts', 'start geometries')}) -> ground state for "
            f"{100 * fraction:.0f} % of the molecules (aligned RMSD <= {settings.get('max_start_rmsd')} A), "
            f"taken as z_n for n in {lo}..{hi}, with and without Gaussian noise; Gaussian noise for the others. "
            "Not the study's objective: a reference row, labelled")


def write_card(card: dict[str, Any], path: str | Path) -> Path:
    """Write a validated card as YAML."""
    validate_card(card, str(path))
    path = Path(path)
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path
