"""The typed schema of a run's settings: one dataclass per config group, and the choices a key
may take.

Defaults live in one place, the YAML files under conf/: they are what users read, copy and
override, and `--cfg job` prints them. The dataclasses carry types only (no defaults), so merging
the composed config into them rejects unknown keys, values of the wrong type and keys the YAML
forgot; `train_default` reads a default back for code that needs one without a composed config.
Pure Python: no torch.
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from functools import cached_property
from typing import Any, List, Optional

from cnnexp import CONF_DIR
from cnnexp.arithmetic.geometry import POOLS, plan
from cnnexp.core.errors import SettingsError


@dataclass
class PathsSettings:
    project_dir: str
    data_dir: str
    output_dir: str


@dataclass
class WheelSettings:
    name: str
    version: str
    sha256: str


@dataclass
class DataSettings:
    """data=mnist (the default)."""
    name: str
    root: str
    val_size: int
    batch_size: int
    eval_batch_size: int
    normalize: bool
    sources: List[str]
    mirrors: List[str]
    download_timeout: float
    wheel: WheelSettings


@dataclass
class FolderSettings:
    """data=folder: your own images, one subfolder per class (see cnnexp.data.images)."""
    name: str
    root: str
    image_size: Any               # auto (the most common size), a side, or [height, width]
    channels: Any                 # auto (3 if any image has colour, else 1), 1 or 3
    classes: Optional[List[str]]  # filled in from the class folders; recorded with the run
    val_fraction: float
    test_fraction: float
    batch_size: int
    eval_batch_size: int
    normalize: bool
    mean: Optional[List[float]]   # per channel, of the training split: computed once, then recorded
    std: Optional[List[float]]
    memory_budget_mb: int
    num_workers: int
    strict: bool


@dataclass
class SeriesSettings:
    """data=series: a UCR/UEA problem's _TRAIN and _TEST files (.ts, .npz or .npy; see cnnexp.data.series)."""
    name: str
    root: str
    problem: str                  # auto: the one problem data.root holds; recorded
    length: Any                   # auto: the longest series of the set (shorter ones padded); recorded
    channels: Optional[int]       # filled in from the files; recorded
    classes: Optional[List[str]]  # from @classLabel (else the sorted labels); recorded
    val_fraction: float
    scaling: str                  # channel (training split's mean/std), series (each z-normalised) or none
    mean: Optional[List[float]]   # per channel, of the training split, with scaling=channel: recorded
    std: Optional[List[float]]
    batch_size: int
    eval_batch_size: int
    normalize: bool               # the views' flag; the scaling rule is data.scaling
    padded: Optional[bool] = None  # recorded: the set held shorter series (padded); predict pads only then


@dataclass
class SeqMNISTSettings:
    """data=seqmnist: MNIST read pixel by pixel, a 1×784 sequence (see cnnexp.data.seqmnist)."""
    name: str
    root: str
    val_size: int
    batch_size: int
    eval_batch_size: int
    normalize: bool
    permute: bool                 # the fixed permutation of the permuted-MNIST benchmark
    permute_seed: int             # its seed: the same permutation in every run
    sources: List[str]
    mirrors: List[str]
    download_timeout: float
    wheel: WheelSettings


@dataclass
class VolumesSettings:
    """data=volumes: class subfolders of .npy volumes C×D×H×W or D×H×W (see cnnexp.data.volumes)."""
    name: str
    root: str
    shape: Optional[List[int]]    # C, D, H, W: filled in from the files; recorded
    classes: Optional[List[str]]
    val_fraction: float
    test_fraction: float
    batch_size: int
    eval_batch_size: int
    normalize: bool
    mean: Optional[List[float]]
    std: Optional[List[float]]


@dataclass
class MovingMNISTSettings:
    """data=moving_mnist: clips of one MNIST digit moving and bouncing (see cnnexp.data.moving_mnist)."""
    name: str
    root: str
    val_size: int                 # MNIST training digits kept for the validation clips
    frames: int
    size: int                     # frame side in pixels
    train_clips: int
    val_clips: int
    test_clips: int
    clip_seed: int                # the clips are made from MNIST and this seed, the same in every run
    batch_size: int
    eval_batch_size: int
    normalize: bool
    sources: List[str]
    mirrors: List[str]
    download_timeout: float
    wheel: WheelSettings


