"""The pretraining loop, run under ``accelerate launch`` (one process, DDP, FSDP: accelerate decides).

A step is one optimizer update (``gradient_accumulation_steps`` micro-batches per process). Logging, validation and
checkpoints happen at step boundaries, where every process is at the same point, because each of them is a
collective operation.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, TensorBoardTracker, get_available_trackers
from accelerate.utils import DistributedType, set_seed
from huggingface_hub import ModelCard
from tqdm.auto import tqdm
from transformers import PretrainedConfig, PreTrainedModel, get_scheduler

from ..file_guards import OutputDirLock
from ..hub import save_hub_folder
from ..model_card import CardResult, build_card, config_yaml, public_name
from ..model_source import position_limit, position_limit_reason
from ..modeling.configuration_base import MLM, PROFILE, objective_parts, profile_task_alpha
from ..run_logging import configure_logging
from ..tokenization import build_tokenizer
from .arguments import DataArguments, ModelArguments, PretrainingArguments, as_flat_dict, parse_overrides
from .checkpoints import (
    CheckpointContents,
    CheckpointError,
    Trainables,
    TrainState,
    apply_checkpoint,
    complete_checkpoints,
    read_checkpoint,
    remove_partial,
    save_checkpoint,
)
from .metrics import MetricsLog, ObjectiveSums, objective_sums, summary
from .model_setup import build_pretraining_model, pretraining_auto_class
from .pipeline import DataPosition, PretrainingData, build_data
from .plotting import plot_curves

logger = logging.getLogger(__name__)

#: The run's log, in its output folder: appended to, so a resumed run continues it.
LOG_FILE = "protconv.log"
#: The trackers' project (wandb project, mlflow experiment...); each run is named by ``--run_name``.
TRACKER_PROJECT = "protconv"


class NonFiniteLossError(RuntimeError):
    """The loss stayed NaN/inf for too many consecutive steps: training has diverged."""


@dataclass
class PretrainingResult:
    """What a finished (or deliberately stopped) run produced."""

    step: int
    model_dir: Path | None
    validation: dict[str, float]
    skipped_steps: int


def pretrain(
    model_args: ModelArguments,
    data_args: DataArguments,
    train_args: PretrainingArguments,
    model: PreTrainedModel | None = None,
) -> PretrainingResult:
    """Pretrain ``model`` (default: built from ``model_args``) on ``data_args``' corpora with the model's
    ``pretraining_objective`` (masked LM, MSA profile prediction, or both)."""
    configure_logging(train_args.log_level)  # the console now; the run's log file once its folder is locked
    try:
        run = _Run(model_args, data_args, train_args, model)
        try:
            return run.train()
        finally:
            run.release()
    finally:
        configure_logging(train_args.log_level)  # closes the log file: later records are not this run's


class _Run:
    """State of one pretraining run; methods are the phases of the loop."""

    def __init__(
        self,
        model_args: ModelArguments,
        data_args: DataArguments,
        train_args: PretrainingArguments,
        model: PreTrainedModel | None,
    ) -> None:
        self.train_args = train_args
        self.run_arguments = as_flat_dict(model_args, data_args, train_args)
        self.output_dir = Path(train_args.output_dir)
        self.checkpoints = self.output_dir / "checkpoints"
        self.metrics_path = self.output_dir / "metrics.jsonl"
        self.run_name = train_args.run_name or self.output_dir.resolve().name
        self.accelerator = Accelerator(
            gradient_accumulation_steps=train_args.gradient_accumulation_steps,
            mixed_precision=train_args.mixed_precision,
            log_with=_trackers(train_args.report_to, self.run_name, self.output_dir) or None,
            project_dir=str(self.output_dir),
        )
        self.lock = OutputDirLock(self.output_dir) if self.accelerator.is_main_process else None
        self._agree_or_raise(self.lock.acquire if self.lock else None)
        try:
            self._set_up(model_args, data_args, train_args, model)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Let another run use the output folder (a dead process releases it too)."""
        if self.lock is not None:
            self.lock.release()

    def _set_up(
        self,
        model_args: ModelArguments,
        data_args: DataArguments,
        train_args: PretrainingArguments,
        model: PreTrainedModel | None,
    ) -> None:
        """Output folder, model, data, optimizer, schedule; the state of a checkpoint when resuming."""
        resume_candidates = self._prepare_output_dir()
        main = self.accelerator.is_main_process
        # The main process alone writes the file: appends from several hosts to one shared file can interleave.
        configure_logging(train_args.log_level, self.output_dir / LOG_FILE if main else None, main_process=main)
        if self.restart_note:
            self._print(self.restart_note)
        set_seed(train_args.seed)
        model = self._set_up_model_and_data(model_args, data_args, train_args, model)
        # After the data, so that an error in the inputs is the only line a failed set-up prints.
        parameters = sum(parameter.numel() for parameter in model.parameters())  # before accelerate shards them
        self._print(
            f"run {self.run_name}: {model_args.model} ({parameters:,} parameters, objective "
            f"{model.config.pretraining_objective}), {train_args.max_steps} steps, output in {self.output_dir}"
        )
        self._set_up_optimization(model, train_args)
        self.metrics = MetricsLog(self.metrics_path, enabled=self.accelerator.is_main_process)
        self.state = TrainState(arguments=self.run_arguments, corpus=self.data.corpus_identity())
        if resume_candidates:
            self._resume(resume_candidates)
        if self.accelerator.log_with:
            self._start_trackers()
        self.skipped_steps = 0
        self.nonfinite_streak = 0
        self.last_validation: dict[str, float] = {}
        self.started = time.perf_counter()  # wall clock of this process's part of the run (restarts on resume)

    def _set_up_model_and_data(
        self,
        model_args: ModelArguments,
        data_args: DataArguments,
        train_args: PretrainingArguments,
        model: PreTrainedModel | None,
    ) -> PreTrainedModel:
        """The tokenizer, the model (built from ``model_args`` unless given) and this process's data."""
        self.tokenizer = build_tokenizer(data_args.add_cls, data_args.add_eos)
        if model is None:
            model = build_pretraining_model(model_args.model, _config_overrides(model_args))
        _check_max_length(model.config, data_args.max_length)
        self.config = model.config
        with self.accelerator.main_process_first():  # the main process fills the profile cache; the others read it
            self.data: PretrainingData = build_data(
                data_args,
                self.tokenizer,
                self.accelerator.num_processes,
                self.accelerator.process_index,
                train_args.seed,
                objective=model.config.pretraining_objective,
                cache_dir=data_args.profile_cache_dir or self.output_dir / "profile_cache",
                data_cache_dir=data_args.data_cache_dir or self.output_dir / "data_cache",
                progress=self.accelerator.is_main_process and not train_args.disable_tqdm,
            )
        return model

    def _set_up_optimization(self, model: PreTrainedModel, train_args: PretrainingArguments) -> None:
        """AdamW and its schedule; the model and optimizer prepared by accelerate (sharded under FSDP)."""
        optimizer = torch.optim.AdamW(
            _parameter_groups(model, train_args.weight_decay),
            lr=train_args.learning_rate,
            betas=(train_args.adam_beta1, train_args.adam_beta2),
            eps=train_args.adam_epsilon,
        )
        # Not passed to prepare(): accelerate would step a prepared scheduler once per process per update.
        self.scheduler = get_scheduler(
            train_args.lr_scheduler_type, optimizer, train_args.warmup_steps, train_args.max_steps
        )
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.trainables = Trainables(self.model, self.optimizer, self.scheduler, self.accelerator.scaler)
        self.forward = torch.compile(self.model) if train_args.torch_compile else self.model

    def _start_trackers(self) -> None:
        """The ``--report_to`` trackers, each given the run's name and its (scalar) arguments."""
        self.accelerator.init_trackers(
            TRACKER_PROJECT,
            config=_tracker_config(self.run_arguments),
            init_kwargs=_run_name_kwargs(self.accelerator.log_with, self.run_name),
        )
        _name_started_trackers(self.accelerator, self.run_name)

    # ----------------------------------------------------------------------------------------------- set-up
    def _prepare_output_dir(self) -> list[Path]:
        """Checkpoints to try resuming from, newest first (empty for a fresh run).

        Refuses to mix two runs in one folder: without ``--resume`` an earlier run's checkpoints, model or metrics
        are kept unless ``--overwrite_output_dir`` says to replace them.
        """
        args, main = self.train_args, self.accelerator.is_main_process
        self.restart_note: str | None = None
        if main:
            remove_partial(self.checkpoints)
        self.accelerator.wait_for_everyone()
        existing = complete_checkpoints(self.checkpoints)
        if args.resume_from:
            return [Path(args.resume_from)]
        if args.resume:
            if not existing:
                self._restart_without_checkpoint()
            return existing[::-1]
        earlier = [p.name for p in (self.checkpoints, self.output_dir / "model", self.metrics_path) if p.exists()]
        if earlier and not args.overwrite_output_dir:
            raise FileExistsError(
                f"{self.output_dir} already holds a run ({', '.join(earlier)}); pass --resume to continue it or "
                "--overwrite_output_dir to start over"
            )
        if main and args.overwrite_output_dir:
            for stale in (self.checkpoints, self.output_dir / "model"):
                shutil.rmtree(stale, ignore_errors=True)
            self.metrics_path.unlink(missing_ok=True)
            (self.output_dir / "curves.png").unlink(missing_ok=True)
            (self.output_dir / LOG_FILE).unlink(missing_ok=True)
        self.accelerator.wait_for_everyone()
        return []

    def _restart_without_checkpoint(self) -> None:
        """``--resume`` in a folder without a complete checkpoint (a run killed before its first save, or a new
        folder): start from step 0 there, dropping the killed run's metrics, and say so once the log is open. A
        finished model is never replaced this way."""
        if (self.output_dir / "model").exists():
            raise CheckpointError(
                f"--resume: no complete checkpoint in {self.checkpoints}, but {self.output_dir / 'model'} holds a "
                "finished model; pass --overwrite_output_dir to start over"
            )
        if self.accelerator.is_main_process:
            self.metrics_path.unlink(missing_ok=True)
            (self.output_dir / "curves.png").unlink(missing_ok=True)
        self.accelerator.wait_for_everyone()
        self.restart_note = f"--resume: no complete checkpoint in {self.checkpoints}; starting from step 0"

    def _resume(self, candidates: list[Path]) -> None:
        """Resume from the first candidate that every process can read. With ``--resume`` a corrupt newest
        checkpoint falls back to the next older one, said on the console; ``--resume_from`` names exactly one."""
        path, contents = self._first_readable(candidates)
        self._check_resumed_arguments(contents.state, path)
        self._check_resumed_corpus(contents.state, path)
        corpus = self.state.corpus
        self.state = apply_checkpoint(contents, self.trainables)
        self.state.arguments, self.state.corpus = self.run_arguments, corpus
        self.metrics.truncate_after(self.state.step)
        self._print(
            f"resumed from {path} at step {self.state.step} "
            f"(epoch {self.state.epoch}, {self.state.batches_done} batches into it)"
        )

    def _first_readable(self, candidates: list[Path]) -> tuple[Path, CheckpointContents]:
        """The first of ``candidates`` (at least one) that every process reads; the last one's error otherwise."""
        for index, path in enumerate(candidates):
            contents, error = None, None
            try:
                contents = read_checkpoint(path, self.accelerator.process_index)
            except CheckpointError as failure:
                error = failure
            if self._all_processes_agree(error is None) and contents is not None:
                return path, contents
            reason = error or CheckpointError(f"checkpoint {path} is unreadable on another process")
            if index + 1 == len(candidates):
                raise reason
            if self.accelerator.is_main_process:
                logger.warning("%s; falling back to %s", reason, candidates[index + 1].name)
        raise CheckpointError("no checkpoint to resume from")

    def _check_resumed_arguments(self, saved_state: TrainState, path: Path) -> None:
        """Refuse arguments that differ from the checkpoint's and could not take effect (the optimizer, schedule,
        data and model come back as saved), so that the run's card records exactly what it used."""
        current = self.run_arguments
        changed = {
            key: (saved, current.get(key))
            for key, saved in saved_state.arguments.items()
            if current.get(key) != saved and key not in RESUMABLE_CHANGES
        }
        if changed:
            listed = "; ".join(f"{key}: {saved!r} -> {new!r}" for key, (saved, new) in sorted(changed.items()))
            raise CheckpointError(
                f"cannot resume from {path} with changed arguments ({listed}): the optimizer, schedule, data and "
                f"model continue as saved. Only {', '.join(sorted(RESUMABLE_CHANGES))} may change on resume; "
                "start a new run in another --output_dir to change the others"
            )

    def _check_resumed_corpus(self, saved_state: TrainState, path: Path) -> None:
        """Refuse a FASTA file whose records differ from those the checkpoint trained on (appended, removed or
        edited: the epoch plan and the position in it would no longer mean the same records)."""
        current = self.state.corpus
        for side, files in saved_state.corpus.items():
            for file, digest in files.items():
                if current.get(side, {}).get(file, digest) != digest:
                    raise CheckpointError(
                        f"cannot resume from {path}: the {side} {_kind_of_source(file)} {file} is not the one this "
                        "run trained on (its records were appended to, removed or edited since the checkpoint); "
                        "restore it, or start a new run in another --output_dir"
                    )

    def _all_processes_agree(self, ok: bool) -> bool:
        """True when ``ok`` holds on every process (one all-reduce), so that all take the same branch."""
        failures = torch.tensor([0.0 if ok else 1.0], device=self.accelerator.device)
        return self.accelerator.reduce(failures, "sum").item() == 0

    def _agree_or_raise(self, action: Callable[[], object] | None) -> None:
        """Run ``action`` (main process only, ``None`` elsewhere). If it raises, every process raises, instead of
        the others waiting forever at the next barrier."""
        error = None
        if action is not None:
            try:
                action()
            except Exception as failure:
                error = failure
        if not self._all_processes_agree(error is None):
            raise error or RuntimeError("the main process could not prepare the output folder; see its error")

    # -------------------------------------------------------------------------------------------- the loop
    def train(self) -> PretrainingResult:
        args = self.train_args
        stop_at = min(args.max_steps, args.stop_after_steps or args.max_steps)
        if args.eval_at_start and self.state.step == 0:
            self._validate()
        progress = tqdm(
            total=args.max_steps,
            initial=self.state.step,
            disable=args.disable_tqdm or not self.accelerator.is_local_main_process,
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,  # a log file gets a line every 30 s, not every step
        )
        try:
            self._steps(stop_at, progress)
        finally:  # an error or Ctrl-C must not leave a half-drawn bar above its message
            progress.close()
        return self._finish(stop_at)

    def _steps(self, stop_at: int, progress: tqdm) -> None:
        """Train until step ``stop_at``, epoch after epoch, from the position of ``self.state``."""
        args = self.train_args
        window = ObjectiveSums()
        window_start, window_bad = time.perf_counter(), False
        self.model.train()
        while self.state.step < stop_at:
            seen_batches, from_start = False, self.state.batches_done == 0
            for index, batch in self.data.epoch(DataPosition(self.state.epoch, self.state.batches_done)):
                seen_batches = True
                window_bad |= not self._micro_step(batch, window)
                self.state.batches_done = index + 1
                if not self.accelerator.sync_gradients:
                    continue
                self._finish_step(window_bad)
                window_bad = False
                progress.update(1)
                if self.state.step % args.logging_steps == 0 or self.state.step == stop_at:
                    self._log_train(window, time.perf_counter() - window_start, progress)
                    window = ObjectiveSums()
                    window_start = time.perf_counter()
                self._maybe_validate_and_save(stop_at)
                if self.state.step >= stop_at:
                    break
            else:
                if from_start and not seen_batches:
                    raise ValueError("the training corpus produced no batches")
                self.state.epoch, self.state.batches_done = self.state.epoch + 1, 0

    def _micro_step(self, batch: dict[str, torch.Tensor], window: ObjectiveSums) -> bool:
        """Forward and backward of one micro-batch; False (and no backward anywhere) if any process's loss is
        non-finite, so that all processes skip together instead of waiting for each other's gradients."""
        batch = {key: value.to(self.accelerator.device, non_blocking=True) for key, value in batch.items()}
        labels, targets = batch.pop("labels", None), batch.pop("profile_targets", None)
        with self.accelerator.accumulate(self.model):
            output = self.forward(**batch)
            loss, sums = objective_sums(self.config, output, labels, targets, batch["attention_mask"])
            bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=self.accelerator.device)
            finite = self.accelerator.reduce(bad, "sum").item() == 0
            if finite:
                self.accelerator.backward(loss)
        if not finite:  # keep the window's averages clean: count the tokens, not the poisoned loss terms
            sums.drop_loss_terms()
        window += sums
        return finite

    def _finish_step(self, bad: bool) -> None:
        """Apply (or, after a non-finite loss, skip) the optimizer update of a completed accumulation window."""
        self.state.step += 1
        if bad:
            self.skipped_steps += 1
            self.nonfinite_streak += 1
            self.metrics.write({"step": self.state.step, "split": "event", "event": "non-finite loss, step skipped"})
            logger.warning("step %d: non-finite loss, update skipped", self.state.step)
            if self.nonfinite_streak >= self.train_args.max_nonfinite_steps:
                raise NonFiniteLossError(
                    f"the loss was non-finite in {self.nonfinite_streak} consecutive steps (last: step "
                    f"{self.state.step}); training has diverged: lower --learning_rate, raise --warmup_steps, "
                    "use bf16 instead of fp16, or check the data"
                )
        else:
            self.nonfinite_streak = 0
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.train_args.max_grad_norm)
            self.optimizer.step()
        with warnings.catch_warnings():  # the schedule advances on a skipped step too, which torch warns about
            warnings.filterwarnings(
                "ignore", message=".*lr_scheduler.step.*before.*optimizer.step", category=UserWarning
            )
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------------------------ logging, eval, save
    def _log_train(self, window: ObjectiveSums, seconds: float, progress: tqdm) -> None:
        metrics = summary(self._all_processes(window), self.config)
        self.state.tokens_seen += metrics["tokens"]
        metrics.update(
            tokens_per_second=metrics["tokens"] / max(seconds, 1e-9),
            learning_rate=self.scheduler.get_last_lr()[0],
            tokens_seen=self.state.tokens_seen,
            epoch=self.state.epoch,
        )
        self._record("train", metrics)
        progress.set_postfix(loss=f"{metrics['loss']:.3f}", tok_s=f"{metrics['tokens_per_second']:.0f}")

    def _maybe_validate_and_save(self, stop_at: int) -> None:
        step, args = self.state.step, self.train_args
        if step % args.eval_steps == 0 or step == stop_at:
            self._validate()
        if step % args.save_steps == 0 or step == stop_at:
            save_checkpoint(self.accelerator, self.checkpoints, self.state, self.trainables, args.save_total_limit)

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        """Loss (as ``metrics.summary`` defines it, the same figure as training's), perplexity, masked accuracy
        and profile KL over the whole validation set, all processes."""
        batches = self.data.validation_batches()
        if not batches:
            return {}
        model = self.accelerator.unwrap_model(self.model)
        model.eval()
        sums = ObjectiveSums()
        for batch in batches:
            batch = {key: value.to(self.accelerator.device) for key, value in batch.items()}
            labels, targets = batch.pop("labels", None), batch.pop("profile_targets", None)
            with self.accelerator.autocast():
                output = model(**batch)
            sums += objective_sums(self.config, output, labels, targets, batch["attention_mask"])[1]
        model.train()
        metrics = summary(self._all_processes(sums), self.config)
        metrics.pop("padding_fraction")
        self.last_validation = metrics
        self._record("validation", metrics)
        return metrics

    def _all_processes(self, sums: ObjectiveSums) -> ObjectiveSums:
        """``sums`` added over every process (one all-reduce)."""
        return ObjectiveSums.from_tensor(self.accelerator.reduce(sums.to_tensor(self.accelerator.device), "sum").cpu())

    def _record(self, split: str, metrics: dict[str, float]) -> None:
        elapsed = round(time.perf_counter() - self.started, 2)
        self.metrics.write({"step": self.state.step, "split": split, "elapsed_seconds": elapsed, **metrics})
        if self.train_args.report_to:
            self.accelerator.log({f"{split}/{key}": value for key, value in metrics.items()}, step=self.state.step)
        if split == "validation":
            shown = [f"loss {metrics['loss']:.4f}"]
            if "perplexity" in metrics:
                shown.append(f"perplexity {metrics['perplexity']:.2f}, masked accuracy {metrics['accuracy']:.3f}")
            if "profile_kl" in metrics:
                shown.append(f"profile KL {metrics['profile_kl']:.4f}")
            self._print(f"step {self.state.step}: validation " + ", ".join(shown))

    def _print(self, message: str) -> None:
        """A line of the run's story: on the console (above the progress bar) and in the log file, main process
        only (the others would repeat it)."""
        if self.accelerator.is_main_process:
            logger.info(message)

    # ------------------------------------------------------------------------------------------------ end
    def _finish(self, stop_at: int) -> PretrainingResult:
        if self.data.train.skipped:
            self._print(f"skipped {self.data.train.skipped} invalid records in the training files")
        model_dir = None
        if stop_at == self.train_args.max_steps:
            model_dir = self._export()
        if self.accelerator.is_main_process and self.train_args.plot:
            plot_curves(self.metrics.read(), self.output_dir / "curves.png")
        self.accelerator.end_training()
        return PretrainingResult(self.state.step, model_dir, self.last_validation, self.skipped_steps)

    def _export(self) -> Path:
        """The Hub-ready folder: weights, config with auto_map, code, tokenizer and a model card of this run."""
        state_dict = self.accelerator.get_state_dict(self.model)
        folder = self.output_dir / "model"
        if self.accelerator.is_main_process:
            model = self.accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)
            if self.accelerator.distributed_type == DistributedType.FSDP:  # shards -> one full CPU model
                model = pretraining_auto_class(model.config).from_config(model.config)
                model.load_state_dict(state_dict)
            save_hub_folder(model, self.tokenizer, folder, card=self._card(model), overwrite=True)
            self._print(f"saved the pretrained model to {folder}")
        self.accelerator.wait_for_everyone()
        return folder

    def _card(self, model: PreTrainedModel) -> ModelCard:
        """Validation figures go to ``model-index``; the run's arguments become a YAML block that ``--config``
        reads back (data paths as file names: beside that YAML, they resolve)."""
        validation = self.last_validation
        arguments = self.run_arguments
        sources = [*arguments["train_files"], *arguments["msa_files"]] + (
            [arguments["dataset_name"]] if arguments.get("dataset_name") else []
        )
        data_name = ", ".join(str(public_name(source)) for source in sources)
        details: dict[str, Any] = {
            "pretraining objective": _objective_text(self.config, arguments),
            "pretraining data": data_name,
            "optimizer steps": self.state.step,
            "tokens seen": f"{self.state.tokens_seen:,.0f}",
        }
        names = {"loss": "loss", "perplexity": "perplexity", "accuracy": "masked accuracy", "profile_kl": "profile KL"}
        results = [
            CardResult("fill-mask", data_name, names[key], validation[key], split="validation")
            for key in names
            if key in validation
        ]
        configuration = config_yaml(arguments, leave_out=_MACHINE_ARGUMENTS)
        training = (
            f"{_objective_text(self.config, arguments)}, {self.state.step} optimizer steps, "
            f"{self.state.tokens_seen:,.0f} tokens, on {data_name}. Validation figures are over held-out "
            "sequences of the same data.\n\nThe run's arguments, for `protconv pretrain --config` (data paths "
            f"are file names, resolved beside this file):\n\n```yaml\n{configuration}```"
        )
        return build_card(
            model,
            f"{arguments['model']} pretrained with protconv",
            _SUMMARY,
            details=details,
            results=results,
            sections={"Training": training},
            datasets=[arguments["dataset_name"]] if arguments.get("dataset_name") else (),
        )


