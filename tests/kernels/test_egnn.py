"""The fused C++ EGNN against the float64 torch reference: values, equivariance,
ragged batches, and through the whole sampler."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import kernels
from edm_core import EDMConfig, EDMDenoiser
from edm_core.backends import resolve_backend
from tests.equivariance import assert_equivariant

pytestmark = pytest.mark.skipif(not kernels.cpp_available(), reason=kernels.cpp_unavailable_reason())


def random_model(nf: int, n_layers: int, seed: int, charges: bool = True) -> EDMDenoiser:
    torch.manual_seed(seed)
    config = EDMConfig(nf=nf, n_layers=n_layers, include_charges=charges)
    model = EDMDenoiser(config).eval()
    with torch.no_grad():  # larger coordinate weights than the init, so x really moves
        for name, p in model.model.named_parameters():
            p.add_(torch.randn_like(p) * (0.3 if "coord_mlp.4" in name else 0.05))
    return model


def molecules(rng, sizes):
    return [(rng.choice([1, 6, 7, 8, 9], size=n), rng.normal(scale=1.4, size=(n, 3))) for n in sizes]


def outputs(model: EDMDenoiser, mols, t, backend: str, dtype=torch.float32) -> torch.Tensor:
    m = copy.deepcopy(model).to(dtype)
    m.use_backend(backend)
    x, one_hot, charges, mask = m.pack(mols)
    z = m.normalize(x, one_hot, charges, mask)
    with torch.no_grad():
        return m.model.predict_noise(z, torch.as_tensor(t, dtype=dtype), mask).double(), mask


@pytest.mark.parametrize(("nf", "n_layers", "sizes"), [(32, 9, [1, 2, 7, 29, 60, 13]), (24, 3, [5, 3]),
                                                       (16, 1, [1])])
def test_cpp_matches_the_float64_reference(rng, nf, n_layers, sizes):
    model = random_model(nf, n_layers, seed=nf)
    mols = molecules(rng, sizes)
    t = rng.uniform(size=(len(sizes), 1))
    ref64, mask = outputs(model, mols, t, "torch", torch.float64)
    ref32, _ = outputs(model, mols, t, "torch")
    got, _ = outputs(model, mols, t, "cpp")
    assert torch.all(torch.isfinite(got))
    err, ref_err = (got - ref64).abs(), (ref32 - ref64).abs()
    # FlashAttention's rule: no worse than twice the float32 reference's own error, plus a floor
    assert torch.all(err <= 2 * ref_err + 1e-5 * ref64.abs().max())
    assert float(err.max() / ref64.abs().max()) < 1e-4
    assert torch.all(got[~mask[..., 0].bool()] == 0)


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")  # interpreter's sigmoid
@pytest.mark.parametrize("backend", ["cpp", "triton"])
def test_the_fused_backends_are_equivariant(rng, backend):
    if backend == "triton":
        pytest.importorskip("triton")
    model = random_model(32, 4, seed=3)
    numbers, pos = molecules(rng, [11])[0]

    def noise(numbers, positions):
        out, _ = outputs(model, [(numbers, positions)], [[0.2]], backend)
        return out[0, :, :3].numpy(), out[0, :, 3:].numpy()

    scale = float(np.abs(noise(numbers, pos)[0]).max())
    assert_equivariant(noise, numbers, pos, rng, atol=1e-5 * scale, reflect=True)  # float32 relative precision


def test_a_model_without_charges_and_the_sampler_agree_across_backends(rng):
    model = random_model(16, 2, seed=5, charges=False)
    mols = molecules(rng, [4, 9, 6])
    ref = model.relax(mols, 8, seed=11)
    model.use_backend("cpp")
    got = model.relax(mols, 8, seed=11)
    for a, b in zip(ref.positions, got.positions):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_backend_names_resolve_and_refuse_clearly():
    assert resolve_backend("auto", "cpu") == "cpp"
    assert resolve_backend("torch") == "torch"
    with pytest.raises(ValueError, match="choose from"):
        resolve_backend("cuda-magic")
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve_backend("cpp", "cuda")


def test_gradients_always_use_the_reference(rng):
    model = random_model(16, 2, seed=1)
    model.use_backend("cpp")
    x, one_hot, charges, mask = model.pack(molecules(rng, [5]))
    z = model.normalize(x, one_hot, charges, mask).requires_grad_(True)
    out = model.model.predict_noise(z, torch.tensor([[0.5]]), mask)
    out.sum().backward()  # the fused kernel has no backward: the torch path must have run
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_kernel_refuses_mismatched_inputs():
    from kernels import _egnn_cpp

    from edm_core.backends import pack_egnn_weights

    w = pack_egnn_weights(random_model(16, 1, seed=0).model.dynamics)
    h0 = np.zeros((3, 7), np.float32)
    with pytest.raises(ValueError, match="different atom counts"):
        _egnn_cpp.egnn_forward(h0, np.zeros((2, 3), np.float32), np.array([0, 3]), **w)
    with pytest.raises(ValueError, match="offsets"):
        _egnn_cpp.egnn_forward(h0, np.zeros((3, 3), np.float32), np.array([0, 2]), **w)
    with pytest.raises(ValueError, match="number of layer weight arrays"):
        _egnn_cpp.egnn_forward(h0, np.zeros((3, 3), np.float32), np.array([0, 3]), **{**w, "n_layers": 2})


def test_onnx_backend_round_trips_with_dynamic_axes(rng, tmp_path):
    from edm_core.onnx_backend import OnnxNetwork, export_onnx

    model = random_model(16, 2, seed=9)
    export_onnx(model, tmp_path / "model.onnx")
    net = OnnxNetwork(tmp_path / "model.onnx")
    assert net.config == model.config
    for sizes in ([3, 12, 7], [1], [29, 29]):  # other batch and atom sizes than at export
        mols = molecules(rng, sizes)
        t = rng.uniform(size=(len(sizes), 1))
        ref64, mask = outputs(model, mols, t, "torch", torch.float64)
        got, _ = outputs(model, mols, t, "onnx")
        assert float((got - ref64).abs().max() / ref64.abs().max()) < 1e-4
        assert torch.all(got[~mask[..., 0].bool()] == 0)


def test_onnx_sessions_use_the_thread_budget_given_to_torch(tmp_path):
    """``--threads`` / OMP_NUM_THREADS reach onnxruntime, which would otherwise take every core."""
    from edm_core.onnx_backend import OnnxNetwork, export_onnx

    export_onnx(random_model(8, 1, seed=1), tmp_path / "model.onnx")
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            options = OnnxNetwork(tmp_path / "model.onnx").session.get_session_options()
            assert (options.intra_op_num_threads, options.inter_op_num_threads) == (n, 1)
    finally:
        torch.set_num_threads(before)


def test_onnx_with_the_wrong_signature_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from edm_core.onnx_backend import OnnxNetwork, OnnxSignatureError

    x = helper.make_tensor_value_info("positions", TensorProto.FLOAT, ["b", "n", 3])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", "n", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["positions"], ["out"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "bad.onnx")
    with pytest.raises(OnnxSignatureError, match="bad.onnx: inputs \\['positions'\\]"):
        OnnxNetwork(tmp_path / "bad.onnx", source="bad.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(OnnxSignatureError, match="not a loadable ONNX model"):
        OnnxNetwork(tmp_path / "junk.onnx", source="junk.onnx")


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")  # interpreter's sigmoid
@pytest.mark.parametrize(("nf", "sizes"), [(16, [1, 2, 7, 13]), (24, [5, 3, 20]), (32, [70])])
def test_triton_kernels_match_the_float64_reference(rng, nf, sizes):
    """Runs on the CPU through Triton's interpreter (conftest), natively on a GPU host."""
    pytest.importorskip("triton")
    model = random_model(nf, 2, seed=nf + 1)
    mols = molecules(rng, sizes)
    t = rng.uniform(size=(len(sizes), 1))
    ref64, mask = outputs(model, mols, t, "torch", torch.float64)
    ref32, _ = outputs(model, mols, t, "torch")
    got, _ = outputs(model, mols, t, "triton")
    err, ref_err = (got - ref64).abs(), (ref32 - ref64).abs()
    assert torch.all(err <= 2 * ref_err + 1e-5 * ref64.abs().max())
    assert torch.all(got[~mask[..., 0].bool()] == 0)


