"""The ``[demos]`` table of an mtsac or mtppo recipe: which dataset, and the warm start
(mtppo takes the cloning options only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mtrl.config import bounded, check_fields
from mtrl.demos.store import DATASET_ID

BCLoss = Literal["nll", "mse"]


@dataclass(frozen=True)
class DemosConfig:
    """Demonstrations (a Minari dataset from `mtrl demos collect`) and the behaviour
    cloning of the actor on them before RL starts (part of the run: logged as
    ``bc_loss`` rows and checkpointed where RL starts: step 0, or after the DAgger
    rounds' rollouts)."""

    dataset: str = ""  # Minari id, e.g. "mtrl/mt10-expert-v0"
    root: str = "datasets"  # the datasets root (MINARI_DATASETS_PATH)
    # the first N episodes of each task (few-demonstration runs); all when absent
    episodes_per_task: int | None = None
    bc_steps: int = bounded(2000, ge=0)  # actor gradient steps on the demonstrations
    batch_size: int = bounded(256, ge=1)  # per BC step, balanced across tasks
    lr: float = bounded(1e-3, gt=0.0)
    # "cosine": the learning rate falls from lr to 0 over bc_steps (cosine), so the
    # clone ends at a minimum rather than at Adam's noise floor at a constant lr
    lr_schedule: Literal["constant", "cosine"] = "constant"
    log_every: int = bounded(100, ge=1)  # BC steps between bc_loss rows
    # "mse": squared error of the deterministic action (MT10, 20 expert episodes per
    # task, 10k steps, 3 seeds: 0.90 mean success); "nll": the demonstrations'
    # likelihood under the squashed Gaussian (same: 0.21; clipped expert actions pull it)
    bc_loss: BCLoss = "mse"
    # AQIL's Q-imitation phase: critic-only SAC updates on demonstration batches
    # (environment rewards; targets from the cloned actor) after cloning, before RL
    critic_steps: int = bounded(0, ge=0)
    # share of every RL batch drawn from the demonstrations (per task, as RLPD's
    # symmetric sampling at 0.5), decaying linearly to 0 over replay_decay_steps env
    # steps after learning starts (0: fixed share)
    replay_share: float = bounded(0.0, ge=0.0, lt=1.0)
    replay_decay_steps: int = bounded(0, ge=0)
    # cloning kept in the actor's loss during RL (TD3+BC-style, unitless against the
    # -Q term: mtrl.demos.regulariser), decaying linearly to 0 over bc_decay_steps env
    # steps after learning starts (0: fixed); keeps RL from wrecking the clone
    bc_weight: float = bounded(0.0, ge=0.0)
    bc_decay_steps: int = bounded(0, ge=0)
    # "env": every transition keeps the environment's reward; "sqil": imitation as in
    # SQIL (Reddy et al. 2020) - demonstrations carry reward 1 and the agent's own
    # transitions 0 (needs replay_share > 0; the environment's reward is only logged)
    reward: Literal["env", "sqil"] = "env"
    # IBRL (Hu et al. 2023): the clone is kept frozen beside the RL actor, and the agent
    # acts with and bootstraps from whichever of their actions the critics value higher
    # (mtrl.demos.proposal); needs bc_steps > 0
    clone_proposal: bool = False
    # conservatism on demonstration states (mtrl.demos.conservative): every critic
    # update (warm start included) adds weight x how far the critics value
    # N(0, noise^2) perturbations (samples per state) of a demonstrated action above it
    conservative_weight: float = bounded(0.0, ge=0.0)
    conservative_noise: float = bounded(0.1, gt=0.0)
    conservative_samples: int = bounded(10, ge=1)
    # self-imitation (mtrl.demos.self_imitation): every successful training episode
    # joins its task's demonstrations (for replay_share, bc_weight, conservative_weight)
    self_imitation: bool = False
    # DAgger (mtrl.demos.dagger) after cloning: each round rolls the clone out for
    # dagger_episodes episodes per task, labels every state it visits with the
    # teacher's action ("expert": Meta-World's scripted experts; or a run directory)
    # and re-clones the actor on the demonstrations plus all labelled states. The
    # rollouts count as the run's env steps; the labels train the clone only
    dagger_rounds: int = bounded(0, ge=0)
    dagger_episodes: int = bounded(10, ge=1)
    dagger_teacher: str = "expert"

    def __post_init__(self) -> None:
        check_fields(self, "demos")
        if self.episodes_per_task is not None and self.episodes_per_task < 1:
            raise ValueError(
                f"demos.episodes_per_task = {self.episodes_per_task} must be >= 1 "
                "(or absent for every episode)"
            )
        if self.reward == "sqil" and not self.replay_share:
            raise ValueError(
                "demos.reward = 'sqil' learns from demonstrations (reward 1) against the "
                "agent's own transitions (reward 0) in each batch; set demos.replay_share "
                "> 0 (SQIL uses 0.5)"
            )
        if self.clone_proposal and not self.bc_steps:
            raise ValueError(
                "demos.clone_proposal keeps the behaviour-cloned actor as a second policy; "
                "set demos.bc_steps > 0 to clone one"
            )
        if self.dagger_rounds and not self.bc_steps:
            raise ValueError(
                "demos.dagger_rounds re-clones the actor on the states its clone visits; "
                "set demos.bc_steps > 0 to clone one"
            )
        if self.self_imitation and not (
            self.replay_share or self.bc_weight or self.conservative_weight
        ):
            raise ValueError(
                "demos.self_imitation adds successful episodes to the demonstrations, but "
                "nothing uses them during RL; set demos.bc_weight, demos.replay_share or "
                "demos.conservative_weight > 0"
            )
        if not DATASET_ID.match(self.dataset):
            raise ValueError(
                f"demos.dataset = {self.dataset!r} is not a Minari dataset id "
                "('namespace/name-vN', e.g. 'mtrl/mt10-expert-v0'; `mtrl demos list` shows them)"
            )