#: Arguments that name this machine's folders or this run's state: left out of the card's configuration block.
_MACHINE_ARGUMENTS = frozenset(
    {"output_dir", "overwrite_output_dir", "resume", "resume_from", "data_cache_dir", "profile_cache_dir", "run_name"}
)


#: Arguments that steer how a run is started, shown, logged, validated or saved, not what it trains: they may
#: change on resume. Any other change (learning rate, schedule, data, model, seed...) is refused.
RESUMABLE_CHANGES = frozenset(
    {
        "resume",
        "resume_from",
        "output_dir",
        "overwrite_output_dir",
        "stop_after_steps",
        "disable_tqdm",
        "logging_steps",
        "eval_steps",
        "eval_at_start",
        "max_validation_sequences",
        "save_steps",
        "save_total_limit",
        "report_to",
        "run_name",
        "log_level",
        "plot",
        "prefetch_batches",
        "max_nonfinite_steps",
        "profile_cache_dir",
        "data_cache_dir",
    }
)
_SUMMARY = (
    "A protein language model pretrained with `protconv pretrain` (the protconv accelerate loop). "
    "Validation metrics are over the held-out sequences: masked residues for the MLM loss, residues with an "
    "alignment column for the profile KL."
)


def _kind_of_source(name: str) -> str:
    """ "file" for a FASTA or MSA path, "dataset" for a dataset split (named "name (split)", not a path)."""
    return "file" if Path(name).exists() else "dataset"


