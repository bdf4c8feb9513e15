"""Every bad-input path stops with one line naming the problem and a non-zero exit."""
import os
import re

import pytest
import torch

from helpers import WINE, run_script
from utils.common.errors import InputError
from utils.common.options import parse_args, validate, build_parser


def flags_with(**over):
    flags = list(WINE)
    for k, v in over.items():
        if f"--{k}" in flags:
            flags[flags.index(f"--{k}") + 1] = str(v)
        else:
            flags += [f"--{k}", str(v)]
    return flags


@pytest.mark.parametrize("over, needle", [
    (dict(model="transformer"), "--model: unknown model"),
    (dict(dataset="imagenet"), "--dataset: unknown dataset"),
    (dict(num_forget=142), "--num_forget"),
    (dict(num_dataset=100000), "--num_dataset"),
    (dict(lr=0), "--lr"),
    (dict(lr=-1), "--lr"),
    (dict(epsilon=0), "--epsilon"),
    (dict(delta=1.5), "--delta"),
    (dict(delta=0), "--delta"),
    (dict(model="lenet"), "does not fit dataset wine"),
    (dict(model="cnn"), "does not fit dataset wine"),
    (dict(batch_size=0), "--batch_size"),
    (dict(forget_indices="1,x"), "--forget_indices"),
    (dict(forget_indices="3,3"), "distinct"),
    (dict(forget_indices="5,500"), "outside range"),
])
def test_bad_flag_is_one_clear_line(over, needle):
    with pytest.raises(InputError, match=needle.replace("(", r"\(")):
        validate(build_parser().parse_args(flags_with(**over)))


def test_script_exits_nonzero_with_one_line(dirs):
    proc = run_script("main_retrain.py", *flags_with(num_forget=500), *dirs, check=False)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --num_forget")
    assert proc.stdout == ""


def test_explicit_forget_indices_set_m():
    args = parse_args(flags_with(forget_indices="9,2,4"))
    assert args.forget_list == [2, 4, 9] and args.num_forget == 3


def test_missing_dataset_names_files_and_place(tmp_path, dirs):
    proc = run_script("main_retrain.py", "--dataset", "cifar", "--model", "logistic", "--num_dataset", "100",
                      "--gpu", "-1", "--data_dir", str(tmp_path / "nodata"), *dirs, check=False)
    assert proc.returncode == 2
    msg = proc.stderr.strip().splitlines()[-1]
    assert "cifar-10-batches-py" in msg and str(tmp_path / "nodata") in msg


def test_gpu_request_falls_back_or_lists_devices(monkeypatch):
    from utils.common.experiment import select_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device(1).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "FakeGPU")
    with pytest.raises(InputError, match="no CUDA device 3; present: 0: FakeGPU"):
        select_device(3)


def test_corrupt_artefact_is_reported(dirs):
    run_script("main_retrain.py", *WINE, *dirs)
    log_dir = dirs[1]
    (train_dir,) = [os.path.join(log_dir, d) for d in os.listdir(log_dir)]
    with open(os.path.join(train_dir, "original.pt"), "wb") as f:
        f.write(b"not a tensor file")
    proc = run_script("main_retrain.py", *WINE, *dirs, check=False)
    assert proc.returncode == 2
    assert "corrupt artefact" in proc.stderr and "original.pt" in proc.stderr


# ----------------------------------------------------------------------------- parse-time checks
def float_flags():
    return sorted(a.dest for a in build_parser()._actions if a.type is float)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_float_flag_refuses_non_finite(value):
    assert {"lr", "epsilon", "rho", "test_train_rate", "dist_timeout"} <= set(float_flags())
    for name in float_flags():
        with pytest.raises(InputError, match=f"^--{name}: must be a finite number"):
            validate(build_parser().parse_args(WINE + [f"--{name}={value}"]))


@pytest.mark.parametrize("rate", ["0", "-0.1", "1.01"])
def test_test_train_rate_in_unit_interval(rate):
    with pytest.raises(InputError, match=r"--test_train_rate: must be in \(0, 1\]"):
        validate(build_parser().parse_args(flags_with(test_train_rate=rate)))
    assert parse_args(flags_with(test_train_rate=1)).test_train_rate == 1.0


def test_test_train_rate_leaving_no_test_sample():
    with pytest.raises(InputError, match="--test_train_rate: .* leaves no test sample"):
        validate(build_parser().parse_args(flags_with(test_train_rate=0.005)))


