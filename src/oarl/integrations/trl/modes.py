"""The TRL training modes OAR can act in, checked before training: no mode in which OAR silently does nothing.

OAR hands TRL token advantages ``A_t = A * w_t`` whose weights keep the row's mass over the trained tokens
(``sum_t w_t = T``, mean 1). They change the update only where TRL's policy gradient weights each token by its
own ``A_t``; tests/test_trl_modes.py checks, for every loss type and level, that this is where OAR is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping

from oarl.core.scorers import get_scorer

#: TRL 1.16's loss types, each checked by tests/test_trl_modes.py; OAR refuses one it has not been checked with.
CHECKED_LOSSES = frozenset({"grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"})
#: Loss types whose policy term, at ``importance_sampling_level="sequence"`` (GSPO), is one ratio per row
#: (``[B, 1]``) times ``A_t`` summed over tokens: row ``b``'s gradient is ``sum_t A_t * d r_b = A * T_b * d r_b``
#: (mass preserved), GRPO's. ``cispo`` and ``vespo`` multiply ``A_t`` by each token's own log-probability, so
#: per-token advantages act there at either level.
SEQUENCE_RATIO_LOSSES = frozenset({"grpo", "bnpo", "dr_grpo", "dapo", "sapo", "luspo"})

#: Batch keys TRL 1.16 puts in the generated batch for vision-language inputs.
VISION_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "pixel_attention_mask",
    "spatial_shapes",
    "image_sizes",
    "mm_token_type_ids",
    "image_position_ids",
    "num_images",
    "num_tiles",
)


def check_loss_mode(method: str, loss_type: str, importance_sampling_level: str) -> None:
    """Refuse, at config time, a TRL loss under which OAR's per-token advantages cannot change the update."""
    if get_scorer(method).uniform:
        return  # plain GRPO: uniform weights change nothing, every TRL mode is fine
    if loss_type not in CHECKED_LOSSES:
        raise ValueError(
            f"oar_method={method!r} is not checked with loss_type={loss_type!r} (a TRL loss oarl does not know: "
            f"it may use only one ratio per sequence, where OAR's weights do nothing); checked: "
            f"{sorted(CHECKED_LOSSES)}. Use one of those, or oar_method='none'."
        )
    if importance_sampling_level == "sequence" and loss_type in SEQUENCE_RATIO_LOSSES:
        raise ValueError(
            f"oar_method={method!r} cannot act with importance_sampling_level='sequence' (GSPO) and "
            f"loss_type={loss_type!r}: the importance ratio is one value per sequence ([B, 1]), so the gradient "
            "sees only mean_t(A_t), and OAR's weights have mean 1: the update would be GRPO's while the scoring "
            "is paid in full. Use importance_sampling_level='token' (TRL's default), loss_type='cispo' or "
            "'vespo' (per-token log-probabilities at either level), or oar_method='none'."
        )


def _refuse_vision(method: str, what: str) -> None:
    raise ValueError(
        f"oar_method={method!r} does not support vision-language inputs yet ({what}): its scorers run the model on "
        "the token ids only, blind to the image. Use a text-only model and tokenizer, a model-free scorer, or "
        "oar_method='none'."
    )


def check_vision(method: str, is_vlm: bool, model_free: bool) -> None:
    """Refuse, at trainer init, a scorer that runs the model when the processing class is a multimodal processor
    (TRL's ``_is_vlm``): the scorers never pass ``pixel_values`` or the other image inputs to the model."""
    if is_vlm and not model_free:
        _refuse_vision(method, "processing_class is a multimodal processor")


def check_batch_images(method: str, batch: Mapping, model_free: bool) -> None:
    """Refuse a generated batch that carries image inputs (TRL's :data:`VISION_KEYS`) for a model scorer."""
    keys = [k for k in VISION_KEYS if batch.get(k) is not None]
    if keys and not model_free:
        _refuse_vision(method, f"the batch has {', '.join(keys)}")


def check_generation_rollouts(method: str, tools, environment_factories, rollout_func) -> None:
    """Refuse, at trainer init, a ``generation`` scorer (one that samples and rewards its own continuations)
    when TRL's rollouts are not plain sampling: its samples would skip the tool calls, the environments (whose
    state belongs to the rolled-out completion) or the custom ``rollout_func``, and be rewarded as if they had
    not."""
    used = [
        name
        for name, value in (
            ("tools", tools),
            ("environment_factory", environment_factories),
            ("rollout_func", rollout_func),
        )
        if value
    ]
    if used:
        raise ValueError(
            f"oar_method={method!r} samples and rewards its own continuations with plain generation, which "
            f"cannot reproduce TRL's {', '.join(used)}; use a scorer that does not need 'generation' (e.g. "
            "oar_method='gradient') or oar_method='none'."
        )
