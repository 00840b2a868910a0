"""The ``[demos]`` table: which dataset, and one sub-table per technique, enabled by
being present (``[demos.bc]``, ``[demos.dagger]``, ``[demos.replay]``, ...).

A technique used during RL registers here with one field: its config class (in its own
module) builds its component (:class:`~mtrl.demos.setup.Technique`), and the fields'
order is the order they are built in. MT-PPO takes :class:`PolicyDemosConfig`, which has
the cloning table only, so any other table is an unknown key there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mtrl.agents.hooks import LoopComponent
from mtrl.config import check_fields
from mtrl.demos.bc import CloningConfig
from mtrl.demos.conservative import ConservativeConfig
from mtrl.demos.dagger import DaggerConfig
from mtrl.demos.dataset import demo_transitions
from mtrl.demos.mixing import ReplayConfig, SQILConfig
from mtrl.demos.proposal import ProposalConfig
from mtrl.demos.regulariser import RegulariserConfig
from mtrl.demos.self_imitation import SelfImitationConfig
from mtrl.demos.setup import DemoSetup, Technique
from mtrl.demos.store import DATASET_ID
from mtrl.demos.warm_start import CriticWarmStartConfig, Phases
from mtrl.errors import ConfigError

# the flat keys of the single [demos] table before the technique tables (an old recipe
# gets an error naming each one's new place)
MOVED = {
    "bc_steps": "demos.bc.steps",
    "batch_size": "demos.bc.batch_size",
    "lr": "demos.bc.lr",
    "lr_schedule": "demos.bc.lr_schedule",
    "bc_loss": "demos.bc.loss (and demos.regulariser.loss)",
    "log_every": "demos.bc.log_every (and demos.critic_warm_start.log_every)",
    "critic_steps": "demos.critic_warm_start.steps",
    "replay_share": "demos.replay.share",
    "replay_decay_steps": "demos.replay.decay_steps",
    "reward": "the table [demos.sqil] (present: reward 'sqil'; absent: 'env')",
    "bc_weight": "demos.regulariser.weight",
    "bc_decay_steps": "demos.regulariser.decay_steps",
    "clone_proposal": "the table [demos.proposal] (present: true)",
    "conservative_weight": "demos.conservative.weight",
    "conservative_noise": "demos.conservative.noise",
    "conservative_samples": "demos.conservative.samples",
    "self_imitation": "the table [demos.self_imitation] (present: true)",
    "dagger_rounds": "demos.dagger.rounds",
    "dagger_episodes": "demos.dagger.episodes",
    "dagger_teacher": "demos.dagger.teacher",
}


@dataclass(frozen=True)
class DemoSource:
    """A Minari dataset from `mtrl demos collect`."""

    moved_keys: ClassVar[dict[str, str]] = MOVED

    dataset: str = ""  # Minari id, e.g. "mtrl/mt10-expert-v0"
    root: str = "datasets"  # the datasets root (MINARI_DATASETS_PATH)
    # the first N episodes of each task (few-demonstration runs); all when absent
    episodes_per_task: int | None = None
    # only the episodes whose success flag is ever set (a scripted expert that fails
    # some episodes is cloned, replayed and regularised towards on its successes only)
    successes_only: bool = False

    def __post_init__(self) -> None:
        check_fields(self, "demos")
        if self.episodes_per_task is not None and self.episodes_per_task < 1:
            raise ValueError(
                f"demos.episodes_per_task = {self.episodes_per_task} must be >= 1 "
                "(or absent for every episode)"
            )
        if not DATASET_ID.match(self.dataset):
            raise ValueError(
                f"demos.dataset = {self.dataset!r} is not a Minari dataset id "
                "('namespace/name-vN', e.g. 'mtrl/mt10-expert-v0'; `mtrl demos list` shows them)"
            )
        if not self.tables():
            raise ValueError(
                "[demos] names a dataset but no technique uses it; add a table such as "
                f"[demos.bc] (this kind takes: {', '.join(self.table_names())})"
            )

    def transitions(self, env: Any, normalize: bool = True) -> dict[str, np.ndarray]:
        """The dataset's transitions checked against ``env``, selected as this table
        says (see :func:`~mtrl.demos.dataset.demo_transitions`)."""
        return demo_transitions(
            self.dataset, self.root, env, self.episodes_per_task, normalize, self.successes_only
        )

    @classmethod
    def table_names(cls) -> list[str]:
        """The technique tables this kind accepts."""
        source = {f.name for f in dataclasses.fields(DemoSource)}
        return [f.name for f in dataclasses.fields(cls) if f.name not in source]

    def tables(self) -> list[str]:
        """The technique tables present."""
        return [n for n in self.table_names() if getattr(self, n) is not None]


@dataclass(frozen=True)
class PolicyDemosConfig(DemoSource):
    """MT-PPO's demonstrations: the policy cloned before RL."""

    bc: CloningConfig | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        bc = self.bc
        if bc is not None and (bc.init_std > 0.0 or bc.collect != "random"):
            raise ConfigError(
                "demos.bc.init_std and demos.bc.collect set where an off-policy run (MT-SAC) "
                "starts RL from its clone; MT-PPO's policy keeps its own spread and always "
                "acts with it: remove them"
            )


@dataclass(frozen=True)
class DemosConfig(DemoSource):
    """MT-SAC's demonstrations: the warm-start phases before RL (cloning, DAgger, the
    critic warm start) and the techniques used during RL, built in this order."""

    bc: CloningConfig | None = None
    dagger: DaggerConfig | None = None
    critic_warm_start: CriticWarmStartConfig | None = None
    sqil: SQILConfig | None = None
    replay: ReplayConfig | None = None
    regulariser: RegulariserConfig | None = None
    conservative: ConservativeConfig | None = None
    proposal: ProposalConfig | None = None
    self_imitation: SelfImitationConfig | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        needs = [
            (
                self.sqil,
                self.replay,
                "sqil",
                "replay",
                "SQIL mixes demonstrations, reward 1, into "
                "every batch against the agent's transitions, reward 0; SQIL's share is 0.5",
            ),
            (self.proposal, self.bc, "proposal", "bc", "it keeps the cloned actor"),
            (
                self.dagger,
                self.bc,
                "dagger",
                "bc",
                "it re-clones the actor on the states the clone visits",
            ),
        ]
        for table, needed, name, other, why in needs:
            if table is not None and needed is None:
                raise ValueError(f"[demos.{name}] needs [demos.{other}]: {why}")
        users = (self.replay, self.regulariser, self.conservative)
        if self.self_imitation is not None and all(u is None for u in users):
            raise ValueError(
                "[demos.self_imitation] adds successful episodes to the demonstrations, but "
                "nothing uses them during RL; add [demos.replay], [demos.regulariser] or "
                "[demos.conservative]"
            )

    def phases(self) -> Phases:
        """The warm start's phases, before RL."""
        return Phases(self.bc, self.dagger, self.critic_warm_start)

    def build(self, setup: DemoSetup) -> list[LoopComponent]:
        """The components of the techniques present, built in field order (update
        terms wrap the agent's extension in that order)."""
        built = (t.build(setup) for t in self._techniques())
        return [c for c in built if c is not None]

    def _techniques(self) -> list[Technique]:
        values = (getattr(self, name) for name in self.tables())
        return [v for v in values if isinstance(v, Technique)]