def test_argparse_errors_are_one_line():
    proc = run_script("main_retrain.py", "--lr", "abc", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["error: argument --lr: invalid float value: 'abc' (see --help)"]


@pytest.mark.parametrize("spec, needle", [
    ("1,x", "--hf_candidates: expected comma-separated integers"),
    ("4,4", "--hf_candidates: indices must be distinct"),
    ("3,142", r"--hf_candidates: \[142\] outside range"),
])
def test_hf_candidates_checked_at_parse_time(spec, needle):
    with pytest.raises(InputError, match=needle):
        validate(build_parser().parse_args(flags_with(hf_candidates=spec)))


def test_hf_candidates_parsed_once_into_a_sorted_list():
    assert parse_args(flags_with(hf_candidates="9,2,40")).hf_candidate_list == [2, 9, 40]
    for spec in ("all", "forget"):
        assert parse_args(flags_with(hf_candidates=spec)).hf_candidate_list is None


def test_hf_candidates_cover_an_explicit_forget_set():
    with pytest.raises(InputError, match=r"--hf_candidates: forget-set samples \[5\] are not candidates"):
        validate(build_parser().parse_args(flags_with(hf_candidates="1,2,3", forget_indices="2,5")))
    assert parse_args(flags_with(hf_candidates="1,2,5", forget_indices="2,5")).forget_list == [2, 5]
    # replay mode keeps no bank: the candidate list does not matter
    parse_args(flags_with(hf_candidates="1,2,3", forget_indices="2,5", hf_mode="replay"))


def test_hf_candidates_missing_the_seeded_forget_set_stop_before_training(dirs):
    from utils.training.forget import forget_set
    U = forget_set(142, 7, 42).tolist()          # WINE: n = 142, m = 7, seed 42
    others = [i for i in range(142) if i not in U]
    spec = ",".join(map(str, others + U[1:]))
    proc = run_script("main_proposed.py", *WINE, "--hf_candidates", spec, *dirs, check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: --hf_candidates: forget-set samples [{U[0]}] are not candidates "
                                        f"and would have no approximator; add them, or use --hf_candidates all (or forget)"]
    assert not os.path.exists(dirs[1])            # nothing trained, nothing written
    ok = run_script("main_proposed.py", *WINE, "--hf_candidates", ",".join(map(str, U)), "--json", *dirs)
    assert ok.returncode == 0


@pytest.mark.parametrize("flag", ["log_dir", "results_dir", "data_dir"])
def test_directory_flag_that_is_a_file_stops_before_training(tmp_path, flag):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    dirs = {"log_dir": str(tmp_path / "log"), "results_dir": str(tmp_path / "results"), "data_dir": "./data"}
    for path, what in [(str(a_file), "is not a directory"),
                       (str(a_file / "sub"), f"cannot be created: {a_file} is not a directory")]:
        dirs[flag] = path
        proc = run_script("main_retrain.py", *WINE, *[x for k, v in dirs.items() for x in (f"--{k}", v)], check=False)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.splitlines() == [f"error: --{flag}: {path} {what}"]
    assert not (tmp_path / "log").exists()


def test_directory_not_writable(tmp_path, monkeypatch):
    from utils.common import options
    check = options.check_directory
    check("log_dir", str(tmp_path / "new" / "deeper"))      # creatable: fine, and nothing created
    assert not (tmp_path / "new").exists() and os.listdir(tmp_path) == []
    monkeypatch.setattr(options.os, "access", lambda path, mode: False)
    with pytest.raises(InputError, match=re.escape(f"--log_dir: {tmp_path} is not writable (permission denied)")):
        check("log_dir", str(tmp_path))
    monkeypatch.undo()

    def read_only(**kw):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(options.tempfile, "mkstemp", read_only)
    with pytest.raises(InputError, match=re.escape(f"--results_dir: {tmp_path / 'x'} cannot be created in "
                                                   f"{tmp_path} (Read-only file system)")):
        check("results_dir", str(tmp_path / "x"))


def test_help_is_grouped_and_complete():
    parser = build_parser()
    titles = [g.title for g in parser._action_groups]
    expected = ["training", "forget set", "Hessian-free method", "certified release", "certified removal", "baselines", "audits",
                "evaluation", "input/output and infrastructure"]
    assert [t for t in titles if t in expected] == expected
    ungrouped = [a.dest for g in parser._action_groups if g.title not in expected for a in g._group_actions]
    assert ungrouped == ["help"]
    proc = run_script("main_proposed.py", "--help")
    assert "Hessian-free method:\n  main_proposed.py" in proc.stdout and "--hf_candidates" in proc.stdout


# ----------------------------------------------------------------------------- --pretrained
def test_pretrained_file_checks(tmp_path):
    from torchvision.models import resnet18
    from models import build_model
    with pytest.raises(InputError, match="--pretrained: file .*nothing.pt not found"):
        validate(build_parser().parse_args(flags_with(model="resnet18", dataset="cifar", num_dataset=100,
                                                      pretrained=tmp_path / "nothing.pt")))
    good = resnet18(weights=None).state_dict()
    cases = {"bytes.pt": None, "list.pt": [torch.zeros(2)],
             "shape.pt": dict(good, **{"conv1.weight": torch.zeros(3, 3)}),
             "keys.pt": {k: v for k, v in good.items() if k != "fc.bias"}}
    (tmp_path / "bytes.pt").write_bytes(b"PK\x03\x04 this is not a torch file")
    for name, obj in cases.items():
        if obj is not None:
            torch.save(obj, tmp_path / name)
    for name, needle in [("bytes.pt", "is not a readable torch state_dict file"),
                         ("list.pt", "holds a list, not a state_dict"),
                         ("shape.pt", r"conv1.weight has shape \(3, 3\), expected \(64, 3, 7, 7\)"),
                         ("keys.pt", "missing fc.bias")]:
        with pytest.raises(InputError, match=f"--pretrained: {re.escape(str(tmp_path / name))}.* {needle}"):
            build_model("resnet18", "cifar", str(tmp_path / name))
    good = {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in good.items()}
    torch.save(good, tmp_path / "good.pt")
    net = build_model("resnet18", "cifar", str(tmp_path / "good.pt"))
    assert torch.equal(net.conv1.weight, good["conv1.weight"])


# ----------------------------------------------------------------------------- torchrun timeout
def test_dist_timeout_reaches_the_process_group(monkeypatch):
    import datetime
    import torch.distributed as dist
    from utils.proposed import distributed
    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: seen.update(kw))
    ctx = distributed.from_environment(False, parse_args(flags_with(dist_timeout=7.5)).dist_timeout)
    assert seen == {"backend": "gloo", "timeout": datetime.timedelta(seconds=7.5)}
    assert (ctx.rank, ctx.world, ctx.timeout_s) == (1, 2, 7.5)
    assert parse_args(list(WINE)).dist_timeout == 300.0

    def stuck(**kw):
        raise RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 7500ms for recv")
    monkeypatch.setattr(dist, "barrier", stuck)
    with pytest.raises(InputError, match=r"^rank 1: a barrier did not complete within --dist_timeout 7.5 s .*"
                                         r": Timed out waiting 7500ms for recv$"):
        ctx.barrier()