def _objective_text(config: PretrainedConfig, arguments: dict[str, Any]) -> str:
    parts = objective_parts(config.pretraining_objective)
    texts = []
    if MLM in parts:
        texts.append(f"masked LM ({arguments['mlm_probability']:.0%} of residues, 80/10/10)")
    if PROFILE in parts:
        texts.append(
            f"MSA profile prediction (KL; {arguments['profile_prior']} prior, inserts: {arguments['msa_inserts']})"
        )
    if len(parts) > 1:
        alpha = profile_task_alpha(config.profile_task_weight)
        texts.append(f"loss = {1 - alpha:.3g} x MLM + {alpha:.3g} x {config.profile_loss_scale:g} x KL")
    return "; ".join(texts)


def _config_overrides(model_args: ModelArguments) -> dict[str, Any]:
    overrides = parse_overrides(model_args.config_overrides)
    if model_args.pretraining_objective is not None:
        overrides["pretraining_objective"] = model_args.pretraining_objective
    return overrides


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and normalisation weights (1-D tensors), the usual transformer recipe."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _check_max_length(config: PretrainedConfig, max_length: int) -> None:
    """Models with learned absolute positions cannot take longer inputs than they have positions for
    (``model_source.position_limit``: Conv models and rotary Performers take any ``--max_length``)."""
    limit = position_limit(config)
    if limit is not None and max_length > limit:
        raise ValueError(f"--max_length {max_length} exceeds the model's {position_limit_reason(config)}")