def test_the_original_style_timing_baseline_computes_the_same_network(rng):
    from bench.perf import OriginalStyleNetwork

    model = random_model(16, 3, seed=4)
    mols = molecules(rng, [4, 9, 1])
    t = rng.uniform(size=(3, 1))
    ref, mask = outputs(model, mols, t, "torch")
    x, one_hot, charges, mask = model.pack(mols)
    z = model.normalize(x, one_hot, charges, mask)
    got = OriginalStyleNetwork(model.model.dynamics)(z, torch.as_tensor(t, dtype=torch.float32), mask)
    torch.testing.assert_close(got.double(), ref, atol=1e-4 * float(ref.abs().max()), rtol=1e-5)


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
def test_triton_kernels_write_every_output_element(rng):
    """Poisoned (NaN) output buffers come back fully overwritten, with the same values."""
    pytest.importorskip("triton")
    from kernels.egnn_triton import egnn_coord, egnn_message

    n, nf = 11, 16
    sizes = torch.tensor([4, 1, 6])
    count = torch.repeat_interleave(sizes, sizes)
    start = torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
    f = lambda *s: torch.tensor(rng.normal(size=s), dtype=torch.float32)  # noqa: E731
    P, Q, x, x0 = f(n, nf), f(n, nf), f(n, 3), f(n, 3)
    w = [f(nf), f(nf), f(nf, nf), f(nf), f(nf), f(1)]
    clean = egnn_message(P, Q, x, x0, start, count, *w, 1.0, 6)
    poisoned = torch.full((n, nf), float("nan"))
    egnn_message(P, Q, x, x0, start, count, *w, 1.0, 6, out=poisoned)
    torch.testing.assert_close(poisoned, clean)
    dx = torch.full((n, 3), float("nan"))
    egnn_coord(P, Q, x, x0, start, count, *w[:5], 15.0, 1.0, 1.0, 6, out=dx)
    assert torch.isfinite(dx).all() and torch.all(dx[4] == 0)  # the lone atom does not move


