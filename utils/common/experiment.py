"""What every ``main_*.py`` shares: data, model, the cached original model, the forget
set, and where each method's outputs live.

Layout under ``--log_dir``::

    <dataset>-<model>-n<n>-s<seed>-<train key>/      one training configuration
        manifest.json   original.pt
        cache/<kind>-<key>.pt (+ .json)                precomputes (Proposed bank, Hessians, shadows)
        forget-m<m>-<forget key>/                     one deletion set and test set
            <Method>-<method key>.pt / .json           unlearned model / metrics + manifest

The train key hashes every flag that affects w_T, the training tensors actually loaded,
the device type and the initial weights; the forget key hashes U and the test tensors; a
method key hashes the method's own flags (the table is ``utils.common.keys``). Two configurations
never share a file and a rerun finds what an earlier one cached.
"""
import argparse
import copy
import functools
import os
import shlex
import sys
import time

import torch

from models import build_model
from utils.common import artifacts, keys, methods, resources
from utils.common.data import load_data, unit_rows
from utils.training.forget import forget_set
from utils.training.functional import FlatModel, evaluate
from utils.proposed.hfconfig import UnlearnConfig
from utils.common.errors import InputError, fail, interrupted
from utils.training.finite import distance, require_finite
from utils.common.provenance import provenance
from utils.common.report import finish, info, table
from utils.training.train import SGDConfig, make_schedule, pack_schedule, sgd, unpack_schedule

# Flags that change each method's result for a fixed training config and forget set:
# they key the method's files, so two settings never overwrite each other.
METHOD_FLAGS = {m: keys.FAMILIES[m] for m in keys.METHODS}
# The script that writes each method, for "run this first" messages.
METHOD_SCRIPTS = {m.name: m.script for m in methods.METHOD_TABLE}


def select_device(gpu):
    """CUDA device ``gpu`` when >= 0 and CUDA exists; CPU (with a notice) otherwise."""
    if gpu < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        info(f"notice: --gpu {gpu} requested but CUDA is not available; running on CPU")
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if gpu >= count:
        names = ", ".join(f"{i}: {torch.cuda.get_device_name(i)}" for i in range(count))
        raise InputError(f"--gpu: no CUDA device {gpu}; present: {names}")
    # full float32 precision (no TF32) in cuBLAS and cuDNN: distances to the retrained model
    # are small differences of long SGD runs, and TF32 rounding inflates them (README)
    torch.backends.fp32_precision = "ieee"
    return torch.device(f"cuda:{gpu}")


