"""`mtrl adapt` for PEARL runs: returns on held-out tasks episode by episode, ``z``
drawn from the posterior of everything seen on the task so far."""

from __future__ import annotations

from typing import Any

import torch

from mtrl.kinds.maml_rl_adapt import Outcome, curve_rows, primary_metric
from mtrl.kinds.pearl import PEARL, PEARLRecipe, build
from mtrl.loops.iterations import eval_stream
from mtrl.meta.pearl import sample_z
from mtrl.meta.rl_sampler import held_out_tasks
from mtrl.runs import RunDir
from mtrl.seeding import seed_everything
from mtrl.tasks import Task


@torch.no_grad()
def online_returns(learner: PEARL, tasks: list[Task], episodes: int, adapt: bool) -> Outcome:
    """Return (and success, where reported) per task ``[episodes, T]``, acting
    deterministically on ``z`` drawn from the posterior of the task's transitions so
    far (``adapt``) or from the prior."""
    lay, latent = learner.layout, learner.recipe.latent
    learner.sampler.set_tasks(tasks)
    seen: list[torch.Tensor] = []  # per episode: [T, H, width] rows and [T, H] masks
    masks: list[torch.Tensor] = []
    out, wins = [], []
    for _ in range(episodes):
        z = torch.randn(len(tasks), latent)
        if adapt and seen:
            context = lay.context_of(torch.cat(seen, 1))
            z = sample_z(*learner.encoder.posterior(context, torch.cat(masks, 1)))
        ep = learner.sampler.sample(learner._act(z, deterministic=True))
        out.append(ep.episode_returns()[:, 0])
        won = ep.episode_successes()
        if won is not None:
            wins.append(won[:, 0])
        assert ep.next_obs is not None and ep.terminals is not None
        parts = [ep.obs, ep.actions, ep.rewards[..., None], ep.next_obs, ep.terminals[..., None]]
        seen.append(torch.cat(parts, -1)[:, :, 0].transpose(0, 1))
        masks.append(ep.masks[:, :, 0].transpose(0, 1))
    return torch.stack(out), torch.stack(wins) if len(wins) == episodes else None


def adapt_pearl(
    run: RunDir,
    recipe: PEARLRecipe,
    max_steps: int,
    num_tasks: int,
    pretrain_iterations: int | None,
    seed: int,
) -> dict[str, Any]:
    """Return of episode ``k`` (k = 0..max_steps) on ``num_tasks`` held-out tasks:
    ``z`` from the posterior of the task's earlier episodes (PEARL's online
    adaptation; episode 0 draws from the prior), against ``z`` from the prior at every
    episode (the same networks, not adapting). ``pretrain_iterations`` is unused."""
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    seed_everything(seed)
    learner, family = build(recipe, slots=num_tasks)
    learner.nets.load_state_dict(run.load_checkpoint()["pearl"])
    tasks = held_out_tasks(family, num_tasks, eval_stream(recipe.eval_seed))
    episodes = max_steps + 1
    curves = {
        "PEARL (posterior of earlier episodes)": curve_rows(
            online_returns(learner, tasks, episodes, True)
        ),
        "prior z (no adaptation)": curve_rows(online_returns(learner, tasks, episodes, False)),
    }
    learner.close()
    return {
        "metric": primary_metric(recipe.env),
        "lower_is_better": False,
        "x": "episodes",
        "env": recipe.env,
        "tasks": num_tasks,
        "curves": curves,
    }
