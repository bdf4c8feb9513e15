"""Research variants of the recursion (--hf_variant, --hf_curvature, --hf_damping): each
against a dense-matrix reference of that same variant, the Gauss-Newton product against
explicit Jacobians, and the default untouched."""
import pytest
import torch

from helpers import WINE, run_script
from test_hf import tiny
from utils.proposed.hf import recursion
from utils.proposed.hfconfig import HFConfig, UnlearnConfig
from utils.curvature.hvp import GGNProduct, Step, TorchFuncHVP, step_jacobian
from utils.common.options import HF_VARIANTS, parse_args, parse_hf_label
from utils.common.errors import InputError
from utils.proposed.reference import dense_curvature, dense_recursion
from utils.training.train import SGDConfig, make_schedule

VARIANTS = [v for v in HF_VARIANTS if v != "paper"]


@pytest.mark.parametrize("variant", HF_VARIANTS + ["inject_first+sample_clip", "sample_clip+uncorrected"])
def test_each_variant_equals_its_dense_reference(variant):
    """Logistic model, closed form and torch.func engines; both normalisations, clipping
    active and inactive, with and without damping; quirks alone and joined."""
    n, lam, lr, decay = 9, 0.02, 0.8, 0.98
    fm, w0, X, y = tiny("logistic", "wine", (13,), n, seed=4)
    schedule = make_schedule(n, 4, 3, seed=2)
    rows = torch.tensor([1, 4, 8])
    for norm, clip, damping in [("batch", 100.0, 0.0), ("mean", 0.4, 0.0), ("mean", 100.0, 0.3)]:
        hf = HFConfig(variant, "hessian", damping)
        cfg = SGDConfig(lr, decay, clip, lam)
        w, ref = dense_recursion(fm, w0, X, y, schedule, cfg, rows, UnlearnConfig(norm, hf=hf))
        assert ref.norm() > 1e-3
        for engine in ("closed", "vjp"):
            w_T, A, _ = recursion(fm, w0, X, y, schedule, cfg, rows, UnlearnConfig(norm, hf=hf), engine, rho_iters=0)
            torch.testing.assert_close(w_T, w)
            torch.testing.assert_close(A, ref, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("hf", [HFConfig("authors", "ggn", 0.0), HFConfig("paper", "ggn", 0.2),
                                HFConfig("sample_clip", "hessian", 0.0)])
def test_mlp_variants_summed_equal_dense_reference(hf):
    """A non-convex model (where the Gauss-Newton matrix is not the Hessian), summed rows,
    mean normalisation and active clipping: the replay engine's configuration."""
    n, lam, lr, decay = 8, 0.01, 0.6, 0.97
    fm, w0, X, y = tiny("mlp", "wine", (13,), n, seed=11)
    schedule = make_schedule(n, 4, 2, seed=5)
    rows = torch.tensor([0, 3, 5])
    cfg = SGDConfig(lr, decay, 0.3, lam)
    _, ref = dense_recursion(fm, w0, X, y, schedule, cfg, rows, UnlearnConfig("mean", hf=hf))
    for engine in ("layers", "vjp"):
        _, S, _ = recursion(fm, w0, X, y, schedule, cfg, rows, UnlearnConfig("mean", hf=hf), engine, rho_iters=0, summed=True)
        torch.testing.assert_close(S[0], ref.sum(0), rtol=1e-8, atol=1e-12)


def test_ggn_product_equals_explicit_jacobians_and_is_psd():
    fm, w, X, y = tiny("mlp", "wine", (13,), 7, seed=3)
    w = w + 0.3 * torch.randn_like(w)
    V = torch.randn(4, fm.d, dtype=torch.float64)
    G = dense_curvature(fm, w, X, y, "ggn")
    torch.testing.assert_close(GGNProduct(fm, w, X, len(y))(V), V @ G.T, rtol=1e-9, atol=1e-12)
    assert torch.linalg.eigvalsh(G).min() > -1e-10
    H = dense_curvature(fm, w, X, y, "hessian")
    assert (G - H).norm() > 1e-3 * H.norm()            # not the Hessian on this network


def test_ggn_is_the_hessian_for_logistic_regression():
    fm, w, X, y = tiny("logistic", "wine", (13,), 11, seed=8)
    w = w + torch.randn_like(w)
    V = torch.randn(5, fm.d, dtype=torch.float64)
    torch.testing.assert_close(GGNProduct(fm, w, X, len(y))(V), TorchFuncHVP(fm, w, X, y, len(y), "jvp")(V),
                               rtol=1e-10, atol=1e-12)
    g = torch.randn(fm.d, dtype=torch.float64)
    closed = step_jacobian(Step(fm, w, X, y, 0.1, g, 0.5), "closed", curvature="ggn").apply(V)
    generic = step_jacobian(Step(fm, w, X, y, 0.1, g, 0.5), "vjp", curvature="ggn").apply(V)
    torch.testing.assert_close(closed, generic, rtol=1e-10, atol=1e-12)


def test_damping_adds_kappa_to_the_operator_and_its_contraction():
    fm, w, X, y = tiny("mlp", "wine", (13,), 6, seed=2)
    g = torch.randn(fm.d, dtype=torch.float64)
    V = torch.randn(3, fm.d, dtype=torch.float64)
    for engine in ("layers", "vjp"):
        plain = step_jacobian(Step(fm, w, X, y, 0.1, g, 0.5), engine)
        damped = step_jacobian(Step(fm, w, X, y, 0.1, g, 0.5), engine, damping=0.7)
        torch.testing.assert_close(damped.apply(V), plain.apply(V) + 0.7 * V)
        A = V.clone()
        damped.contract_(A, 0.2)
        torch.testing.assert_close(A, V - 0.2 * (plain.apply(V) + 0.7 * V))
    fm, w, X, y = tiny("logistic", "wine", (13,), 6, seed=2)
    V = torch.randn(3, fm.d, dtype=torch.float64)
    g = torch.randn(fm.d, dtype=torch.float64)
    plain = step_jacobian(Step(fm, w, X, y, 0.1, g, 0.5), "closed")
    damped = step_jacobian(Step(fm, w, X, y, 0.1, g, 0.5), "closed", damping=0.7)
    A = damped.to_internal(V).contiguous()
    damped.contract_(A, 0.2)
    torch.testing.assert_close(damped.from_internal(A), V - 0.2 * (plain.apply(V) + 0.7 * V))


def test_quirks_change_the_result_and_uncorrected_is_void_under_batch_norm():
    n = 9
    fm, w0, X, y = tiny("mlp", "wine", (13,), n, seed=6)
    schedule = make_schedule(n, 4, 3, seed=3)
    cfg = SGDConfig(0.5, 0.99, 0.3, 0.05)
    rows = torch.arange(n)
    paper = {norm: recursion(fm, w0, X, y, schedule, cfg, rows, UnlearnConfig(norm), rho_iters=0)[1] for norm in ("batch", "mean")}
    for variant in VARIANTS:
        for norm in ("batch", "mean"):
            A = recursion(fm, w0, X, y, schedule, cfg, rows, UnlearnConfig(norm, hf=HFConfig(variant)), rho_iters=0)[1]
            if variant == "uncorrected" and norm == "batch":
                assert torch.equal(A, paper[norm])
            else:
                assert (A - paper[norm]).norm() > 1e-4 * paper[norm].norm(), (variant, norm)


def test_labels_round_trip_and_bad_labels_are_refused():
    for hf in [HFConfig(), HFConfig("authors"), HFConfig("paper", "ggn", 0.1), HFConfig("inject_first", "ggn", 1.0),
               HFConfig(order=2)]:
        assert HFConfig.from_flags(parse_hf_label(hf.label)) == hf
    assert HFConfig().row_name == "Proposed" and HFConfig("authors").row_name == "Proposed[authors]"
    for bad in ["author", "ggn+kappa=-1", "kappa=x", ""]:
        with pytest.raises(InputError, match="--proposed_rows"):
            parse_hf_label(bad)


def test_default_flags_leave_every_key_as_it_was(tmp_path):
    """Files keyed before the variant flags existed stay valid: the defaults are not hashed."""
    from utils.common.experiment import Experiment
    flags = WINE + ["--log_dir", str(tmp_path)]
    base = Experiment(parse_args(flags))
    explicit = Experiment(parse_args(flags + ["--hf_variant", "paper", "--hf_curvature", "hessian",
                                              "--hf_damping", "0"]))
    assert base.method_paths("Proposed") == explicit.method_paths("Proposed")
    assert "hf_variant" not in base.method_config(["hf_variant", "retrain_norm"])
    other = Experiment(parse_args(flags + ["--hf_variant", "authors"]))
    assert other.method_paths("Proposed") != base.method_paths("Proposed")


def test_eva_shows_each_variant_as_its_own_row(tmp_path):
    """Two variants made by main_proposed, one table from main_eva, and a
    missing variant named with the command that makes it."""
    import json
    flags = WINE + ["--epochs", "3", "--log_dir", str(tmp_path / "l"), "--results_dir", str(tmp_path / "r"),
                    "--retrain_norm", "mean"]
    run_script("main_retrain.py", *flags)
    run_script("main_proposed.py", *flags)
    run_script("main_proposed.py", *flags, "--hf_variant", "authors")
    rows = json.loads(run_script("main_eva.py", *flags, "--proposed_rows", "paper,authors", "--json").stdout)
    assert {"Proposed", "Proposed[authors]"} <= set(rows)
    assert rows["Proposed"]["distance"] != rows["Proposed[authors]"]["distance"]
    for name in ("Proposed", "Proposed[authors]"):
        assert -1 <= rows[name]["alignment"] <= 1 and rows[name]["removed"] <= 1
    assert rows["Original"]["removed"] is None and rows["Retrain"]["alignment"] is None
    missing = run_script("main_eva.py", *flags, "--proposed_rows", "paper,ggn", check=False)
    assert missing.returncode == 2
    assert "main_proposed.py" in missing.stderr and "--hf_curvature ggn" in missing.stderr


def test_method_table_puts_each_method_beside_the_floor():
    from tools.method_table import markdown
    base = dict(dataset="wine", model="mlp", num_dataset="142", num_forget="7", seeds="6")
    rows = [dict(base, method="Original", distance_mean="0.05", distance_std="0.01", floor_mean="1e-6",
                 removed_mean="", test_acc_mean="0.9", test_acc_std="0"),
            dict(base, method="Proposed[authors]", distance_mean="0.02", distance_std="0.002", floor_mean="1e-6",
                 removed_mean="0.6", removed_std="0.1", alignment_mean="0.9", alignment_std="0.01",
                 test_acc_mean="0.91", test_acc_std="0.01", unlearn_s_mean="2.5", unlearn_s_std="0.5")]
    text = markdown(rows)
    assert "wine / mlp, n = 142, m = 7 (floor 1e-06)" in text
    assert "| Original | 6 | 0.05 ± 0.01 (5e+04x) | - | - | 0.9 ± 0 | - |" in text
    assert "| Proposed[authors] | 6 | 0.02 ± 0.002 (2e+04x) | 0.6 ± 0.1 | 0.9 ± 0.01 | 0.91 ± 0.01 | 2.5 ± 0.5 |" in text


def test_method_table_per_seed_lists_each_run(tmp_path):
    from tools.method_table import per_seed
    from utils.common import artifacts
    setting = dict(dataset="mnist", model="cnn", num_dataset=1000, num_forget=10, lr=0.05, epochs=20)
    for seed, removed in ((124, 0.2), (42, 0.06)):
        methods = {"Original": dict(floor=0.01 * seed, removed=None, alignment=None),
                   "Proposed": dict(floor=0.01 * seed, removed=removed, alignment=0.5),
                   "Retrain": dict(floor=0.01 * seed, removed=None, alignment=None)}
        artifacts.write_json(str(tmp_path / f"eva-{seed}.json"),
                             dict(setting=setting, setting_key="k1", seed=seed, methods=methods))
    lines = per_seed(str(tmp_path)).splitlines()
    assert lines[2] == "| seed | floor | Proposed |"
    assert lines[4:6] == ["| 42 | 0.42 | 0.060 / 0.50 |", "| 124 | 1.2 | 0.200 / 0.50 |"]


def write_runs(folder):
    """Per-run results of two settings with the same dataset, model, n and m (epochs 3 and 4,
    floors 1e-6 and 1e-3); NU only in seed 2 of the first; Finetune with alignment null (it did
    not move), then their aggregate, as main_eva.py writes them."""
    from utils.common import artifacts
    from utils.evaluation.compare import aggregate, write_aggregate
    base = dict(dataset="wine", model="logistic", num_dataset=100, num_forget=5, lr=0.05)
    for epochs, floor in ((3, 1e-6), (4, 1e-3)):
        for seed in (1, 2):
            methods = {"Original": dict(distance=0.02, floor=floor, removed=None, alignment=None),
                       "Proposed": dict(distance=0.002, floor=floor, removed=0.9, alignment=0.99),
                       "Finetune": dict(distance=0.02, floor=floor, removed=0.0, alignment=None)}
            if epochs == 3 and seed == 2:
                methods["NU"] = dict(distance=0.01, floor=floor, removed=0.5, alignment=0.7)
            artifacts.write_json(str(folder / f"eva-e{epochs}-s{seed}.json"),
                                 dict(setting=dict(base, epochs=epochs), setting_key=f"key{epochs}", seed=seed,
                                      methods=methods))
    write_aggregate(str(folder), aggregate(str(folder)))


def method_table(capsys, *argv):
    """(exit status, stdout, stderr lines) of `python3 -m tools.method_table ARGV`."""
    from tools.method_table import main
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err.splitlines()


def test_method_table_keeps_settings_of_one_size_apart(tmp_path, capsys):
    """Same dataset / model / n / m, other epochs: two tables, each titled by what differs and
    with its own floor; --per_seed likewise, with every method of the setting as a column (NU
    of seed 2 only) and a null alignment shown as '-'."""
    write_runs(tmp_path)
    code, out, _ = method_table(capsys, "--results_dir", str(tmp_path), "--per_seed")
    assert code == 0
    assert "wine / logistic, n = 100, m = 5, setting key3 (epochs=3) (floor 1e-06)" in out
    assert "wine / logistic, n = 100, m = 5, setting key4 (epochs=4) (floor 0.001)" in out
    tables = out.split("\n\n")
    assert "| Proposed | 2 | 0.002 ± 0 (2e+03x) |" in out and "| Proposed | 2 | 0.002 ± 0 (2x) |" in out
    per_seed = out[out.index("setting key3 (epochs=3): removed / alignment per seed"):]
    assert "| seed | floor | Proposed | NU | Finetune |" in per_seed
    assert "| 1 | 1e-06 | 0.900 / 0.99 | - | 0.000 / - |" in per_seed
    assert "| 2 | 1e-06 | 0.900 / 0.99 | 0.500 / 0.70 | 0.000 / - |" in per_seed
    assert "| seed | floor | Proposed | Finetune |" in per_seed      # the epochs=4 setting has no NU
    assert len(tables) >= 4


@pytest.mark.parametrize("damage, needle", [
    ("empty", "eva_summary.csv is empty"),
    ("truncated", "columns expected (a truncated or corrupt file)"),
    ("cell", "distance_mean = 'x1' is not a finite number"),
    ("header", "lacks the columns"),
    ("json", "corrupt artefact"),
])
def test_method_table_damaged_inputs_are_one_line(tmp_path, capsys, damage, needle):
    write_runs(tmp_path)
    csv_path = tmp_path / "eva_summary.csv"
    text = csv_path.read_text()
    if damage == "empty":
        csv_path.write_text("")
    elif damage == "truncated":
        csv_path.write_text(text[:text.rstrip().rindex("\n") + 12])     # the last row cut short
    elif damage == "cell":
        lines = text.splitlines()
        header = lines[0].split(",")
        cells = lines[1].split(",")
        cells[header.index("distance_mean")] = "x1"
        csv_path.write_text("\n".join([lines[0], ",".join(cells)] + lines[2:]) + "\n")
    elif damage == "header":
        csv_path.write_text("a,b\n1,2\n")
    else:
        path = tmp_path / "eva-e4-s1.json"
        path.write_text(path.read_text()[:40])
    code, out, err = method_table(capsys, "--results_dir", str(tmp_path), "--per_seed")
    assert code == 2 and out == "" and len(err) == 1 and needle in err[0] and err[0].startswith("error: ")


def test_method_table_figure_into_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch):
    from utils.common import options
    write_runs(tmp_path)

    def read_only(**kw):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(options.tempfile, "mkstemp", read_only)
    code, out, err = method_table(capsys, "--results_dir", str(tmp_path), "--figure", str(tmp_path / "ro" / "f.png"))
    assert code == 2 and out == ""
    assert err == [f"error: --figure: {tmp_path / 'ro'} cannot be created in {tmp_path} (Read-only file system); "
                   f"choose another directory"]
    assert not (tmp_path / "ro").exists()