DATASETS = {"mnist": DataSettings, "folder": FolderSettings, "series": SeriesSettings,  # data.name → its schema
            "seqmnist": SeqMNISTSettings, "volumes": VolumesSettings, "moving_mnist": MovingMNISTSettings}


@dataclass
class BlockSettings:
    channels: int
    kernel_size: Any  # an int, or a list with one per spatial axis (the same for stride … pool_padding)
    stride: Any
    padding: Any  # int (or one per axis), "same" or "valid"
    dilation: Any
    groups: int
    bias: Any  # auto (off when a norm follows), true or false
    norm: str
    norm_groups: int
    activation: str
    pool: str
    pool_kernel: Any
    pool_stride: Any
    pool_padding: Any


@dataclass
class HeadSettings:
    hidden: List[int]
    dropout: float
    init: str  # of the linears: xavier, pytorch, or zero (the class layer starts at 0)


@dataclass
class ModelSettings:
    name: str
    task: str
    input_shape: Any  # auto (from the data) or [channels, *spatial]: [C, L], [C, H, W] or [C, D, H, W]
    num_classes: Any  # auto (from the data) or an integer
    kernel_size: Any  # null, an int, or one per spatial axis (as stride, padding, dilation)
    stride: Any
    padding: Any
    dilation: Any
    groups: Optional[int]
    bias: Any
    norm: Optional[str]
    norm_groups: Optional[int]
    activation: Optional[str]
    pool: Optional[str]
    pool_first: bool  # each block pools right after its conv, before its norm and activation
    blocks: List[BlockSettings]
    head: HeadSettings

    @cached_property
    def layers(self):
        """The shape plan (geometry.Layer rows), worked once: the check, the table and the
        network all read this one."""
        return plan(self)


@dataclass
class OptimizerSettings:
    name: str
    lr: float
    weight_decay: float
    momentum: float
    betas: List[float]  # adam, adamw
    nesterov: bool      # sgd


@dataclass
class SchedulerSettings:
    name: str
    max_lr: Optional[float]


@dataclass
class TrainerSettings:
    """The lightning.Trainer arguments cnnexp passes through (tests keep this list in step)."""

    accelerator: str
    devices: Any
    strategy: str
    num_nodes: int
    precision: str
    max_epochs: int
    max_steps: int
    limit_train_batches: Any
    limit_val_batches: Any
    limit_test_batches: Any
    val_check_interval: Any
    check_val_every_n_epoch: Optional[int]
    log_every_n_steps: Any  # auto: resolved by the check from the batches an epoch holds
    num_sanity_val_steps: int
    gradient_clip_val: Optional[float]
    accumulate_grad_batches: int
    deterministic: Any
    benchmark: Optional[bool]
    enable_progress_bar: bool
    enable_model_summary: bool


@dataclass
class MLflowSettings:
    experiment: str
    tracking_uri: str  # resolved when the run starts: MLFLOW_TRACKING_URI, else a SQLite store under outputs/


@dataclass
class WandbSettings:
    project: str
    entity: Optional[str]
    mode: str  # offline (files in the run folder), online or disabled; WANDB_MODE when set


WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class LoggerSettings:
    tensorboard: bool
    log_graph: bool
    mlflow: Optional[MLflowSettings]  # null: off (logger=mlflow turns it on)
    wandb: Optional[WandbSettings]    # null: off (logger=wandb turns it on)


@dataclass
class CheckpointSettings:
    monitor: str
    mode: str
    save_last: bool


@dataclass
class EarlyStoppingSettings:
    patience: int     # validations without improvement of the checkpoint's monitor; 0: off
    min_delta: float  # a smaller change is no improvement


@dataclass
class SystemMetricsSettings:
    every_s: float  # seconds of training between samples; 0: off