class Experiment:
    """Loaded data, model and forget set for one set of parsed flags."""

    def __init__(self, args, gpu=None):
        """``gpu`` overrides --gpu (a torchrun rank's local device)."""
        self.args = args
        self.device = select_device(args.gpu if gpu is None else gpu)
        self.data = load_data(args.dataset, args.data_dir, args.num_dataset, args.test_train_rate, args.seed)
        torch.manual_seed(args.seed)
        self.fm = FlatModel(build_model(args.model, args.dataset, args.pretrained)).to(self.device)
        self.w0 = self.fm.initial_vector()
        self.X = self.data.X_train.to(self.device)
        self.y = self.data.y_train.to(self.device)
        self.X_test = self.data.X_test.to(self.device)
        if args.unit_norm:                 # every input scaled to unit norm (--unit_norm)
            self.X, self.X_test = unit_rows(self.X), unit_rows(self.X_test)
        self.y_test = self.data.y_test.to(self.device)
        self.n = len(self.y)
        self.U = forget_set(self.n, args.num_forget, args.seed, args.forget_list)
        self.keep = torch.ones(self.n, dtype=torch.bool)
        self.keep[self.U] = False
        self.keep = self.keep.to(self.device)
        self.sgd_config = SGDConfig.from_args(args)
        self.unlearn = UnlearnConfig.from_args(args)
        self.progress = not args.quiet
        self.eval_batch = args.bs          # mini-batch of the accuracy / loss evaluations
        self.schedule = [b.to(self.device) for b in
                         make_schedule(self.n, args.batch_size, args.epochs, args.seed, args.reshuffle)]

    # ------------------------------------------------------------------ configuration
    @functools.cached_property
    def _digests(self):
        """Hashes of the training tensors, the test tensors and w_0 (computed once)."""
        d = self.data
        return {"data": keys.digest(d.X_train, d.y_train), "test": keys.digest(d.X_test, d.y_test),
                "init": keys.digest(self.w0)}

    def train_config(self):
        """What the train key hashes: keys.FAMILIES["train"] and keys.DERIVED["train"]."""
        cfg = keys.values(self.args, "train")
        cfg.update(data=self._digests["data"], device=self.device.type, init=self._digests["init"])
        cfg["data_source"] = self.data.source
        return cfg

    def forget_config(self):
        """What the forget key hashes: U, the test tensors and keys.FAMILIES["forget"]."""
        return dict(keys.values(self.args, "forget"), U=self.U.tolist(), test=self._digests["test"])

    def result_identity(self):
        """Everything a result computed from this configuration's saved models depends on."""
        return {"train": self.train_config(), "forget": self.forget_config(),
                "methods": {m: self.method_config(f) for m, f in METHOD_FLAGS.items()}}

    @property
    def train_dir(self):
        a = self.args
        name = f"{a.dataset}-{a.model}-n{a.num_dataset}-s{a.seed}-{artifacts.config_key(self.train_config())}"
        return os.path.join(a.log_dir, name)

    @property
    def forget_dir(self):
        key = artifacts.config_key(self.forget_config())
        return os.path.join(self.train_dir, f"forget-m{len(self.U)}-{key}")

    def with_flags(self, **values):
        """This experiment (same data, model and forget set) seen with some method flags
        changed, e.g. another --hf_variant: for reading that setting's files."""
        other = copy.copy(self)
        other.args = argparse.Namespace(**dict(vars(self.args), **values))
        other.unlearn = UnlearnConfig.from_args(other.args)
        return other

    def method_config(self, flags):
        return keys.keyed(flags, self.args)

    def cache_path(self, kind, flags=(), extra=None):
        """Path of a precompute that depends on the training config plus ``flags``."""
        cfg = dict(self.method_config(flags), **(extra or {}))
        return os.path.join(self.train_dir, "cache", f"{kind}-{artifacts.config_key(cfg)}.pt")

    # ------------------------------------------------------------------ original model
    def train_original(self, progress=True):
        return sgd(self.fm, self.w0, self.X, self.y, self.schedule, self.sgd_config,
                   progress=progress and self.progress, desc="train original")

    def original(self):
        """(w_T, seconds spent training or 0 when cached); trains and caches on first use,
        under a lock: a second process on the same configuration waits and reuses it."""
        path = os.path.join(self.train_dir, "original.pt")
        with artifacts.lock(path, "the original model"):
            return self._original(path)

    def _original(self, path):
        if os.path.exists(path):
            w = self.original_record(path)["w"]
            return w.to(self.device), 0.0
        self.check_writable([self.train_dir], {path: self.original_bytes()})
        start = time.perf_counter()
        w = self.train_original()
        seconds = time.perf_counter() - start
        flat, sizes = pack_schedule([b.cpu() for b in self.schedule])
        # the manifest first: original.pt is what marks the pair complete
        artifacts.write_json(os.path.join(self.train_dir, "manifest.json"),
                             {"config": self.train_config(), "d": self.fm.d, "n": self.n,
                              "steps": len(self.schedule), "train_seconds": seconds,
                              "provenance": provenance(self)})
        artifacts.save_tensors(path, {"w": w, "w0": self.w0, "schedule": flat, "batch_sizes": sizes,
                                      "train_idx": self.data.train_idx})
        return w, seconds

    def original_bytes(self):
        """Estimated size of original.pt: w, w_0, the schedule and the subset indices."""
        return 8 * self.fm.d + 8 * (sum(len(b) for b in self.schedule) + len(self.schedule) + self.n) + 4096

    def original_record(self, path=None, remedy=None):
        """The tensors of original.pt, verified and checked against this configuration's shapes."""
        path = path or os.path.join(self.train_dir, "original.pt")
        d, T = self.fm.d, len(self.schedule)
        t = artifacts.load_tensors(path, remedy=remedy, expect={
            "w": (d,), "w0": (d,), "schedule": (sum(len(b) for b in self.schedule),),
            "batch_sizes": (T,), "train_idx": (self.n,)}, finite=("w", "w0"))
        fix = remedy or f"delete {path} and rerun: {artifacts.rerun_command()}"
        if int(t["batch_sizes"].sum()) != len(t["schedule"]):
            raise InputError(f"artefact {path}: its batch sizes do not add up to its schedule; {fix}")
        if len(t["batch_sizes"]) and int(t["batch_sizes"].min()) < 1:
            raise InputError(f"artefact {path}: its schedule has an empty batch; {fix}")
        if len(t["schedule"]) and not (0 <= int(t["schedule"].min()) and int(t["schedule"].max()) < self.n):
            raise InputError(f"artefact {path}: its schedule holds sample indices outside 0..{self.n - 1} "
                             f"(n = {self.n}); {fix}")
        return t

    def check_writable(self, directories, sizes=None):
        """Before the work: every directory of ``directories`` is created and probed with a
        real file, and every file of ``sizes`` ({path: bytes}) fits the file-size limit and
        the free space; InputError naming the directory or file otherwise."""
        for directory in directories:
            resources.probe_directory(directory)
        if sizes:
            resources.check_file_sizes(sizes)

    def retrain(self, progress=True):
        """Exact unlearning reference: the same SGD with U removed from every batch."""
        return sgd(self.fm, self.w0, self.X, self.y, self.schedule, self.sgd_config, keep=self.keep,
                   norm=self.unlearn.retrain_norm, progress=progress and self.progress, desc="retrain")

    def require_original(self):
        """w_T, or exit naming the command that trains it."""
        path = os.path.join(self.train_dir, "original.pt")
        if not os.path.exists(path):
            raise InputError(f"no trained model at {path}; run: {command_line('main_retrain.py')}")
        return self.original()[0]

    def recorded_schedule(self):
        """The batch schedule stored with the original model."""
        t = self.original_record()
        return [b.to(self.device) for b in unpack_schedule(t["schedule"], t["batch_sizes"])]

    # ------------------------------------------------------------------ evaluation
    def metrics(self, w):
        """Accuracy and loss on the test set, the forget set U and the remaining D \\ U, with
        ``w`` cast to the model's own dtype (the float64 noise floor is stored in float64)."""
        w = w.to(self.w0.dtype)
        bs = self.eval_batch
        w = w.to(self.X.dtype)             # a float64 release (certified removal) is evaluated as the model runs
        U = self.U.to(self.device)
        rest = self.keep.nonzero().squeeze(1)
        out = {}
        for name, X, y in [("test", self.X_test, self.y_test), ("forget", self.X[U], self.y[U]),
                           ("remain", self.X[rest], self.y[rest])]:
            out[f"{name}_acc"], out[f"{name}_loss"] = evaluate(self.fm, w, X, y, bs)
        return out

    # ------------------------------------------------------------------ method outputs
    def method_paths(self, method, flags=None):
        flags = METHOD_FLAGS.get(method, []) if flags is None else flags
        key = artifacts.config_key({"method": method, **self.method_config(flags)})
        base = os.path.join(self.forget_dir, f"{method}-{key}")
        return base + ".pt", base + ".json"

    def save_method(self, method, w, metrics, flags=None):
        """Write the unlearned model and its metrics + manifest for this deletion set."""
        flags = METHOD_FLAGS.get(method, []) if flags is None else flags
        pt, js = self.method_paths(method, flags)
        require_finite(w, f"the {method} model", f"nothing saved; change the flags of "
                       f"{METHOD_SCRIPTS.get(method, 'its script')}")
        artifacts.save_tensors(pt, {"w": w})
        record = {"method": method, "metrics": metrics, "method_config": self.method_config(flags),
                  "train_config": self.train_config(), "forget_indices": self.U.tolist(),
                  "model_file": os.path.basename(pt), "provenance": provenance(self)}
        artifacts.write_json(js, record)
        return pt

    def load_method(self, method, flags=None, command=None):
        """(w, record) of a saved method, or None when absent (InputError with ``command``)."""
        pt, js = self.method_paths(method, flags)
        if not (os.path.exists(pt) and os.path.exists(js)):
            if command:
                raise InputError(f"no {method} model for this configuration ({pt}); run: {command}")
            return None
        remedy = f"delete it and rerun {command or METHOD_SCRIPTS.get(method, 'its script')}"
        w = artifacts.load_tensors(pt, remedy=remedy, expect={"w": (self.fm.d,)})["w"]
        return w.to(self.device), artifacts.read_json(js, remedy=remedy, fields=("method",))

    def saved_methods(self):
        """{method: (w, record)} for every registered method saved for these flags."""
        found = {}
        for method in METHOD_FLAGS:
            got = self.load_method(method)
            if got is not None:
                found[method] = got
        return found

    def require_method(self, method):
        """(w, record) of ``method`` or InputError naming the command that makes it."""
        script = METHOD_SCRIPTS.get(method, "the script of " + method)
        extra = [f for f in script.split()[1:] if f not in sys.argv[1:]]
        return self.load_method(method, command=command_line(script.split()[0], extra=extra))