#: The keyword by which each accelerate tracker takes a run's name: accelerate gives every tracker the one project
#: name of ``init_trackers``; the run's own name goes through ``init_kwargs``. TensorBoard has no such keyword (its
#: runs are folders) and is built by ``_trackers``; Aim and Comet are named once started.
_RUN_NAME_KEYWORDS = {
    "wandb": "name",
    "trackio": "name",
    "mlflow": "run_name",
    "clearml": "task_name",
    "swanlab": "experiment_name",
}


def _trackers(report_to: list[str], run_name: str, output_dir: Path) -> list[Any]:
    """accelerate's ``log_with`` for ``--report_to``. A tracker whose package is missing is an error here
    (accelerate would drop it with a debug message, and the run would log nowhere); ``none`` means none.
    TensorBoard logs to ``OUTPUT_DIR/tensorboard/RUN_NAME``, so that ``tensorboard --logdir`` shows the run's name."""
    requested = [name for name in report_to if name.lower() != "none"]
    available = {str(tracker) for tracker in get_available_trackers()}
    missing = [name for name in requested if name != "all" and name not in available and name in _KNOWN_TRACKERS]
    if missing:
        raise ImportError(f"--report_to {' '.join(missing)}: not installed (pip install {' '.join(missing)})")
    return [
        TensorBoardTracker(run_name, output_dir / "tensorboard") if name == "tensorboard" else name
        for name in requested
    ]


_KNOWN_TRACKERS = frozenset({"tensorboard", "aim", "comet_ml", "dvclive", *_RUN_NAME_KEYWORDS})


def _run_name_kwargs(trackers: list[Any], run_name: str) -> dict[str, dict[str, str]]:
    names = {tracker.name if isinstance(tracker, GeneralTracker) else str(tracker) for tracker in trackers}
    return {name: {keyword: run_name} for name, keyword in _RUN_NAME_KEYWORDS.items() if name in names}


def _name_started_trackers(accelerator: Accelerator, run_name: str) -> None:
    """Aim names its run after the project and Comet takes no name at start: rename them (main process only,
    where trackers run)."""
    if not accelerator.is_main_process:
        return
    for tracker in accelerator.trackers:
        if tracker.name == "aim":
            tracker.tracker.name = run_name
        elif tracker.name == "comet_ml":
            tracker.tracker.set_name(run_name)


def _tracker_config(arguments: dict[str, Any]) -> dict[str, Any]:
    """Trackers accept scalars only."""
    return {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in arguments.items()}