def test_onnx_round_trips_an_original_format_checkpoint(rng, tmp_path):
    from edm_core import load_checkpoint
    from edm_core.onnx_backend import OnnxNetwork, export_onnx
    from tests.edm_core.test_network import write_original

    write_original(tmp_path / "orig", "qm9", True, nf=24, n_layers=3, rng=rng)
    model = load_checkpoint(tmp_path / "orig")
    export_onnx(model, tmp_path / "orig.onnx")
    assert OnnxNetwork(tmp_path / "orig.onnx").config == model.config
    mols = molecules(rng, [9, 4])
    t = rng.uniform(size=(2, 1))
    ref64, _ = outputs(model, mols, t, "torch", torch.float64)
    got, _ = outputs(model, mols, t, "onnx")
    assert float((got - ref64).abs().max() / ref64.abs().max()) < 1e-4


def test_tf32_is_opt_in_and_triton_only():
    model = random_model(16, 1, seed=0)
    with pytest.raises(ValueError, match="allow_tf32 applies to the triton backend only"):
        model.use_backend("cpp", allow_tf32=True)


@pytest.mark.parametrize("epoch", [15, 30, 45, 60])
def test_onnx_round_trips_the_shipped_checkpoints(epoch, rng, tmp_path):
    """Each shipped checkpoint exported to ONNX loads through its card's path and
    computes its float64 torch output on ragged QM9-sized molecules."""
    from pathlib import Path

    from edm_core import load_checkpoint
    from edm_core.onnx_backend import OnnxNetwork, export_onnx

    root = Path(__file__).resolve().parents[2] / "denoisers" / "edm-qm9xtb-nf64-t05" / f"epoch_{epoch:04d}"
    model = load_checkpoint(root)
    export_onnx(model, tmp_path / "shipped.onnx")
    assert OnnxNetwork(tmp_path / "shipped.onnx").config == model.config
    mols = molecules(rng, [19, 7, 27])
    t = rng.uniform(0, 0.05, size=(3, 1))
    ref64, _ = outputs(model, mols, t, "torch", torch.float64)
    got, _ = outputs(model, mols, t, "onnx")
    assert float((got - ref64).abs().max() / ref64.abs().max()) < 1e-4