def command_line(script, drop=(), extra=()):
    """The command that recreates an artefact: ``script`` with the user's own flags (without
    --json, and without the flags of ``drop`` and their values), then ``extra``; shell-quoted,
    so it can be pasted whatever the paths hold (spaces, quotes, unicode)."""
    argv, kept = sys.argv[1:], []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a.split("=")[0] in drop:
            skip = "=" not in a
        elif a != "--json":
            kept.append(a)
    return shlex.join(["python3", script] + kept + list(extra))


def run_main(main, *args):
    """Run a script body ``main(*args)``, turning InputError into one line and exit status 2,
    and Ctrl-C into one line and exit status 130 (files being written are removed: see
    ``utils.common.artifacts``)."""
    try:
        main(*args)
    except InputError as e:
        fail(str(e))
    except KeyboardInterrupt:
        interrupted()


def run_baseline(method, unlearn, args):
    """Shared body of the one-shot baseline scripts (NU, IJ, fine-tuning, NegGrad).

    ``unlearn(exp, w_T)`` returns the unlearned parameters, or (w, costs) with costs a dict
    of precompute_s / unlearn_s / storage_bytes (and anything else worth recording); a bare
    w is timed here as the unlearning time, with no precompute and no storage. ``args``: the
    script's parsed flags.
    """
    exp = Experiment(args)
    info(f"data: {exp.data.source}; n={exp.n}, d={exp.fm.d}, m={len(exp.U)}, device={exp.device}")
    caches = methods.BY_NAME[method].kind == methods.SECOND_ORDER      # the Hessian (factor) cache
    exp.check_writable([exp.forget_dir] + ([os.path.join(exp.train_dir, "cache")] if caches else []),
                       {exp.method_paths(method)[0]: 4 * exp.fm.d + 4096})
    w_T, train_s = exp.original()
    start = time.perf_counter()
    got = unlearn(exp, w_T)
    if isinstance(got, tuple):
        w, costs = got
    else:
        w, costs = got, dict(unlearn_s=time.perf_counter() - start, precompute_s=0.0, storage_bytes=0)
    metrics = dict(exp.metrics(w), **costs, data_source=exp.data.source)
    retrain = exp.load_method("Retrain")
    if retrain is not None:
        metrics["distance"] = distance(w, retrain[0], f"the distance of {method} to Retrain",
                                       f"delete {exp.forget_dir} and rerun")
    path = exp.save_method(method, w, metrics)
    rows = [dict(method="Original", **exp.metrics(w_T)), dict(method=method, **metrics)]
    if retrain is not None:
        rows[0]["distance"] = distance(w_T, retrain[0], "the distance of Original to Retrain",
                                       f"delete {exp.forget_dir} and rerun")
    cols = ["method", "distance", "test_acc", "forget_acc", "remain_acc", "precompute_s", "unlearn_s",
            "storage_bytes"]
    cached = " (cached)" if costs.get("precompute_cached") else ""
    note = (f"\nprecompute {costs['precompute_s']:.2f}s{cached}, unlearn {costs['unlearn_s']:.3f}s, "
            f"storage {costs['storage_bytes']} bytes; model: {path}")
    if retrain is None:
        note += f"\n(no Retrain model: run {command_line('main_retrain.py')} for the distance)"
    finish(dict(metrics, method=method, model=path, train_s=train_s), args.json, table(rows, cols) + note)