@dataclass
class ViewSettings:
    every_n_epochs: int
    text: bool
    filters: bool
    feature_maps: bool
    receptive_field: bool
    arithmetic: bool
    mistakes: bool
    confusion_matrix: bool
    reconstructions: bool


@dataclass
class CallbackSettings:
    checkpoint: CheckpointSettings
    early_stopping: EarlyStoppingSettings
    system_metrics: SystemMetricsSettings
    views: ViewSettings
    progress_bar_refresh: Any  # auto (a bar on a terminal, a line per epoch elsewhere) or an integer


@dataclass
class SweepOptions:
    replicate_keys: List[str]
    fail_fast: bool
    retries: int


@dataclass
class LossSettings:
    label_smoothing: float


@dataclass
class LookaheadSettings:
    every: int    # steps between syncs; 0: off
    decay: float  # the slow weights keep this share at each sync (ramped up over training)


@dataclass
class TTASettings:
    shift: int     # pixels; 0: off
    margin: float  # shifted copies only where the plain view's top-two probability margin is below it; 1: all


@dataclass
class AugmentSettings:
    shift: int     # pixels: each training image moved by a random offset of up to this along each axis; 0: off


@dataclass
class PerformanceSettings:
    channels_last: Any  # auto: on the CPU and with 16-bit precision; true / false
    compile: bool  # torch.compile the network


@dataclass
class Settings:
    seed: int
    test_after_fit: bool
    resume: Optional[str]
    sweep_options: SweepOptions
    paths: PathsSettings
    data: Any  # DataSettings or FolderSettings, by data.name
    model: Any  # ModelSettings, or OwnModelSettings for model=own (config.own_network)
    optimizer: OptimizerSettings
    scheduler: SchedulerSettings
    loss: LossSettings
    lookahead: LookaheadSettings
    tta: TTASettings
    augment: AugmentSettings
    trainer: TrainerSettings
    logger: LoggerSettings
    callbacks: CallbackSettings
    performance: PerformanceSettings
    print_config: bool = False  # the resolved config on the console (config.yaml always has it)


# ---------------------------------------------------------------- the choices a key may take
# Keys whose value is a folder the user names: taken as typed (config.compose quotes them for
# Hydra), never empty. hydra.* are Hydra's own; resume is a run or sweep folder.
PATH_KEYS = ("resume", "paths.project_dir", "paths.data_dir", "paths.output_dir", "data.root",
             "hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir")


def check_path(key: str, value: Any, fix: str = "") -> None:
    """The one refusal of an empty path (whitespace-only too): `''` reads as the current folder, and
    under another path's `${…}` as the file-system root (`paths.output_dir=''` ran at /2026-…)."""
    if isinstance(value, str) and not value.strip():
        raise SettingsError(key, value, "an empty value names no folder or file (a path would be read as the "
                                        f"current folder, or the file-system root); {fix or f'give one, or leave {key}= out'}")
    if isinstance(value, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):  # s3://b/x would become ./s3:/b/x
        raise SettingsError(key, value, "a folder on this machine, not a URL (it would be made as a local folder "
                                        "named after the URL); copy or mount the data here and name that folder")


POOL_CHOICES = (*POOLS, "none")
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}  # name → torch.optim class
SCHEDULERS = ("none", "one_cycle")
HEAD_INITS = ("xavier", "pytorch", "zero")
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
# What lightning.Trainer(precision=…) accepts (a test keeps this in step with Lightning).
PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16", "16-mixed", "16", "16-true", "bf16-true", "64-true", "64",
              "transformer-engine", "transformer-engine-float16")


def train_default(key: str) -> Any:
    """A root setting's default as conf/train.yaml states it (`sweep_options.replicate_keys`): for
    records written before the key existed, read without composing."""
    from omegaconf import OmegaConf

    value = OmegaConf.select(OmegaConf.load(CONF_DIR / "train.yaml"), key)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def replicate_keys_default() -> List[str]:
    """The keys whose runs are replicates of one setting unless a sweep records its own."""
    return list(train_default("sweep_options.replicate_keys"))
