"""`python -m cnnexp.eval run=FOLDER` (or ckpt=FILE): test a trained model again, from the run
folder alone — the network is rebuilt from the checkpoint's own config.

    python -m cnnexp.eval run=outputs/2026-11-25/10-31-02 [split=val] [full=true] [data.root=DIR] [json=true]

By default the run's own precision and evaluation limits (trainer.limit_test_batches …): the
number it logged, again, and the first line says over how many of the split's images. full=true
evaluates the whole split.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Optional

from cnnexp.core.errors import SettingsError, UserError, fail
from cnnexp.run.restore import load_task


@dataclass
class EvalData:
    root: Optional[str] = None  # where the data is, if not where the run found it


@dataclass
class EvalArgs:
    run: Optional[str] = None   # a run folder: its best.ckpt (else last.ckpt)
    ckpt: Optional[str] = None  # or a checkpoint file
    split: str = "test"         # test or val
    json: bool = False          # the metrics as JSON
    full: bool = False          # the whole split, not the run's trainer.limit_{test,val}_batches
    data: EvalData = field(default_factory=EvalData)


def evaluate(args: EvalArgs) -> dict:
    from cnnexp.core.console import quiet_lightning

    import lightning as L

    quiet_lightning()
    from cnnexp.data import make_datamodule
    from cnnexp.run.restore import data_there

    task, path = load_task(args.run, args.ckpt, args.data.root)
    data_there(task.settings.data.name, task.settings.data.root, str(path), bool(args.data.root))
    datamodule = make_datamodule(task.settings)  # the run's own data, split and normalisation
    t = task.settings.trainer  # the run's own precision and evaluation limits: the same numbers again
    limits = dict(limit_test_batches=1.0, limit_val_batches=1.0) if args.full else dict(
        limit_test_batches=t.limit_test_batches, limit_val_batches=t.limit_val_batches)
    trainer = L.Trainer(accelerator="auto", devices=1, precision=t.precision, logger=False, **limits,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    run = trainer.validate if args.split == "val" else trainer.test
    metrics = run(task, datamodule=datamodule, verbose=False)[0]
    from cnnexp.data.inputs import noun

    return {"checkpoint": str(path), "split": args.split, "full": args.full, **images_seen(trainer, args.split),
            "inputs": noun(task.settings.data.name),
            **{k: round(float(v), 6) for k, v in metrics.items()}}


def images_seen(trainer, split: str) -> dict:
    """How many of the split's images the figures are over: a run's limit_{test,val}_batches
    evaluates its first batches only (None where the loader does not say its batch size)."""
    loader = trainer.test_dataloaders if split == "test" else trainer.val_dataloaders
    loader = loader[0] if isinstance(loader, (list, tuple)) else loader
    batches = (trainer.num_test_batches if split == "test" else trainer.num_val_batches)[0]
    total = len(loader.sampler)  # a DataLoader's or cnnexp's in-memory loader's: the split's images
    seen = total if loader.batch_size is None or batches == float("inf") else min(int(batches) * loader.batch_size, total)
    return {"images": seen, "images_in_split": total}


def heading(result: dict) -> str:
    """What the figures are of: the checkpoint, the split, and how many of its images — the run's
    limit_{test,val}_batches may have evaluated a few batches of it, which full=true does not."""
    seen, total, split, what = result["images"], result["images_in_split"], result["split"], result.get("inputs", "images")
    over = f"all {total:,} {what}" if seen == total else \
        f"{seen:,} of its {total:,} {what}, the run's trainer.limit_{split}_batches; full=true evaluates all"
    return f"{result['checkpoint']} on the {split} set ({over if result['full'] else 'as the run evaluated it: ' + over}):"


def main(argv=None) -> None:
    from cnnexp.config import args as cli_args

    cli_args.exit_on_help(__doc__, argv, EvalArgs)
    try:
        args = cli_args.parse(EvalArgs, argv)
        if args.split not in ("test", "val"):
            raise SettingsError("split", args.split, "test or val")
        result = evaluate(args)
    except UserError as e:
        fail(e)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(heading(result))
        for key, value in result.items():
            if "/" in key:
                print(f"  {key:<12} {100 * value:.2f} %" if key.endswith("acc") else f"  {key:<12} {value:.4f}")
    sys.stdout.flush()


if __name__ == "__main__":
    from cnnexp.core.console import report_like_cat
    from cnnexp.core.stopping import run_command

    report_like_cat()
    run_command(main, "nothing was written")