STALL = """
import sys, time
sys.path.insert(0, {root!r})
from utils.proposed import distributed
from utils.common.errors import InputError, fail
ctx = distributed.from_environment(False, 2.0)
if ctx.rank == 1:
    time.sleep(120)
try:
    ctx.barrier()
except InputError as e:
    fail(str(e))
"""


@pytest.mark.slow
def test_stalled_rank_ends_the_run_with_one_line():
    """Two real gloo ranks; rank 1 stalls, rank 0 stops after --dist_timeout (2 s) with one line."""
    import socket
    import subprocess
    import sys
    import time
    from helpers import ROOT
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2")
    code = STALL.format(root=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    try:
        start = time.perf_counter()
        _, err = procs[0].communicate(timeout=100)
        assert time.perf_counter() - start < 100
    finally:
        procs[1].kill()
        procs[1].communicate()
    assert procs[0].returncode == 2
    assert err.splitlines()[-1].startswith("error: rank 0: a barrier did not complete within --dist_timeout 2 s")


def test_miau_features_flag_keeps_method_as_its_other_spelling():
    """--features and the original --method set the same value, stored under 'method'."""
    for spelling in ("--features", "--method"):
        assert parse_args(WINE + [spelling, "l2_distance"]).method == "l2_distance"


@pytest.mark.parametrize("label, variant, curvature", [
    ("inject_first+sample_clip", "inject_first+sample_clip", "hessian"),
    ("sample_clip+inject_first+ggn", "inject_first+sample_clip", "ggn"),
    ("inject_first+sample_clip+uncorrected", "authors", "hessian"),
    ("authors+inject_first", "authors", "hessian"),
    ("paper+ggn", "paper", "ggn"),
    ("uncorrected+uncorrected", "uncorrected", "hessian"),
])
def test_joined_variant_labels_compose_their_quirks(label, variant, curvature):
    """A '+'-joined label keeps every part: the quirks together (all three are 'authors'), one
    name for one set of quirks whatever the order, the same through --hf_variant."""
    from utils.common.options import parse_hf_label
    from utils.proposed.hfconfig import QUIRKS, HFConfig
    flags = parse_hf_label(label)
    assert flags == {"hf_variant": variant, "hf_curvature": curvature, "hf_damping": 0.0, "hf_order": 1}
    wanted = {q for part in label.split("+") for q in ({"authors": QUIRKS}.get(part, (part,))) if q in QUIRKS}
    assert {q for q in QUIRKS if HFConfig.from_flags(flags).has(q)} == wanted
    assert HFConfig.from_flags(parse_hf_label(HFConfig.from_flags(flags).label)) == HFConfig.from_flags(flags)
    joined = "+".join(p for p in label.split("+") if p not in ("ggn", "hessian"))
    assert parse_args(flags_with(hf_variant=joined)).hf_variant == variant


@pytest.mark.parametrize("label, needle", [
    ("paper+authors", "'paper' (the paper's recursion, no quirk) contradicts 'authors'"),
    ("sample_clip+paper", "'paper' (the paper's recursion, no quirk) contradicts 'sample_clip'"),
    ("ggn+hessian", "names two curvatures, 'ggn' and 'hessian'"),
    ("kappa=0.1+authors+kappa=0.2", "names two dampings, 'kappa=0.1' and 'kappa=0.2'"),
    ("order2+order1", "names two orders, 'order2' and 'order1'"),
    ("authors+order2", "order2 is derived for the paper's recursion only"),
    ("authors,inject_first+uncorrected+sample_clip", "'authors' and 'inject_first+uncorrected+sample_clip' "
                                                     "name the same variant"),
])
def test_contradictory_labels_are_one_line_before_work(label, needle, dirs):
    proc = run_script("main_eva.py", *WINE, *dirs, "--proposed_rows", label, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and needle in proc.stderr
    assert proc.stderr.startswith("error: --proposed_rows: ")


def test_hf_variant_flag_refuses_contradictions_and_other_parts():
    for value, needle in [("paper+authors", "--hf_variant 'paper+authors': 'paper'"),
                          ("ggn", "--hf_variant: unknown part 'ggn'"),
                          ("inject_first+x", "--hf_variant: unknown part 'x'")]:
        with pytest.raises(InputError, match=re.escape(needle)):
            validate(build_parser().parse_args(flags_with(hf_variant=value)))


def test_label_command_prints_the_composed_flags_and_names_its_source():
    """`python3 -m utils.common.options LABEL` (what the sweeps run for each VARIANTS label)."""
    import subprocess
    import sys
    from helpers import ROOT

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "utils.common.options", *argv], cwd=ROOT,
                              capture_output=True, text=True)
    assert cli("inject_first+sample_clip+uncorrected").stdout.split() == [
        "--hf_variant", "authors", "--hf_curvature", "hessian", "--hf_damping", "0"]
    assert cli("paper").stdout == "" and cli("paper+hessian").stdout == ""
    assert cli("order2").stdout.split() == ["--hf_variant", "paper", "--hf_curvature", "hessian", "--hf_damping", "0",
                                            "--hf_order", "2"]
    bad = cli("ggn+hessian")
    assert bad.returncode == 2 and bad.stderr.startswith("error: label: 'ggn+hessian' names two curvatures")
    many = cli("--variants", "paper", "authors", "paper+sample_clip")
    assert many.returncode == 2 and many.stdout == ""
    assert many.stderr.splitlines() == ["error: VARIANTS: 'paper+sample_clip': 'paper' (the paper's recursion, "
                                        "no quirk) contradicts 'sample_clip'; keep one of them"]
    assert cli("--variants", "paper", "authors", "inject_first+ggn").returncode == 0
